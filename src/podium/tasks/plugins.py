"""Every task plug-in's targets, registered: import this module before anything looks a
task's targets up by name without a rule to say which (``podium check``, the config check,
tests/conftest.py). Each targets module registers itself on import; the workflow's ingest and
folds jobs import only their own task's (the stage's ``targets``), so their code hashes
cover no other task's code.

Adding a task is one new subpackage of podium.tasks, imported here and in
``podium.tasks.stages``; no rule file and no module of the layers below changes
(docs/architecture.md).
"""

from podium.tasks.classify import targets as _classify  # noqa: F401
from podium.tasks.segment import targets as _segment  # noqa: F401
