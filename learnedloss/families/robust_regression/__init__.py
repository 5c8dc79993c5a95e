"""Robust regression that transfers: broad tasks (synthetic functions, real tables, random
target scales, 0-40% corrupted targets), a scale-free loss, and a transfer evaluation on
held-out tables (docs/robust-regression.md)."""

from learnedloss.families.robust_regression.recipe import (
    RobustRegressionRecipe,
)
from learnedloss.families.robust_regression.tasks import (
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    TABLES,
    RobustRegressionTasks,
)

__all__ = [
    "HELD_OUT_TABLES",
    "META_TRAIN_TABLES",
    "TABLES",
    "RobustRegressionRecipe",
    "RobustRegressionTasks",
]
