"""Meta-training settings as frozen, typed objects, each field declared once with its metadata.

A `MetaTrainingSettings` composes small groups, the way optax and torchopt chain
transformations: how each task's model is trained (`InnerLoop`), the outer schedule
(`Schedule`), the seed (`Run`) and, where a recipe lets the user choose it, the meta-gradient
estimator (`Estimator`). Every field is declared with `setting`, which records its help text,
its validator and its choices; from that one declaration come the command-line option
(`learnedloss.cli.options`), the stored recipe field (`MetaTrainingSettings.values`) and the
documented parameter (`describe`). Setting names are unique across the groups, so a recipe
reads, stores and takes them flat (``inner_lr``, ``outer_steps``, ...).

An unknown or misspelled setting is a `learnedloss.errors.ConfigError` that names it.
`MetaTrainingSettings.trainer_arguments` is the one explicit mapping to `MetaTrainer`'s
keyword arguments.

Examples:
    >>> from learnedloss.meta.settings import InnerLoop, MetaTrainingSettings, Schedule
    >>> settings = MetaTrainingSettings(inner=InnerLoop(inner_steps=10), schedule=Schedule())
    >>> settings.replace(inner_lr=0.05).inner.inner_lr
    0.05
    >>> settings.trainer_arguments()["inner_steps"]
    10
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from learnedloss.errors import ConfigError
from learnedloss.meta.arguments import CHOICES
from learnedloss.meta.gradients import meta_gradient_from
from learnedloss.meta.rates import learning_rate_range
from learnedloss.validators import (
    count_or_all,
    non_negative_int,
    positive_float,
    positive_int,
)

SETTING = "learnedloss.setting"
"""The key of a field's `SettingSpec` in its ``metadata``."""


@dataclass(frozen=True)
class SettingSpec:
    """What a setting says about itself, besides its name, type and default.

    Attributes:
        help: one line for ``--help`` and the docs.
        parse: the validator that turns an option's text into a value (default: the
            field's type, or its element type for a tuple).
        choices: the values allowed, if they are few.
        flag: the command-line flag (default: ``--`` and the name with dashes).
        metavar: argparse's ``metavar`` (a fixed-length tuple gets ``LOW HIGH`` for two).
        nargs: argparse's ``nargs`` (default: from the type: ``+`` for ``tuple[X, ...]``,
            the length for a fixed-length tuple).
        action: an argparse action instead of a value (``"store_false"`` for a flag that
            turns a ``True`` default off).
        option: whether the setting is a command-line option (some are set in code only).
        check: a check of the whole value, ``check(value, name)``, run whenever a recipe is
            built (in code, from options or from a stored recipe); it raises `ValueError`
            (e.g. `learnedloss.validators.interval` for a range that must not be reversed
            or empty).
        applies_when: ``(setting, value)``: the setting matters only when that other setting
            has that value (``es_pairs`` only with ``meta_gradient="es"``); the command line
            refuses it when given otherwise.
    """

    help: str
    parse: Callable[[str], Any] | None = None
    choices: tuple | None = None
    flag: str | None = None
    metavar: str | tuple[str, ...] | None = None
    nargs: int | str | None = None
    action: str | None = None
    option: bool = True
    check: Callable[[Any, str], None] | None = None
    applies_when: tuple[str, Any] | None = None


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field for a setting: its ``default`` and its `SettingSpec` (``help`` and
    the ``spec`` keywords), kept in the field's metadata. Defaults must be immutable
    (tuples, not lists)."""
    if "choices" in spec and spec["choices"] is not None:
        spec["choices"] = tuple(spec["choices"])
    return field(default=default, metadata={SETTING: SettingSpec(help, **spec)})


@dataclass(frozen=True)
class SettingField:
    """One declared setting of a class: its name, resolved type, default and spec."""

    name: str
    type: Any
    default: Any
    spec: SettingSpec


def setting_fields(cls: type, defaults: Any = None) -> Iterator[SettingField]:
    """The settings a dataclass declares with `setting`, in order, with their resolved
    types; the defaults are ``defaults``'s values where given (an instance), else the
    class's."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(SETTING)
        if spec is not None:
            value = f.default if defaults is None else getattr(defaults, f.name)
            yield SettingField(f.name, hints[f.name], value, spec)


