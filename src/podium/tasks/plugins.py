"""Every task plug-in, registered: import this module before ingest (or any stage that looks
a task up by name) runs. The workflow's scripts and ``podium check`` do; tests/conftest.py
does for the tests.

Adding a task is one new subpackage of podium.tasks and its registration here; no rule file
and no module of the layers below changes (docs/architecture.md).
"""

from podium.data.targets import register_targets
from podium.task import CLASSIFICATION_TASKS, SEGMENTATION, VALUE_TASKS
from podium.tasks.classify.targets import LabelTargets
from podium.tasks.segment.targets import MaskTargets

register_targets(CLASSIFICATION_TASKS + VALUE_TASKS, LabelTargets())
register_targets((SEGMENTATION,), MaskTargets())
