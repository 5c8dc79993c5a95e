"""Training progress held by a loss: what `learnedloss.LearnedLoss.progress` sets, the per-call
value the inner loops give (`progress_for_calls`), and what one call reads (`progress_of`).

A loss that reads ``"progress"`` holds a `HeldProgress`: a float64 value on the CPU, and a
copy on each other device a call has come from, made once and kept in step (a call on an
accelerator never copies from the host). It is neither a parameter nor a buffer, so no
framework saves, broadcasts or re-initializes it (transformers refills every non-persistent
buffer of a model it loads). `progress_for_calls` overrides it for the calls of a block in
this thread or task (a context variable), without changing the loss.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch

from learnedloss.config import UNSCHEDULED_PROGRESS
from learnedloss.errors import ScheduleError

HELD_ATTRIBUTE = "_held_progress"
"""The attribute (in the module's ``__dict__``) that holds a loss's `HeldProgress`."""

_GIVEN: ContextVar[dict[int, Any] | None] = ContextVar("learnedloss_given_progress", default=None)
"""The progress `progress_for_calls` gives, by ``id`` of the loss module."""


def _dtype_on(device: torch.device) -> torch.dtype:
    """float64 where the device has it (not on Apple's MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


class HeldProgress:
    """One loss's own training progress and its per-device copies (see the module)."""

    def __init__(self, value: float = UNSCHEDULED_PROGRESS, device: Any = "cpu") -> None:
        device = torch.device(device)
        self.value = torch.tensor(value, dtype=_dtype_on(device), device=device)
        self._copies: dict[torch.device, torch.Tensor] = {}

    def __float__(self) -> float:
        return float(self.value)

    def set(self, fraction: float) -> None:
        """Set the value, and every copy, in place (no new tensors: compiled code follows)."""
        with torch.no_grad():
            self.value.fill_(fraction)
            for copy in self._copies.values():
                copy.fill_(fraction)

    def on(self, device: torch.device | None) -> torch.Tensor:
        """The value on ``device`` (None: where it is held), copied there on first use."""
        if device is None or device == self.value.device:
            return self.value
        copy = self._copies.get(device)
        if copy is None:
            copy = self._copies[device] = self.value.to(device, _dtype_on(device))
        return copy

    def moved(self, device: torch.device) -> HeldProgress:
        """The same value held on ``device`` (a module's ``.to()``); the meta device, which
        holds no values, keeps it where it is."""
        if device.type == "meta":
            return self
        return HeldProgress(float(self), device)


def progress_of(module: Any, device: torch.device | None) -> torch.Tensor | float | None:
    """The progress a call of ``module`` on ``device`` reads: the one `progress_for_calls`
    gives it, else its own; None for a module that does not read progress."""
    if not torch.compiler.is_compiling():
        given = _GIVEN.get()
        if given is not None and id(module) in given:
            return given[id(module)]
    held = module.__dict__.get(HELD_ATTRIBUTE)
    return None if held is None else held.on(device)


@contextlib.contextmanager
def progress_for_calls(module: Any, progress: torch.Tensor | float | None) -> Iterator[None]:
    """Calls in this block (in this thread or task) of every loss in ``module`` that reads
    progress (``module`` itself and its submodules) read ``progress``, a number or a 0-dim
    tensor, instead of their own; the losses are not changed. Nothing happens for None or a
    module without such a loss. The inner loops of meta-training and evaluation give each
    step's progress this way (`learnedloss.meta.inner`); `check` and `plot` probe with it.
    Inside ``torch.compile`` the losses read their own progress."""
    modules = module.modules() if hasattr(module, "modules") else (module,)
    readers = [id(m) for m in modules if HELD_ATTRIBUTE in getattr(m, "__dict__", {})]
    if progress is None or not readers:
        yield
        return
    given = dict(_GIVEN.get() or {})
    given.update(dict.fromkeys(readers, progress))
    token = _GIVEN.set(given)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def progress_fraction(step: Any, total: Any) -> float:
    """``min(step / total, 1)``, after checking both (`learnedloss.LearnedLoss.progress`):
    real numbers (Python, NumPy, or 0-dim tensors), finite, ``step >= 0``, ``total > 0``.

    Raises:
        ScheduleError: for anything else, with what was expected.
    """
    numbers_given = {}
    for name, value in (("step", step), ("total", total)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
            value = value.item()
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ScheduleError(f"progress needs a real number for {name}, got {value!r}")
        if not math.isfinite(value):
            unbounded = " (an unbounded run has no progress: give its planned length)"
            raise ScheduleError(
                f"progress needs a finite {name}, got {value!r}"
                + (unbounded if name == "total" else "")
            )
        numbers_given[name] = float(value)
    step, total = numbers_given["step"], numbers_given["total"]
    if step < 0 or total <= 0:
        raise ScheduleError(
            f"progress needs step >= 0 and total > 0 (step {step:g} of total {total:g} steps)"
        )
    return min(step / total, 1.0)


def progress_schedule(first: int, count: int, total: int, like: torch.Tensor) -> torch.Tensor:
    """The progress of steps ``first .. first + count - 1`` of a run of ``total`` steps,
    ``min(step / total, 1)`` (0 at the first step), as a ``(count,)`` tensor on ``like``'s
    device, in its dtype if it is floating point (else the default dtype): an inner loop
    makes it once per run and indexes it at each step, so no step copies from the host."""
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    steps = torch.arange(first, first + count, dtype=torch.float64)
    return (steps / total).clamp(max=1.0).to(like.device, dtype)