def describe(items: Iterable[SettingField]) -> str:
    """Google-style ``Attributes:`` lines for settings: each one's help and default."""
    lines = ["Attributes:"]
    for item in items:
        lines.append(f"    {item.name}: {item.spec.help} (default: {item.default!r}).")
    return "\n".join(lines)


def check_values(items: Iterable[SettingField], values: dict[str, Any], owner: str) -> None:
    """Run each setting's own `SettingSpec.check` on its value in ``values``; a `ConfigError`
    that names the setting and ``owner`` for the first that fails."""
    for item in items:
        if item.spec.check is not None:
            try:
                item.spec.check(values[item.name], item.name)
            except ValueError as err:
                raise ConfigError(f"{owner}: {err}") from None


def unknown_setting_error(unknown: Iterable[str], known: Iterable[str], owner: str) -> ConfigError:
    """The `ConfigError` for settings ``owner`` does not have, naming them (and the closest
    known names)."""
    known = sorted(known)
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ConfigError(
        f"unknown setting {', '.join(parts)} for {owner}; its settings are {', '.join(known)}"
    )


@dataclass(frozen=True)
class InnerLoop:
    """How each task's model is trained with the loss."""

    inner_steps: int = setting(
        1, "optimizer steps each task's model takes with the loss", parse=positive_int
    )
    inner_lr: float = setting(1e-3, "the inner optimizer's learning rate", parse=positive_float)
    inner_optimizer: str = setting(
        "sgd", "the optimizer each task's model is trained with", choices=("sgd", "adam")
    )
    truncate: int | None = setting(
        None,
        "backpropagate through the last N inner steps only (0 or None: all)",
        parse=count_or_all,
    )
    inner_lr_range: tuple[float, float] | None = setting(
        None,
        "draw each task's inner learning rate log-uniformly from LOW HIGH, anew at every "
        "outer step (None: every task trains at inner_lr; needs path engine)",
        parse=positive_float,
        check=learning_rate_range,
    )
    path: str = setting(
        "auto",
        "how the inner loops run: vmap (auto: vmap, falling back to a loop over tasks), "
        "a loop over tasks, or the batched engine",
        choices=CHOICES["path"],
    )


@dataclass(frozen=True)
class Schedule:
    """The outer loop: how many loss updates, on how many tasks, validated how."""

    outer_steps: int = setting(500, "loss updates", parse=positive_int)
    meta_batch_size: int = setting(
        8, "tasks per loss update", parse=positive_int, flag="--meta-batch"
    )
    meta_lr: float = setting(
        1e-3, "Adam's learning rate for the loss network", parse=positive_float
    )
    validate_every: int = setting(
        50,
        "outer steps between meta-validations and checkpoints (0: never)",
        parse=non_negative_int,
    )
    validation_size: int = setting(32, "meta-validation tasks", parse=positive_int)
    score_on: str = setting(
        "query",
        "score the trained models on query points or on their training points",
        choices=("query", "train"),
    )
    aggregate: str = setting(
        "mean",
        "combine task objectives by their mean or the mean of their logs",
        choices=("mean", "log-mean"),
    )


@dataclass(frozen=True)
class Run:
    """What makes a run repeatable."""

    seed: int = setting(
        0, "random seed of the initial loss, the task sampling and the models", parse=int
    )


@dataclass(frozen=True)
class Estimator:
    """How the meta-gradient is estimated, and which loss is kept."""

    meta_gradient: str = setting(
        "backprop",
        "backprop through the inner loop, estimate by evolution strategies (es), or search "
        "by CMA-ES (cmaes)",
        choices=("backprop", "es", "cmaes"),
    )
    es_pairs: int = setting(
        16, "ES perturbation pairs", parse=positive_int, applies_when=("meta_gradient", "es")
    )
    es_sigma: float = setting(
        0.05, "ES perturbation scale", parse=positive_float, applies_when=("meta_gradient", "es")
    )
    cmaes_population: int = setting(
        16,
        "CMA-ES candidates per generation",
        parse=positive_int,
        applies_when=("meta_gradient", "cmaes"),
    )
    cmaes_sigma: float = setting(
        0.1,
        "CMA-ES initial step size",
        parse=positive_float,
        applies_when=("meta_gradient", "cmaes"),
    )
    keep: str = setting(
        "best",
        "save the loss with the best meta-validation, or the one after the last step",
        choices=("best", "last"),
    )
    clip_meta_grad: float | None = setting(
        None, "clip the meta-gradient's norm to this (None: no clipping)", parse=positive_float
    )
    meta_parameters: tuple[str, ...] | None = setting(
        None, "the loss parameters to meta-train (None: all), e.g. network.values"
    )


