"""Meta-train a classification loss that carries over to unseen data sets and class counts: the
recipe behind the bundled ``noisy-labels`` loss and docs/noisy-labels.md.

The loss is cross-entropy times a learned factor of the labelled class's probability and its
margin over the strongest rival (`learnedloss.starts.count_free_cross_entropy_start_config`),
so it is the same function for 2 classes or 100, and starts as exactly cross-entropy. It is
meta-trained by evolution strategies on `NoisyLabelTasks`: synthetic teachers with 2-100
classes and two real tables, 0-60% symmetric or pair label noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnedloss.families.noisy_labels.tasks import META_TRAIN_TABLES, NOISES, NoisyLabelTasks
from learnedloss.families.recipe import HeldOutTransferRecipe, meta_train, recipe_from_metadata
from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import count_free_cross_entropy_start_config


@dataclass
class NoisyLabelsRecipe(HeldOutTransferRecipe):
    """Meta-training settings for the broad noisy-label family.

    Defaults: tasks from ``"synthetic"`` (2-100 classes) and `META_TRAIN_TABLES` (never the
    held-out ones), 100 training and 50 clean query examples, 0-60% flipped labels, one-hidden
    -layer ReLU MLPs of width 32/64 trained 100 full-batch Adam steps at lr 0.01; a 16-16 loss
    network over (prob, margin) starting as exactly cross-entropy; evolution strategies with
    4 antithetic pairs on 8 tasks per outer step; the calibrated query cross-entropy.
    """

    sources: tuple[str, ...] = ("synthetic", *META_TRAIN_TABLES)
    n_classes: tuple[int, ...] = (2, 3, 5, 10, 20, 50, 100)
    n_train: int = 100
    n_query: int = 50
    label_noise: tuple[float, float] = (0.0, 0.6)
    noises: tuple[str, ...] = NOISES
    widths: tuple[int, ...] = (32, 64)
    hidden: tuple[int, ...] = (16, 16)
    inputs: tuple[str, ...] = ("prob", "margin")
    inner_optimizer: str = "adam"

    start_config = staticmethod(count_free_cross_entropy_start_config)

    def tasks(self) -> NoisyLabelTasks:
        return NoisyLabelTasks(
            sources=self.sources,
            n_classes=self.n_classes,
            n_train=self.n_train,
            n_query=self.n_query,
            label_noise=self.label_noise,
            noises=self.noises,
            widths=self.widths,
        )


def meta_train_noisy_labels(recipe: NoisyLabelsRecipe, **kwargs) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss on `NoisyLabelTasks`; the recipe goes into its metadata."""
    return meta_train(recipe, family="noisy-labels", **kwargs)


def recipe_of(loss: LearnedLoss) -> NoisyLabelsRecipe:
    """The recipe a loss was meta-trained with (from its metadata), else the defaults."""
    return recipe_from_metadata(loss, NoisyLabelsRecipe)
