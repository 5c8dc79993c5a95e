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

from learnedloss.families.recipe import (
    HELD_OUT_TRANSFER_SETTINGS,
    HeldOutTransferRecipe,
    declare_recipe,
    hidden_setting,
    sources_setting,
    widths_setting,
)
from learnedloss.families.robust_regression.tasks import (
    CORRUPTIONS,
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    TABLES,
    RobustRegressionTasks,
)
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.starts import scale_free_mse_start_config
from learnedloss.validators import fraction, positive_int, value_range


@declare_recipe
class RobustRegressionRecipe(HeldOutTransferRecipe):
    """Meta-training settings for the broad robust-regression family.

    Defaults: tasks from ``"synthetic"`` and `META_TRAIN_TABLES` (never the held-out tables),
    96 training and 64 clean query rows, 0-40% corrupted training targets, 2-hidden-layer ReLU
    MLPs of width 16/32/64 trained 100 full-batch Adam steps at lr 0.01; a 16-16 loss network
    over (scaled_residual, standardized_target) that starts as exactly MSE; evolution
    strategies with 4 antithetic pairs on 8 tasks per outer step; the log-mean query MSE as
    the meta-objective (so tasks of every target scale count alike).
    """

    settings: MetaTrainingSettings = HELD_OUT_TRANSFER_SETTINGS.replace(
        inner_optimizer="adam", aggregate="log-mean"
    )
    sources: tuple[str, ...] = sources_setting(
        ("synthetic", *META_TRAIN_TABLES), ("synthetic", *TABLES), HELD_OUT_TABLES
    )
    n_train: int = setting(96, "training rows per task", parse=positive_int, option=False)
    n_query: int = setting(64, "clean query rows per task", parse=positive_int, option=False)
    outlier_fraction: tuple[float, float] = setting(
        (0.0, 0.4),
        "range of each task's corrupted fraction",
        parse=fraction,
        check=value_range,
    )
    corruptions: tuple[str, ...] = setting(
        CORRUPTIONS, "how training targets are corrupted", choices=CORRUPTIONS, option=False
    )
    widths: tuple[int, ...] = widths_setting((16, 32, 64))
    hidden: tuple[int, ...] = hidden_setting((16, 16))
    inputs: tuple[str, ...] = setting(
        ("scaled_residual", "standardized_target"),
        "per-element features the loss network reads",
        option=False,
    )

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
