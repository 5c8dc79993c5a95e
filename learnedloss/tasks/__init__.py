"""Task families: what a loss is meta-trained and evaluated on."""

from learnedloss.tasks.base import TaskBatch, TaskFamily, mse_objective
from learnedloss.tasks.point_mass import PointMassGoals
from learnedloss.tasks.reacher import ReacherGoals
from learnedloss.tasks.sine import SineTasks, mlp

__all__ = [
    "PointMassGoals",
    "ReacherGoals",
    "SineTasks",
    "TaskBatch",
    "TaskFamily",
    "mlp",
    "mse_objective",
]
