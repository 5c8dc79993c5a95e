"""Noisy-label classification that transfers: broad tasks (2-100 classes, synthetic teachers and
real tables, 0-60% symmetric or pair noise), a class-count-free loss, and a transfer
evaluation on held-out tables (docs/noisy-labels.md)."""

from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe
from learnedloss.families.noisy_labels.tasks import (
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    TABLES,
    NoisyLabelTasks,
)

__all__ = [
    "HELD_OUT_TABLES",
    "META_TRAIN_TABLES",
    "TABLES",
    "NoisyLabelTasks",
    "NoisyLabelsRecipe",
]
