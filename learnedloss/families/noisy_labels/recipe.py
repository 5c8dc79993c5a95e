"""Meta-train a classification loss that carries over to unseen data sets and class counts: the
recipe behind the bundled ``noisy-labels`` loss and docs/noisy-labels.md.

The loss is cross-entropy times a learned factor of the labelled class's probability and its
margin over the strongest rival (`learnedloss.starts.count_free_cross_entropy_start_config`),
so it is the same function for 2 classes or 100, and starts as exactly cross-entropy. It is
meta-trained by evolution strategies on `NoisyLabelTasks`: synthetic teachers and clusters
with 2-100 classes and three real tables, 0-60% symmetric or pair label noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learnedloss.families.noisy_labels.tasks import (
    META_TRAIN_TABLES,
    NOISES,
    SYNTHETIC_SOURCES,
    NoisyLabelTasks,
)
from learnedloss.families.recipe import HeldOutTransferRecipe, meta_train, recipe_from_metadata
from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import (
    count_free_cross_entropy_start_config,
    generalized_cross_entropy_factor,
    truncated_cross_entropy_factor,
)


@dataclass
class NoisyLabelsRecipe(HeldOutTransferRecipe):
    """Meta-training settings for the broad noisy-label family.

    Defaults: tasks from `SYNTHETIC_SOURCES` (teachers and clusters, 2-100 classes) and
    `META_TRAIN_TABLES` (never the held-out ones), 100 training and 50 clean query examples,
    0-60% flipped labels, one-hidden-layer ReLU MLPs of width 32/64 trained 100 full-batch
    Adam steps at lr 0.01; a 16-16 loss network over (prob, margin) starting as exactly
    cross-entropy; evolution strategies with 4 antithetic pairs on 8 tasks per outer step;
    the calibrated query cross-entropy (``meta_objective``, any of `NoisyLabelTasks`').
    ``start_gce_q`` and ``start_truncation`` start a grid at a hand-set shape instead of
    cross-entropy's (`initial_loss`).
    """

    sources: tuple[str, ...] = (*SYNTHETIC_SOURCES, *META_TRAIN_TABLES)
    n_classes: tuple[int, ...] = (2, 3, 5, 10, 20, 50, 100)
    n_train: int = 100
    n_query: int = 50
    label_noise: tuple[float, float] = (0.0, 0.6)
    noises: tuple[str, ...] = NOISES
    widths: tuple[int, ...] = (32, 64)
    hidden: tuple[int, ...] = (16, 16)
    inputs: tuple[str, ...] = ("prob", "margin")
    inner_optimizer: str = "adam"
    start_gce_q: float | None = None
    start_truncation: tuple[float, float] | None = None
    meta_objective: str = "calibrated-cross-entropy"

    start_config = staticmethod(count_free_cross_entropy_start_config)

    def initial_loss(self) -> LearnedLoss:
        """The count-free start: exactly cross-entropy, or, for a grid over one input, a
        hand-set shape: GCE's with ``start_gce_q`` (over ``"log_prob"``,
        `learnedloss.starts.generalized_cross_entropy_factor`), a soft small-loss selection
        with ``start_truncation = (a, b)`` (over ``"log_relative_ce"``,
        `learnedloss.starts.truncated_cross_entropy_factor`)."""
        loss = super().initial_loss()
        shapes = {
            "start_gce_q": ("log_prob", generalized_cross_entropy_factor, (self.start_gce_q,)),
            "start_truncation": (
                "log_relative_ce",
                truncated_cross_entropy_factor,
                tuple(self.start_truncation or ()),
            ),
        }
        chosen = [name for name in shapes if getattr(self, name) is not None]
        if not chosen:
            return loss
        if len(chosen) > 1:
            raise ValueError(f"set at most one of {list(shapes)}, got {chosen}")
        axis, shape, arguments = shapes[chosen[0]]
        if self.parameterization != "grid" or tuple(self.inputs) != (axis,):
            raise ValueError(
                f"{chosen[0]} needs parameterization='grid' and inputs=({axis!r},), got "
                f"{self.parameterization!r} over {tuple(self.inputs)}"
            )
        network = loss.network
        values, slopes = shape(network.knot_positions[0], *arguments)
        with torch.no_grad():
            network.values.copy_(values.to(network.values.dtype).expand_as(network.values))
            network.slopes.copy_(slopes.to(network.slopes.dtype).expand_as(network.slopes))
        return loss

    def tasks(self) -> NoisyLabelTasks:
        return NoisyLabelTasks(
            sources=self.sources,
            n_classes=self.n_classes,
            n_train=self.n_train,
            n_query=self.n_query,
            label_noise=self.label_noise,
            noises=self.noises,
            widths=self.widths,
            meta_objective=self.meta_objective,
        )


def meta_train_noisy_labels(recipe: NoisyLabelsRecipe, **kwargs) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss on `NoisyLabelTasks`; the recipe goes into its metadata."""
    return meta_train(recipe, family="noisy-labels", **kwargs)


def recipe_of(loss: LearnedLoss) -> NoisyLabelsRecipe:
    """The recipe a loss was meta-trained with (from its metadata), else the defaults."""
    return recipe_from_metadata(loss, NoisyLabelsRecipe)
