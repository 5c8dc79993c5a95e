"""Per-task inner learning rates: every task of a meta-batch trains at a rate of its own.

``MetaTrainer(inner_lr_range=(low, high), path="engine")`` draws each task's inner learning
rate log-uniformly from ``[low, high]``, anew at every outer step, so that the loss is
meta-trained to work across learning rates (what `learnedloss.evaluate` asks of it). The
draw comes from a generator of its own, seeded by the run's seed and the outer step
(`step_generator`): it takes nothing from the run's task and model generator (a run without
a range is unchanged), and a resumed run draws the same rates as an uninterrupted one.

Only the batched engine (`learnedloss.meta.engine`) trains tasks at different rates in one
call; `check_inner_lr_range` refuses a range on any other path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from learnedloss.errors import ConfigError
from learnedloss.validators import check_range

STREAM = 0x9E3779B97F4A7C15
"""An odd 64-bit constant that spreads (seed, step) pairs over generator seeds."""
VALIDATION_STEP = -1
"""The step whose rates the fixed meta-validation tasks train at (no outer step has it)."""


def learning_rate_range(bounds: Sequence[float] | None, name: str) -> None:
    """Refuse a learning-rate range that is not ``None`` or two finite rates ``0 < low <=
    high`` (a `learnedloss.meta.settings.setting` check: raises `ValueError`).

    Examples:
        >>> learning_rate_range((1e-3, 1e-1), "inner_lr_range")
        >>> learning_rate_range(None, "inner_lr_range")
    """
    if bounds is None:
        return
    check_range(bounds, name, empty_ok=True)
    if not all(math.isfinite(b) and b > 0 for b in bounds):
        raise ValueError(f"{name} must hold two finite learning rates > 0, got {tuple(bounds)}")


def check_inner_lr_range(
    lr_range: Sequence[float] | None, path: str, inner_optimizer: object
) -> tuple[float, float] | None:
    """``lr_range`` as a tuple, after checking that the trainer can use it.

    Raises:
        ConfigError: the range is malformed, the inner loops do not run on the engine
            (``path`` is not ``"engine"``), or the inner optimizer is not a ``"sgd"`` or
            ``"adam"`` shorthand whose rate can be replaced.
    """
    if lr_range is None:
        return None
    try:
        learning_rate_range(lr_range, "inner_lr_range")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if path != "engine":
        raise ConfigError(
            f"inner_lr_range trains every task at its own learning rate, which only the "
            f"batched engine runs: pass path='engine' (--path engine), not path={path!r}"
        )
    if not isinstance(inner_optimizer, str):
        raise ConfigError(
            "inner_lr_range replaces the inner optimizer's learning rate, which a torchopt "
            "GradientTransformation carries inside: use inner_optimizer='sgd' or 'adam'"
        )
    low, high = lr_range
    return float(low), float(high)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of outer step ``step``'s rates in a run seeded ``seed``."""
    return torch.Generator().manual_seed((seed * STREAM + step) % 2**64)


def log_uniform_rates(
    lr_range: tuple[float, float], count: int, generator: torch.Generator
) -> torch.Tensor:
    """``count`` learning rates drawn log-uniformly from ``lr_range``, float64, ``(count,)``.

    Examples:
        >>> rates = log_uniform_rates((1e-3, 1e-1), 4, step_generator(0, 1))
        >>> bool(((rates >= 1e-3) & (rates <= 1e-1)).all())
        True
    """
    low, high = (math.log(bound) for bound in lr_range)
    uniform = torch.rand(count, generator=generator, dtype=torch.float64)
    return torch.exp(low + (high - low) * uniform)


def step_rates(
    lr_range: tuple[float, float] | None, seed: int, step: int, count: int
) -> torch.Tensor | None:
    """The ``count`` tasks' rates of outer step ``step`` (`VALIDATION_STEP`: the fixed
    meta-validation tasks'), or ``None`` without a range."""
    if lr_range is None:
        return None
    return log_uniform_rates(lr_range, count, step_generator(seed, step))
