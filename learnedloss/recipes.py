"""Ready-made meta-training and evaluation set-ups, shared by the CLI, examples and docs.

Each recipe is a plain function of documented arguments; the CLI only parses them.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from learnedloss.baselines import standard_losses
from learnedloss.config import LossConfig
from learnedloss.evaluation import Evaluation, evaluate, lr_grid
from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.tasks.sine import SineTasks


def _residual_start_config(
    output_activation, hidden, inputs, residual_form: str = "add"
) -> LossConfig:
    return LossConfig(
        hidden_sizes=hidden,
        activation="relu",
        output_activation=output_activation,
        bias=True,
        residual=True,
        residual_form=residual_form,
        inputs=inputs,
    )


def mse_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("input", "target", "residual"),
    residual_form: str = "add",
) -> LossConfig:
    """A loss network that equals MSE exactly before meta-training.

    The network reads (prediction, target, residual), combines the residual with its last
    pre-activation (``residual_form``: added, or scaling it, see `LossConfig`) and squares
    the result; its last layer starts at zero, so it starts as (prediction - target)² and
    learns a correction.
    """
    return _residual_start_config("square", hidden, inputs, residual_form)


def huber_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("input", "target", "residual"),
    residual_form: str = "add",
) -> LossConfig:
    """A loss network that equals the Huber loss (δ = 1, ``F.huber_loss``) exactly before
    meta-training: as `mse_start_config`, with a ``huber`` output instead of a square."""
    return _residual_start_config("huber", hidden, inputs, residual_form)


def cross_entropy_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("log_prob", "prob", "target"),
    activation: str = "relu",
) -> LossConfig:
    """A classification loss network that equals ``F.cross_entropy`` before meta-training.

    Each class's term is ``-target * log_prob`` plus the network's output, and the network's
    last layer starts at zero, so the loss starts as cross-entropy (to float rounding) and
    learns a correction per class.
    """
    return LossConfig(
        kind="classification",
        hidden_sizes=hidden,
        activation=activation,
        output_activation="identity",
        bias=True,
        residual=True,
        inputs=inputs,
    )


_STARTS = {"mse": mse_start_config, "huber": huber_start_config}


@dataclass
class SineRecipe:
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
    # "backprop" or "es" (evolution strategies, for horizons too chaotic to backpropagate)
    meta_gradient: str = "backprop"
    es_pairs: int = 16
    es_sigma: float = 0.05
    # what is saved: the "best" loss by meta-validation, or the "last" one
    keep: str = "best"
    meta_batch_size: int = 64
    meta_lr: float = 1e-3
    score_on: str = "query"
    aggregate: str = "log-mean"
    validate_every: int = 25
    validation_size: int = 32
    seed: int = 0

    def tasks(self) -> SineTasks:
        return SineTasks(
            amplitude=self.amplitude,
            phase=self.phase,
            x_range=self.x_range,
            outlier_fraction=self.outlier_fraction,
        )

    def initial_loss(self) -> LearnedLoss:
        torch.manual_seed(self.seed)
        if self.start in _STARTS:
            return LearnedLoss(
                _STARTS[self.start](self.hidden, self.inputs, residual_form=self.residual_form)
            )
        if self.start == "ml3":
            return LearnedLoss(LossConfig(hidden_sizes=self.hidden, inputs=self.inputs))
        raise ValueError(f"start must be 'mse', 'huber' or 'ml3', got {self.start!r}")


def meta_train(
    recipe,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    max_seconds: float | None = None,
    family: str | None = None,
    tasks=None,
    callbacks=(),
) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss as a recipe says; returns (best loss, trainer).

    A recipe is a dataclass with ``tasks()``, ``initial_loss()`` and ``outer_steps``; its
    fields named like `MetaTrainer` arguments (``inner_steps``, ``meta_lr``, ...) are passed
    on. Checkpoints are written at every validation. ``max_seconds`` stops early (see
    `MetaTrainer.fit`). With ``family``, the recipe is recorded in the loss's metadata as
    ``{"family": family, **recipe}``, so that commands can rebuild its tasks. ``tasks``
    replaces ``recipe.tasks()`` (for families built from more than the recipe, such as a
    fitted dynamics model) and ``callbacks`` go to the `MetaTrainer`.
    """
    accepted = set(inspect.signature(MetaTrainer).parameters)
    settings = {k: v for k, v in asdict(recipe).items() if k in accepted}
    trainer = MetaTrainer(
        recipe.initial_loss(),
        recipe.tasks() if tasks is None else tasks,
        **settings,
        callbacks=callbacks,
        run_dir=run_dir,
        checkpoint_every=max(1, settings.get("validate_every", 100)),
        device=device,
        progress=progress,
    )
    best = trainer.fit(recipe.outer_steps, resume=resume, max_seconds=max_seconds)
    if family is not None:
        best.metadata["recipe"] = {"family": family, **asdict(recipe)}
    return best, trainer


def recipe_from_metadata(loss: LearnedLoss, recipe_class):
    """The ``recipe_class`` a loss was meta-trained with, from the ``recipe`` its metadata
    records (`meta_train` with ``family``); fields it does not record keep their defaults
    (lists become tuples)."""
    saved = loss.metadata.get("recipe", {})
    names = {f.name for f in fields(recipe_class)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}
    return recipe_class(**values)


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


def save_run(out: str | Path, loss: LearnedLoss, trainer: MetaTrainer, recipe) -> Path:
    """Save the loss (save_pretrained) plus ``history.json`` and ``recipe.json`` (the recipe
    dataclass, e.g. `SineRecipe` or `learnedloss.shaping.FrequencyRecipe`) beside it."""
    out = Path(out)
    loss.save_pretrained(out)
    (out / "history.json").write_text(json.dumps(trainer.history))
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    return out
