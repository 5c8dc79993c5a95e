"""Sine regression (ML3 sec. V-A): tasks y = A sin(x + φ), optionally with outlier targets."""

from learnedloss.families.sine.recipe import SineRecipe, evaluate_against_baselines
from learnedloss.families.sine.tasks import SineTasks

__all__ = [
    "SineRecipe",
    "SineTasks",
    "evaluate_against_baselines",
]
