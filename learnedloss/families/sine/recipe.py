"""Meta-train and evaluate losses on sine regression: the recipe behind ``learnedloss
meta-train sine``, ``learnedloss demo`` and docs/sine.md."""

from __future__ import annotations

import math

import torch

from learnedloss.config import LossConfig
from learnedloss.evaluation.baselines import standard_losses
from learnedloss.evaluation.protocol import Evaluation, evaluate, lr_grid
from learnedloss.families.recipe import (
    ESTIMATING,
    MetaGradientRecipe,
    declare_recipe,
    hidden_setting,
    residual_form_setting,
    seeded,
)
from learnedloss.families.sine.tasks import SineTasks
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.starts import huber_start_config, mse_start_config
from learnedloss.validators import fraction, interval, value_range

_STARTS = {"mse": mse_start_config, "huber": huber_start_config}


@declare_recipe
class SineRecipe(MetaGradientRecipe):
    """Meta-training settings for sine regression (defaults: the corrupted-target set-up).

    The sine distribution defaults to ML3's meta-test one: amplitude [0.2, 5], phase
    [-π, π], x in [-5, 5], 100 training points, 1-100-10-1 ReLU models. Short inner
    horizons: the meta-gradient through 100 SGD steps near the edge of stability explodes
    (norm ~1e10, batch-to-batch cosine ~0; docs/sine.md), through 10 steps it is usable.
    The loss is then evaluated at 100 steps.
    """

    settings: MetaTrainingSettings = ESTIMATING.replace(
        inner_steps=10,
        inner_lr=0.05,
        outer_steps=2000,
        meta_batch_size=64,
        aggregate="log-mean",
        validate_every=25,
    )
    outlier_fraction: float = setting(
        0.2,
        "fraction of inner-loop targets replaced by noise in [-10, 10]",
        parse=fraction,
        flag="--outliers",
    )
    amplitude: tuple[float, float] = setting(
        (0.2, 5.0), "range of the sines' amplitudes", parse=float, check=value_range
    )
    phase: tuple[float, float] = setting(
        (-math.pi, math.pi), "range of the sines' phases", parse=float, check=value_range
    )
    x_range: tuple[float, float] = setting(
        (-5.0, 5.0), "range of the inputs x", parse=float, check=interval
    )
    start: str = setting(
        "mse",
        "mse / huber: a residual network equal to MSE / Huber (delta 1); ml3: ML3's "
        "reference network",
        choices=("mse", "huber", "ml3"),
    )
    hidden: tuple[int, ...] = hidden_setting((50, 50))
    inputs: tuple[str, ...] = setting(
        ("input", "target"),
        "per-element features the loss network reads",
        choices=("input", "target", "residual"),
    )
    residual_form: str = residual_form_setting("add")

    def tasks(self) -> SineTasks:
        return SineTasks(
            amplitude=self.amplitude,
            phase=self.phase,
            x_range=self.x_range,
            outlier_fraction=self.outlier_fraction,
        )

    def initial_loss(self) -> LearnedLoss:
        if self.start in _STARTS:
            config = _STARTS[self.start](self.hidden, self.inputs, residual_form=self.residual_form)
        elif self.start == "ml3":
            config = LossConfig(hidden_sizes=self.hidden, inputs=self.inputs)
        else:
            raise ValueError(f"start must be 'mse', 'huber' or 'ml3', got {self.start!r}")
        with seeded(self.seed):
            return LearnedLoss(config)


def evaluate_against_baselines(
    loss: LearnedLoss,
    tasks: SineTasks,
    *,
    name: str = "learned",
    steps: int = 100,
    n_tasks: int = 100,
    n_inits: int = 3,
    lr_range: tuple[float, float] = (1e-3, 0.5),
    tune_tasks: int = 32,
    same_lr: float | None = None,
    seed: int = 0,
    every: int = 1,
    device: str = "cpu",
    optimizer: str = "sgd",
) -> tuple[Evaluation, Evaluation | None]:
    """Score ``loss`` against MSE, the c·MSE controls and (with outliers) L1 and Huber.

    Returns the tuned-lr evaluation, and with ``same_lr`` also one where every loss uses that
    one learning rate.
    """
    losses = {"MSE": torch.nn.MSELoss(), name: loss}
    losses.update(
        {k: v for k, v in standard_losses(tasks.outlier_fraction > 0).items() if k != "MSE"}
    )
    common = dict(
        steps=steps,
        n_tasks=n_tasks,
        n_inits=n_inits,
        seed=seed,
        every=every,
        device=device,
        optimizer=optimizer,
    )
    tuned = evaluate(losses, tasks, lrs=lr_grid(*lr_range), tune_tasks=tune_tasks, **common)
    fixed = None
    if same_lr is not None:
        fixed = evaluate({"MSE": losses["MSE"], name: loss}, tasks, lr=same_lr, **common)
    return tuned, fixed
