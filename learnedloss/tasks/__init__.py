"""The task-family protocol users implement (`TaskFamily`, `TaskBatch`), and small models.

The families the library ships live in `learnedloss.families`, one folder each.
"""

from learnedloss.tasks.base import TaskBatch, TaskFamily, mse_objective
from learnedloss.tasks.mixed import MixedTasks
from learnedloss.tasks.models import mlp

__all__ = ["MixedTasks", "TaskBatch", "TaskFamily", "mlp", "mse_objective"]
