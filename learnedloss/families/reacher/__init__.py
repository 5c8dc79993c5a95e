"""Model-based RL (ML3 sec. V-B): reacher policies optimized through a learned dynamics model."""

from learnedloss.families.reacher.recipe import ReacherRecipe, evaluate_reacher, meta_train_reacher
from learnedloss.families.reacher.tasks import ReacherGoals

__all__ = [
    "ReacherGoals",
    "ReacherRecipe",
    "evaluate_reacher",
    "meta_train_reacher",
]
