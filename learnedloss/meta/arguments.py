"""Checks of `MetaTrainer`'s arguments, run before the trainer does any work.

Each check raises a `ValueError` that names the argument, says what it must be and shows
what came. `MetaTrainer.__init__` and `MetaTrainer.fit` call them; nothing here builds
anything.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

from learnedloss.kinds import loss_kind
from learnedloss.meta.gradients import Backprop, MetaGradient

CHOICES = {
    "score_on": ("query", "train"),
    "aggregate": ("mean", "log-mean"),
    "path": ("auto", "vmap", "loop", "engine"),
    "keep": ("best", "last"),
}
"""The values each string setting of `MetaTrainer` may take."""

LEAST = {
    "inner_steps": 1,
    "meta_batch_size": 1,
    "validation_size": 1,
    "validate_every": 0,
    "checkpoint_every": 1,
    "max_skips": 1,
    "seed": None,
    "steps": 1,
}
"""The smallest value of each integer setting (``None``: any integer)."""

OPTIONAL_RATES = ("clip_meta_grad", "inner_lr")
"""The rates that may be ``None`` (not clipped; the optimizer's own learning rate)."""


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (a `bool` is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_choices(**values: Any) -> None:
    """Refuse a string setting that is not one of its `CHOICES`.

    Examples:
        >>> check_choices(score_on="query", keep="last")
    """
    for name, value in values.items():
        allowed = [repr(choice) for choice in CHOICES[name]]
        if value not in CHOICES[name]:
            listed = ", ".join(allowed[:-1]) + " or " + allowed[-1]
            raise ValueError(f"{name} must be {listed}, got {value!r}")


def check_counts(**values: Any) -> None:
    """Refuse an integer setting that is not an integer or is below its `LEAST`.

    Examples:
        >>> check_counts(inner_steps=5, validate_every=0)
    """
    for name, value in values.items():
        check_count(name, value, LEAST[name])


def check_count(name: str, value: Any, least: int | None) -> None:
    """Refuse a count that is not an integer, or is below ``least``."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if least is not None and number < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        meaning = " (0: never)" if name == "validate_every" else ""
        raise ValueError(f"{name} must be {what}{meaning}, got {value!r}")


def check_rates(**values: Any) -> None:
    """Refuse a rate that is not a finite number > 0 (those in `OPTIONAL_RATES` may be
    ``None``).

    Examples:
        >>> check_rates(meta_lr=1e-3, clip_meta_grad=None)
    """
    for name, value in values.items():
        if value is None and name in OPTIONAL_RATES:
            continue
        if not (is_real(value) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_truncate(truncate: int | None) -> None:
    """Refuse a truncation that is not ``None`` or a positive number of steps."""
    if truncate is not None and truncate < 1:
        raise ValueError(f"truncate must be a positive number of steps, got {truncate}")


def check_kind(loss: Any, family: Any) -> None:
    """Refuse a loss of another kind than the one ``family`` trains (`TaskFamily.loss_kind`;
    a kind registered as a subclass of it counts as it)."""
    declared = getattr(family, "loss_kind", None)
    config = getattr(loss, "config", None)
    if declared is None or config is None:
        return
    if not isinstance(config.loss_kind, type(loss_kind(declared))):
        raise ValueError(
            f"a {config.kind} loss cannot be meta-trained on {type(family).__name__}, whose "
            f"tasks train {declared} losses (its loss_kind): build the loss with "
            f"LossConfig(kind={declared!r}, ...), or meta-train it on a family of its kind"
        )


def check_meta_parameters(loss: Any, names: Sequence[str] | None) -> tuple[str, ...] | None:
    """``meta_parameters`` as a tuple, after checking that it names some of the loss's
    weights (frozen or not)."""
    if names is None:
        return None
    names = (names,) if isinstance(names, str) else tuple(names)
    available = list(loss.weights())
    if not names or any(name not in available for name in names):
        raise ValueError(
            f"meta_parameters must name some of the loss's weights {available}, got {list(names)}"
        )
    return names


def check_cuda_graph(meta_gradient: MetaGradient, path: str, checkpoint_inner: bool) -> None:
    """Refuse ``cuda_graph=True`` where a step cannot be captured as a graph."""
    problems = []
    if not isinstance(meta_gradient, Backprop):
        problems.append(f"it captures a backpropagated step, not {meta_gradient!r}")
    if path in ("loop", "engine"):
        problems.append(f"it captures the vmap path, not path={path!r}")
    if checkpoint_inner:
        problems.append("activation checkpointing (checkpoint_inner) cannot be captured")
    if problems:
        raise ValueError("cuda_graph=True cannot be used here: " + "; ".join(problems))


def check_fit(
    steps: Any, max_seconds: Any, resume: bool, overwrite: bool, has_run_dir: bool
) -> None:
    """Refuse `MetaTrainer.fit` arguments that are out of range or contradict each other."""
    check_count("steps", steps, LEAST["steps"])
    if max_seconds is not None and not (is_real(max_seconds) and max_seconds >= 0):
        raise ValueError(f"max_seconds must be a number >= 0 or None, got {max_seconds!r}")
    if resume and overwrite:
        raise ValueError(
            "resume=True continues the run in run_dir and overwrite=True replaces it: "
            "pass one of them"
        )
    if overwrite and not has_run_dir:
        raise ValueError("overwrite=True needs run_dir (there is nothing to overwrite)")
