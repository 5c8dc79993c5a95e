"""The machinery every family's recipe shares: the `Recipe` base, which holds a
`MetaTrainingSettings` beside the family's own settings, meta-train a loss as a recipe says,
and save a run.

A recipe is a frozen dataclass declared with `declare_recipe`; it has ``tasks()`` and
``initial_loss()``. Its settings, the meta-training ones and its own (declared with
`learnedloss.meta.settings.setting`), are read, given and stored flat by name:
``SineRecipe(outer_steps=3, hidden=(8,)).inner_lr``. A name that is not a setting is a
`ConfigError` that names it, in code and in a stored recipe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from learnedloss.config import RESIDUAL_FORMS
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import (
    Estimator,
    InnerLoop,
    MetaTrainingSettings,
    Run,
    Schedule,
    SettingField,
    check_values,
    describe,
    setting,
    setting_fields,
    unknown_setting_error,
)
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import monotone_start_config
from learnedloss.validators import positive_int

R = TypeVar("R", bound="Recipe")


def declare_recipe(cls: type[R]) -> type[R]:
    """Make ``cls`` a recipe: a frozen, keyword-only dataclass whose constructor also takes
    its meta-training settings flat (``SineRecipe(inner_lr=0.1)`` replaces that setting in
    the class's default ``settings``) and refuses unknown names, and values that fail a
    setting's own check (`SettingSpec.check`: a reversed range), with a `ConfigError`. Its
    docstring gets the documented list of every setting."""
    cls = dataclass(frozen=True, kw_only=True)(cls)
    generated = cls.__init__
    own = {f.name for f in fields(cls)} - {"settings"}

    def __init__(self, *, settings: MetaTrainingSettings | None = None, **values: Any) -> None:
        base = cls.default_settings() if settings is None else settings
        flat = {name: values.pop(name) for name in list(values) if name not in own}
        unknown = set(flat) - set(base.names())
        if unknown:
            raise unknown_setting_error(unknown, [*own, *base.names()], cls.__name__)
        generated(self, settings=base.replace(**flat) if flat else base, **values)
        check_values(cls.setting_fields(), self.to_dict(), cls.__name__)

    __init__.__doc__ = generated.__doc__
    cls.__init__ = __init__
    cls.__doc__ = f"{cls.__doc__ or cls.__name__}\n\n{describe(cls.setting_fields())}"
    return cls


@declare_recipe
class Recipe:
    """A family's recipe: the meta-training ``settings`` and the family's own settings.

    A family subclasses it with `declare_recipe`, redeclares ``settings`` with its default
    `MetaTrainingSettings` (composed of the groups it lets users set), declares its own
    fields with `setting`, and defines ``tasks()`` and ``initial_loss()``, which builds the
    loss under `seeded` (``seed``) so that it leaves the global RNG untouched.
    """

    settings: MetaTrainingSettings = MetaTrainingSettings()

    def __getattr__(self, name: str) -> Any:
        if name != "settings" and name in self.settings.names():
            return self.settings.values()[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or setting {name!r}")

    @classmethod
    def default_settings(cls) -> MetaTrainingSettings:
        """The meta-training settings the class declares as its default."""
        return cls.__dataclass_fields__["settings"].default

    @classmethod
    def setting_fields(cls) -> list[SettingField]:
        """Every setting of the recipe: the meta-training ones, then the family's own."""
        return [*cls.default_settings().fields(), *setting_fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, flat (what ``recipe.json`` and a loss's metadata store)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        return {**self.settings.values(), **own}

    @classmethod
    def from_dict(cls: type[R], values: Mapping[str, Any]) -> R:
        """The recipe with ``values`` (flat names, as `to_dict` gives; JSON lists become
        tuples), the class's defaults elsewhere; a `ConfigError` names unknown names."""
        return cls(**{name: _tuples(value) for name, value in values.items()})

    @classmethod
    def from_loss(cls: type[R], loss: LearnedLoss) -> R:
        """The recipe ``loss`` was meta-trained with, from its metadata (`meta_train` with
        ``family`` stores it; release 0.1 stored the same flat form), else the defaults."""
        stored = dict(loss.metadata.get("recipe", {}))
        stored.pop("family", None)
        return cls.from_dict(stored)


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def hidden_setting(default: tuple[int, ...], *, allow_none: bool = False) -> Any:
    """The ``hidden`` setting: the loss network's hidden sizes (``allow_none``: none gives a
    linear map)."""
    return setting(
        default,
        "the loss network's hidden sizes" + (" (none: a linear map)" if allow_none else ""),
        parse=positive_int,
        nargs="*" if allow_none else "+",
    )


def sources_setting(default: tuple[str, ...], choices: tuple[str, ...], held_out) -> Any:
    """The ``sources`` setting of a broad family: what its tasks draw from, never the
    ``held_out`` tables if a loss is to be evaluated on them."""
    return setting(
        default,
        f"what tasks draw from (never the held-out tables {list(held_out)} if you want to "
        "evaluate on them)",
        choices=choices,
    )


def widths_setting(default: tuple[int, ...]) -> Any:
    """The ``widths`` setting: the widths the tasks' MLPs draw from."""
    return setting(default, "widths the tasks' MLPs draw from", parse=positive_int)


def shaped_setting(unshaped: str) -> Any:
    """The ``shaped`` setting: the meta-objective with the information available only at
    meta-train time, or ``unshaped`` instead (the ``--unshaped`` flag)."""
    return setting(True, f"meta-objective: {unshaped}", flag="--unshaped", action="store_false")


def residual_form_setting(default: str) -> Any:
    """The ``residual_form`` setting: how a residual loss network's output ``h`` corrects
    the standard term ``r`` (`LossConfig.residual_form`)."""
    return setting(
        default,
        "how the network corrects the standard term r: add (r + h), scale ((1 + h) r), "
        "weight (w * loss(r), weights w = N softmax(h) averaging 1 over the call) or, for "
        "policy-gradient losses, baseline (-log_prob * (advantage - h))",
        choices=RESIDUAL_FORMS,
    )


ESTIMATING = MetaTrainingSettings(estimator=Estimator())
"""The base settings of a recipe that lets users choose the meta-gradient estimator."""


@declare_recipe
class MetaGradientRecipe(Recipe):
    """A `Recipe` whose users also choose the meta-gradient estimator and which loss to keep
    (`learnedloss.meta.settings.Estimator`)."""

    settings: MetaTrainingSettings = ESTIMATING


HELD_OUT_TRANSFER_SETTINGS = MetaTrainingSettings(
    inner=InnerLoop(inner_steps=100, inner_lr=0.01),
    schedule=Schedule(outer_steps=150, meta_lr=0.01, validate_every=10, validation_size=16),
    run=Run(),
    estimator=Estimator(meta_gradient="es", es_pairs=4, keep="last"),
)
"""150 outer steps of evolution strategies with 4 antithetic pairs, 100 inner steps at lr
0.01, meta-lr 0.01, the last loss kept, meta-validation every 10 outer steps on 16 tasks."""


@declare_recipe
class HeldOutTransferRecipe(MetaGradientRecipe):
    """A recipe for a broad family whose loss is meant to carry over to held-out data (noisy
    labels, robust regression): `HELD_OUT_TRANSFER_SETTINGS`, and an initial loss built from
    the subclass's ``start_config(hidden, inputs)``.

    Subclasses declare the ``hidden`` and ``inputs`` fields and set
    ``start_config = staticmethod(...)`` to a `learnedloss.starts` function.
    ``parameterization="grid"`` swaps the start's MLP for a spline over the same inputs
    (``grid_knots`` and ``grid_range`` per input, see `LossConfig`); the start's residual
    term and form are kept, so it starts as the same standard loss. Evolution strategies
    search its few knot values far better than an MLP's hundreds of weights, and a frozen
    grid is fast.
    """

    settings: MetaTrainingSettings = HELD_OUT_TRANSFER_SETTINGS
    parameterization: str = setting(
        "mlp",
        "the loss network: an MLP, a grid spline, or a monotone loss over the scaled error "
        "(inputs: the magnitude, then optionally a call statistic such as contamination)",
        choices=("mlp", "grid", "monotone"),
        option=False,
    )
    grid_knots: tuple[int, ...] | None = setting(None, "grid knots per input", option=False)
    grid_range: tuple[tuple[float, float], ...] | None = setting(
        None, "grid range per input", option=False
    )

    def initial_loss(self) -> LearnedLoss:
        config = self.start_config(self.hidden, self.inputs)
        if self.parameterization == "monotone":
            config = self._monotone_config(config.kind)
        elif self.parameterization != "mlp":
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

    def _monotone_config(self, kind: str):
        """The monotone start over ``inputs`` (the magnitude first, then an optional call
        statistic), with this recipe's knots and ranges."""
        knots = tuple(self.grid_knots or (17, 3))
        ranges = tuple(tuple(bounds) for bounds in (self.grid_range or ((0.0, 16.0),)))
        adapt_to = self.inputs[1] if len(self.inputs) > 1 else None
        return monotone_start_config(
            "mse" if kind == "regression" else "cross_entropy",
            knots=knots[0],
            max_magnitude=ranges[0][1],
            adapt_to=adapt_to,
            adapt_knots=knots[1] if adapt_to and len(knots) > 1 else 3,
        )


@contextmanager
def seeded(seed: int):
    """Seed the global torch RNG with ``seed`` inside the block and restore it after.

    ``with seeded(self.seed): loss = LearnedLoss(...)`` builds the same initial weights as
    ``torch.manual_seed(self.seed)`` followed by the construction, but leaves the caller's
    RNG as it was (CPU only: recipes build on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def meta_train(
    recipe: Recipe,
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

    The recipe's settings reach `MetaTrainer` through
    `MetaTrainingSettings.trainer_arguments`; checkpoints are written at every validation.
    ``max_seconds`` stops early (see `MetaTrainer.fit`). With ``family``, the recipe is
    recorded in the loss's metadata as ``{"family": family, **recipe.to_dict()}``, so that
    commands can rebuild its tasks (`Recipe.from_loss`). ``tasks`` replaces
    ``recipe.tasks()`` (for families built from more than the recipe, such as a fitted
    dynamics model) and ``callbacks`` go to the `MetaTrainer`. A fresh run needs an empty
    ``run_dir`` unless ``overwrite`` (see `MetaTrainer.fit`).
    """
    trainer = MetaTrainer(
        recipe.initial_loss(),
        recipe.tasks() if tasks is None else tasks,
        **recipe.settings.trainer_arguments(),
        callbacks=callbacks,
        run_dir=run_dir,
        device=device,
        progress=progress,
    )
    best = trainer.fit(
        recipe.outer_steps, resume=resume, max_seconds=max_seconds, overwrite=overwrite
    )
    if family is not None:
        best.metadata["recipe"] = {"family": family, **recipe.to_dict()}
    return best, trainer


def save_run(out: str | Path, loss: LearnedLoss, trainer: MetaTrainer, recipe: Recipe) -> Path:
    """Save the loss (save_pretrained) plus ``history.json`` and ``recipe.json`` (the recipe's
    settings, `Recipe.to_dict`) beside it. In a data-parallel job
    (``torchrun``) only rank 0 writes; every rank holds the same loss."""
    out = Path(out)
    if getattr(trainer, "rank", 0) != 0:
        return out
    loss.save_pretrained(out)
    (out / "history.json").write_text(json.dumps(trainer.history))
    (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    return out
