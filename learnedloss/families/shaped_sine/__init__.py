"""Shaped sine (ML3 sec. V-C): recover a frequency ω, with the true ω as information
available at meta-train time only."""

from learnedloss.families.shaped_sine.recipe import (
    ShapedSineRecipe,
    compare_recovery,
    meta_train_frequency,
)
from learnedloss.families.shaped_sine.tasks import FrequencyModel, FrequencyTasks

__all__ = [
    "FrequencyModel",
    "FrequencyTasks",
    "ShapedSineRecipe",
    "compare_recovery",
    "meta_train_frequency",
]
