"""Task families: what a loss is meta-trained and evaluated on."""

from learnedloss.tasks.base import TaskBatch, TaskFamily, mse_objective
from learnedloss.tasks.sine import SineTasks, mlp

__all__ = ["SineTasks", "TaskBatch", "TaskFamily", "mlp", "mse_objective"]
