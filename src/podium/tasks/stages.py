"""Every task plug-in's model stage, registered: the train and predict rules look the
competition's task up here (common.smk imports this module at parse time, and the tests do).

Kept apart from :mod:`podium.tasks.plugins` (the targets at ingest), so that ingest's code
hash does not cover the model stages: a change to what a fold writes reruns no ingest.
"""

from podium.stage import register_stage
from podium.task import CLASSIFICATION_TASKS, VALUE_TASKS
from podium.tasks import segment
from podium.tasks.classify.stage import STAGE as CLASSIFY
from podium.tasks.segment.stage import STAGE as SEGMENT

register_stage(CLASSIFICATION_TASKS + VALUE_TASKS, CLASSIFY)
register_stage((segment.TASK,), SEGMENT)
