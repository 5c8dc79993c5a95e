"""Meta-train a classification loss that carries over to unseen data sets and class counts: the
recipe behind the bundled ``noisy-labels`` loss and docs/noisy-labels.md.

The loss is cross-entropy times a learned factor of the labelled class's probability and its
margin over the strongest rival (`learnedloss.starts.count_free_cross_entropy_start_config`),
so it is the same function for 2 classes or 100, and starts as exactly cross-entropy. It is
meta-trained by evolution strategies on `NoisyLabelTasks`: synthetic teachers and clusters
with 2-100 classes and three real tables, 0-60% symmetric or pair label noise.
"""

from __future__ import annotations

import torch

from learnedloss.config import PROGRESS_INPUT
from learnedloss.families.noisy_labels.tasks import (
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    NOISES,
    SYNTHETIC_SOURCES,
    TABLES,
    NoisyLabelTasks,
)
from learnedloss.families.recipe import (
    HELD_OUT_TRANSFER_SETTINGS,
    HeldOutTransferRecipe,
    declare_recipe,
    hidden_setting,
    sources_setting,
    widths_setting,
)
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.starts import (
    count_free_cross_entropy_start_config,
    generalized_cross_entropy_factor,
    truncated_cross_entropy_factor,
)
from learnedloss.validators import fraction, positive_int, value_range


@declare_recipe
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

    settings: MetaTrainingSettings = HELD_OUT_TRANSFER_SETTINGS.replace(inner_optimizer="adam")
    sources: tuple[str, ...] = sources_setting(
        (*SYNTHETIC_SOURCES, *META_TRAIN_TABLES), (*SYNTHETIC_SOURCES, *TABLES), HELD_OUT_TABLES
    )
    n_classes: tuple[int, ...] = setting(
        (2, 3, 5, 10, 20, 50, 100), "class counts the tasks draw from", parse=positive_int
    )
    n_train: int = setting(100, "training examples per task", parse=positive_int, option=False)
    n_query: int = setting(50, "clean query examples per task", parse=positive_int, option=False)
    label_noise: tuple[float, float] = setting(
        (0.0, 0.6), "range of each task's flipped fraction", parse=fraction, check=value_range
    )
    noises: tuple[str, ...] = setting(NOISES, "kinds of label noise", choices=NOISES, option=False)
    widths: tuple[int, ...] = widths_setting((32, 64))
    hidden: tuple[int, ...] = hidden_setting((16, 16))
    inputs: tuple[str, ...] = setting(
        ("prob", "margin"), "per-class features the loss network reads", option=False
    )
    start_gce_q: float | None = setting(
        None, "start a grid at GCE's shape with this q", parse=float, option=False
    )
    start_truncation: tuple[float, float] | None = setting(
        None, "start a grid at a soft small-loss selection (a, b)", parse=float, option=False
    )
    meta_objective: str = setting(
        "calibrated-cross-entropy", "how a trained model is scored on its query set", option=False
    )

    start_config = staticmethod(count_free_cross_entropy_start_config)

    def initial_loss(self) -> LearnedLoss:
        """The count-free start: exactly cross-entropy, or, for a grid over one input (and
        optionally ``progress``: the same shape at every progress), a hand-set shape: GCE's
        with ``start_gce_q`` (over ``"log_prob"``,
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
        allowed = ((axis,), (axis, PROGRESS_INPUT))
        if self.parameterization != "grid" or tuple(self.inputs) not in allowed:
            raise ValueError(
                f"{chosen[0]} needs parameterization='grid' and inputs=({axis!r},) or "
                f"({axis!r}, {PROGRESS_INPUT!r}) (the same shape at every progress), got "
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
