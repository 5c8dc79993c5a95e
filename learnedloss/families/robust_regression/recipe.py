"""Meta-train a regression loss that carries over to data it never saw: the recipe behind the
bundled ``robust-regression`` loss and docs/robust-regression.md.

The loss reads only features free of the targets' scale and offset (the batch's residuals
over their median magnitude and its standardized targets) and its value is the squared error
times a learned factor of them, so it starts as exactly MSE and is the same loss in any units
(`learnedloss.starts.scale_free_mse_start_config`). It is meta-trained by evolution strategies
(the inner loop is long enough to be chaotic to backpropagate through) on
`RobustRegressionTasks`: synthetic functions and six real tables, random target scales and
offsets, 0-40% corrupted training targets of three kinds, MLPs of several widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnedloss.families.recipe import HeldOutTransferRecipe, meta_train, recipe_from_metadata
from learnedloss.families.robust_regression.tasks import (
    CORRUPTIONS,
    META_TRAIN_TABLES,
    RobustRegressionTasks,
)
from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import scale_free_mse_start_config


@dataclass
class RobustRegressionRecipe(HeldOutTransferRecipe):
    """Meta-training settings for the broad robust-regression family.

    Defaults: tasks from ``"synthetic"`` and `META_TRAIN_TABLES` (never the held-out tables),
    96 training and 64 clean query rows, 0-40% corrupted training targets, 2-hidden-layer ReLU
    MLPs of width 16/32/64 trained 100 full-batch Adam steps at lr 0.01; a 16-16 loss network
    over (scaled_residual, standardized_target) that starts as exactly MSE; evolution
    strategies with 4 antithetic pairs on 8 tasks per outer step; the log-mean query MSE as
    the meta-objective (so tasks of every target scale count alike).
    """

    sources: tuple[str, ...] = ("synthetic", *META_TRAIN_TABLES)
    n_train: int = 96
    n_query: int = 64
    outlier_fraction: tuple[float, float] = (0.0, 0.4)
    corruptions: tuple[str, ...] = CORRUPTIONS
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: tuple[int, ...] = (16, 16)
    inputs: tuple[str, ...] = ("scaled_residual", "standardized_target")
    inner_optimizer: str = "adam"
    aggregate: str = "log-mean"

    start_config = staticmethod(scale_free_mse_start_config)

    def tasks(self) -> RobustRegressionTasks:
        return RobustRegressionTasks(
            sources=self.sources,
            n_train=self.n_train,
            n_query=self.n_query,
            outlier_fraction=self.outlier_fraction,
            corruptions=self.corruptions,
            widths=self.widths,
        )


def meta_train_robust_regression(
    recipe: RobustRegressionRecipe, **kwargs
) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss on `RobustRegressionTasks`; the recipe goes into its metadata."""
    return meta_train(recipe, family="robust-regression", **kwargs)


def recipe_of(loss: LearnedLoss) -> RobustRegressionRecipe:
    """The recipe a loss was meta-trained with (from its metadata), else the defaults."""
    return recipe_from_metadata(loss, RobustRegressionRecipe)
