"""Every metric in podium's registry has an independent reference: adding one to ``METRICS``
without a reference in tests/references/ fails here, and so does a reference left behind
for a metric that is gone."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from podium.metrics import METRICS

HERE = Path(__file__).resolve().parent
REFERENCE_MODULES = ("test_reference_classification.py", "test_reference_segmentation.py")


def _load(filename: str) -> ModuleType:
    """A reference module by path, whatever name pytest's import mode gave it."""
    spec = importlib.util.spec_from_file_location(f"_podium_references_{Path(filename).stem}",
                                                  HERE / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_registry_metric_has_a_reference() -> None:
    covered: dict[str, str] = {}
    for filename in REFERENCE_MODULES:
        references = _load(filename).REFERENCES
        for name, functions in references.items():
            assert name not in covered, f"{name} has references in {covered.get(name)} too"
            assert functions, f"{filename}: {name} lists no reference"
            covered[name] = filename
    assert set(covered) == set(METRICS), (
        f"without a reference: {sorted(set(METRICS) - set(covered))}; "
        f"a reference but no metric: {sorted(set(covered) - set(METRICS))}")
