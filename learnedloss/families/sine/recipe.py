"""Meta-train and evaluate losses on sine regression: the recipe behind ``learnedloss
meta-train sine``, ``learnedloss demo`` and docs/sine.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from learnedloss.config import LossConfig
from learnedloss.evaluation.baselines import standard_losses
from learnedloss.evaluation.protocol import Evaluation, evaluate, lr_grid
from learnedloss.families.recipe import MetaGradientRecipe, meta_train, seeded
from learnedloss.families.sine.tasks import SineTasks
from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import huber_start_config, mse_start_config

_STARTS = {"mse": mse_start_config, "huber": huber_start_config}


@dataclass
class SineRecipe(MetaGradientRecipe):
    """Meta-training settings for sine regression (defaults: the corrupted-target set-up).

    The sine distribution defaults to ML3's meta-test one: amplitude [0.2, 5], phase
    [-π, π], x in [-5, 5], 100 training points, 1-100-10-1 ReLU models.
    """

    outlier_fraction: float = 0.2
    amplitude: tuple[float, float] = (0.2, 5.0)
    phase: tuple[float, float] = (-math.pi, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    # "mse" / "huber": a residual network equal to MSE / Huber(δ=1); "ml3": ML3's reference
    start: str = "mse"
    hidden: tuple[int, ...] = (50, 50)
    inputs: tuple[str, ...] = ("input", "target")
    # how a "mse" / "huber" start's network corrects the standard term (LossConfig)
    residual_form: str = "add"
    # Short inner horizons: the meta-gradient through 100 SGD steps near the edge of
    # stability explodes (norm ~1e10, batch-to-batch cosine ~0; docs/sine.md), through
    # 10 steps it is usable. The loss is then evaluated at 100 steps.
    outer_steps: int = 2000
    inner_steps: int = 10
    inner_lr: float = 0.05
    inner_optimizer: str = "sgd"
    truncate: int | None = None
    # meta_gradient "backprop" (the default) or "es" (evolution strategies, for horizons too
    # chaotic to backpropagate), es_pairs, es_sigma and keep: `MetaGradientRecipe`'s defaults
    meta_batch_size: int = 64
    score_on: str = "query"
    aggregate: str = "log-mean"
    validate_every: int = 25

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


def meta_train_sine(recipe: SineRecipe, **kwargs) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss on sine tasks; `meta_train` with a `SineRecipe`."""
    return meta_train(recipe, **kwargs)


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