GROUPS = ("inner", "schedule", "run", "estimator")
"""The groups of `MetaTrainingSettings`, in order."""


@dataclass(frozen=True)
class MetaTrainingSettings:
    """Everything that decides a meta-training run, composed of groups.

    Attributes:
        inner: the inner loop (`InnerLoop`).
        schedule: the outer schedule (`Schedule`).
        run: the seed (`Run`).
        estimator: the meta-gradient estimator and which loss to keep (`Estimator`), or
            ``None`` for backpropagation keeping the best loss, with no such settings.
    """

    inner: InnerLoop = InnerLoop()
    schedule: Schedule = Schedule()
    run: Run = Run()
    estimator: Estimator | None = None

    def groups(self) -> list[Any]:
        """The groups present, in order."""
        groups = (getattr(self, name) for name in GROUPS)
        return [group for group in groups if group is not None]

    def fields(self) -> list[SettingField]:
        """Every setting of the present groups, with this object's values as defaults."""
        return [item for group in self.groups() for item in setting_fields(type(group), group)]

    def names(self) -> list[str]:
        """The settings' names."""
        return [item.name for item in self.fields()]

    def values(self) -> dict[str, Any]:
        """``{name: value}`` of every setting, flat: what a stored recipe holds."""
        return {item.name: item.default for item in self.fields()}

    def replace(self, **changes: Any) -> MetaTrainingSettings:
        """A copy with ``changes`` (flat setting names); a `ConfigError` naming any name
        that is not a setting here."""
        unknown = set(changes) - set(self.names())
        if unknown:
            raise unknown_setting_error(unknown, self.names(), "these meta-training settings")
        replaced = {}
        for name in GROUPS:
            group = getattr(self, name)
            if group is None:
                continue
            own = {f.name for f in dataclasses.fields(group)}
            mine = {k: v for k, v in changes.items() if k in own}
            replaced[name] = dataclasses.replace(group, **mine) if mine else group
        return dataclasses.replace(self, **replaced)

    def trainer_arguments(self) -> dict[str, Any]:
        """The `MetaTrainer` keyword arguments these settings give (checkpoints at every
        validation). The one mapping from settings to the trainer."""
        inner, schedule = self.inner, self.schedule
        arguments: dict[str, Any] = {
            "inner_steps": inner.inner_steps,
            "inner_lr": inner.inner_lr,
            "inner_optimizer": inner.inner_optimizer,
            "truncate": inner.truncate,
            "inner_lr_range": inner.inner_lr_range,
            "path": inner.path,
            "meta_batch_size": schedule.meta_batch_size,
            "meta_lr": schedule.meta_lr,
            "validate_every": schedule.validate_every,
            "validation_size": schedule.validation_size,
            "checkpoint_every": max(1, schedule.validate_every),
            "score_on": schedule.score_on,
            "aggregate": schedule.aggregate,
            "seed": self.run.seed,
        }
        estimator = self.estimator
        if estimator is not None:
            cmaes = estimator.meta_gradient == "cmaes"
            arguments["meta_gradient"] = meta_gradient_from(
                estimator.meta_gradient,
                estimator.es_pairs,
                estimator.cmaes_sigma if cmaes else estimator.es_sigma,
                estimator.cmaes_population,
            )
            arguments["keep"] = estimator.keep
            arguments["clip_meta_grad"] = estimator.clip_meta_grad
            arguments["meta_parameters"] = estimator.meta_parameters
        return arguments
