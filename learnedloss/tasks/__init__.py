"""Task families: what a loss is meta-trained and evaluated on."""

from learnedloss.tasks.base import TaskBatch, TaskFamily, mse_objective
from learnedloss.tasks.cart_pole import CartPoleTasks
from learnedloss.tasks.point_mass import PointMassGoals
from learnedloss.tasks.reacher import ReacherGoals
from learnedloss.tasks.sine import SineTasks, mlp

__all__ = [
    "CartPoleTasks",
    "PointMassGoals",
    "ReacherGoals",
    "SineTasks",
    "TaskBatch",
    "TaskFamily",
    "mlp",
    "mse_objective",
]
