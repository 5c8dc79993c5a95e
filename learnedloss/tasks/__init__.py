"""The task-family protocol users implement (`TaskFamily`, `TaskBatch`), and small models.

The families the library ships live in `learnedloss.families`, one folder each.
"""

import importlib

from learnedloss._deprecated import MOVED_TASK_NAMES, warn_moved
from learnedloss.tasks.base import TaskBatch, TaskFamily, mse_objective
from learnedloss.tasks.models import mlp

__all__ = ["TaskBatch", "TaskFamily", "mlp", "mse_objective"]


def __getattr__(name: str):
    if name in MOVED_TASK_NAMES:
        warn_moved(f"learnedloss.tasks.{name}", f"{MOVED_TASK_NAMES[name]}.{name}")
        return getattr(importlib.import_module(MOVED_TASK_NAMES[name]), name)
    raise AttributeError(f"module 'learnedloss.tasks' has no attribute {name!r}")
