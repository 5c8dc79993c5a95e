"""The machinery every family's recipe shares: the `Recipe` base with the schedule fields,
meta-train a loss as a recipe says, rebuild a recipe from a loss's metadata, and save a run.

A recipe is a dataclass with ``tasks()``, ``initial_loss()`` and ``outer_steps``; its fields
named like `MetaTrainer` arguments are passed on.
"""

from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from learnedloss.loss import LearnedLoss
from learnedloss.meta.gradients import meta_gradient_from
from learnedloss.meta.trainer import MetaTrainer


@dataclass
class Recipe:
    """The schedule fields every family's recipe shares, plain values that serialize to JSON.

    A family's recipe subclasses this (or `MetaGradientRecipe`), adds its own fields and
    redeclares a schedule field only to change its default. `meta_train` passes the fields
    named like `MetaTrainer` arguments on. Subclasses define ``tasks()`` and
    ``initial_loss()``, which builds the loss under `seeded` (``seed``) so that it leaves the
    global RNG untouched.

    Attributes:
        outer_steps: outer (meta-) steps.
        inner_steps: inner-loop steps per task.
        inner_lr: inner-loop learning rate.
        meta_batch_size: tasks per outer step.
        meta_lr: the learning rate of the meta-optimizer (Adam).
        validate_every: meta-validate (and checkpoint) every this many outer steps.
        validation_size: fixed meta-validation tasks.
        seed: seeds the initial loss, task sampling and model initialization.
    """

    outer_steps: int = 500
    inner_steps: int = 1
    inner_lr: float = 1e-3
    meta_batch_size: int = 8
    meta_lr: float = 1e-3
    validate_every: int = 50
    validation_size: int = 32
    seed: int = 0


@dataclass
class MetaGradientRecipe(Recipe):
    """A `Recipe` that also chooses the meta-gradient estimator and which loss to keep.

    The estimator is kept as plain fields, so the recipe stays JSON; `meta_train` turns them
    into ``Backprop()`` or ``EvolutionStrategies(pairs=es_pairs, sigma=es_sigma)`` (see
    `learnedloss.meta.gradients.meta_gradient_from`).

    Attributes:
        meta_gradient: ``"backprop"`` or ``"es"`` (evolution strategies).
        es_pairs: antithetic perturbation pairs per outer step (``"es"`` only).
        es_sigma: perturbation scale (``"es"`` only).
        keep: what is saved: the ``"best"`` loss by meta-validation, or the ``"last"`` one.
    """

    meta_gradient: str = "backprop"
    es_pairs: int = 16
    es_sigma: float = 0.05
    keep: str = "best"


@dataclass
class HeldOutTransferRecipe(MetaGradientRecipe):
    """A `MetaGradientRecipe` for a broad family whose loss is meant to carry over to held-out
    data (noisy labels, robust regression): the shared evolution-strategies schedule, and an
    initial loss built from the subclass's ``start_config(hidden, inputs)``.

    Defaults: 150 outer steps of evolution strategies with 4 antithetic pairs, 100 inner steps
    at lr 0.01, meta-lr 0.01, the ``"last"`` loss kept, meta-validation every 10 outer steps on
    16 tasks. Subclasses declare the ``hidden`` and ``inputs`` fields and set
    ``start_config = staticmethod(...)`` to a `learnedloss.starts` function.

    ``clip_meta_grad`` and ``meta_parameters`` go to `MetaTrainer` (e.g.
    ``meta_parameters=("network.values",)`` keeps a grid's knot slopes at 0).
    ``parameterization="grid"`` swaps the start's MLP for a spline over the same inputs
    (``grid_knots`` and ``grid_range`` per input, see `LossConfig`); the start's residual
    term and form are kept, so it starts as the same standard loss. Evolution strategies
    search its few knot values far better than an MLP's hundreds of weights, and a frozen
    grid is fast.
    """

    outer_steps: int = 150
    inner_steps: int = 100
    inner_lr: float = 0.01
    meta_lr: float = 0.01
    meta_gradient: str = "es"
    es_pairs: int = 4
    keep: str = "last"
    validate_every: int = 10
    validation_size: int = 16

    clip_meta_grad: float | None = None
    meta_parameters: tuple[str, ...] | None = None
    parameterization: str = "mlp"
    grid_knots: tuple[int, ...] | None = None
    grid_range: tuple[tuple[float, float], ...] | None = None

    def initial_loss(self) -> LearnedLoss:
        config = self.start_config(self.hidden, self.inputs)
        if self.parameterization != "mlp":
            config = replace(
                config,
                parameterization=self.parameterization,
                grid_knots=None if self.grid_knots is None else tuple(self.grid_knots),
                grid_range=None
                if self.grid_range is None
                else tuple(tuple(bounds) for bounds in self.grid_range),
            )
        with seeded(self.seed):
            return LearnedLoss(config)


@contextmanager
def seeded(seed: int):
    """Seed the global torch RNG with ``seed`` inside the block and restore it after.

    ``with seeded(self.seed): loss = LearnedLoss(...)`` builds the same initial weights as
    ``torch.manual_seed(self.seed)`` followed by the construction, but leaves the caller's
    RNG as it was (CPU only: recipes build on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def trainer_settings(recipe) -> dict:
    """The `MetaTrainer` arguments a recipe sets: its fields named like them, with
    ``meta_gradient``/``es_pairs``/``es_sigma`` turned into an estimator object."""
    accepted = set(inspect.signature(MetaTrainer).parameters) - {"es_pairs", "es_sigma"}
    values = asdict(recipe)
    settings = {k: v for k, v in values.items() if k in accepted}
    if "meta_gradient" in settings:
        settings["meta_gradient"] = meta_gradient_from(
            settings["meta_gradient"], values.get("es_pairs"), values.get("es_sigma")
        )
    return settings


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
    overwrite: bool = False,
) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss as a recipe says; returns (best loss, trainer).

    A recipe is a dataclass with ``tasks()``, ``initial_loss()`` and ``outer_steps`` (see
    `Recipe`); its fields named like `MetaTrainer` arguments (``inner_steps``, ``meta_lr``,
    ...) are passed on, ``meta_gradient``, ``es_pairs`` and ``es_sigma`` as an estimator
    (`trainer_settings`). Checkpoints are written at every validation. ``max_seconds`` stops
    early (see `MetaTrainer.fit`). With ``family``, the recipe is recorded in the loss's metadata as
    ``{"family": family, **recipe}``, so that commands can rebuild its tasks. ``tasks``
    replaces ``recipe.tasks()`` (for families built from more than the recipe, such as a
    fitted dynamics model) and ``callbacks`` go to the `MetaTrainer`. A fresh run needs an
    empty ``run_dir`` unless ``overwrite`` (see `MetaTrainer.fit`).
    """
    settings = trainer_settings(recipe)
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
    best = trainer.fit(
        recipe.outer_steps, resume=resume, max_seconds=max_seconds, overwrite=overwrite
    )
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


def save_run(out: str | Path, loss: LearnedLoss, trainer: MetaTrainer, recipe) -> Path:
    """Save the loss (save_pretrained) plus ``history.json`` and ``recipe.json`` (the recipe
    dataclass, e.g. `SineRecipe` or `FrequencyRecipe`) beside it. In a data-parallel job
    (``torchrun``) only rank 0 writes; every rank holds the same loss."""
    out = Path(out)
    if getattr(trainer, "rank", 0) != 0:
        return out
    loss.save_pretrained(out)
    (out / "history.json").write_text(json.dumps(trainer.history))
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    return out
