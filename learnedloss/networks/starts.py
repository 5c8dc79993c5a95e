"""Start configurations for the grid and Taylor parameterizations.

Each returns a residual `LossConfig` whose network output starts at zero, so the loss is
exactly the standard loss before meta-training (to float rounding) and meta-training learns a
correction, as `learnedloss.starts` does for the MLP.
"""

from __future__ import annotations

from learnedloss.config import LossConfig
from learnedloss.errors import ConfigError

STARTS = {
    "mse": ("regression", "square"),
    "huber": ("regression", "huber"),
    "cross_entropy": ("classification", "identity"),
}
"""What each start is: the kind and the output activation of the residual term."""


def _start(start: str) -> tuple[str, str]:
    name = start.replace("-", "_")
    if name == "ce":
        name = "cross_entropy"
    if name not in STARTS:
        raise ConfigError(f"start must be one of {list(STARTS)}, got {start!r}")
    return STARTS[name]


def grid_start_config(
    start: str = "mse",
    inputs: tuple[str, ...] | None = None,
    knots: tuple[int, ...] | None = None,
    grid_range: tuple[tuple[float, float], ...] | None = None,
    residual_form: str = "add",
) -> LossConfig:
    """A grid (spline) loss that equals MSE, Huber (δ = 1) or cross-entropy exactly at start.

    Args:
        start: ``"mse"`` (``(r + h)²``), ``"huber"`` (``huber(r + h)``) or
            ``"cross_entropy"`` (``-target * log_prob + h`` per class).
        inputs: the grid's axes: default ``("residual",)`` for regression (a 1-D spline over
            prediction - target; add ``"target"`` for a 2-D grid) and
            ``("log_prob", "target")`` for cross-entropy.
        knots: knots per input (default `learnedloss.config.GRID_DEFAULT_KNOTS`).
        grid_range: ``(low, high)`` per input (default
            `learnedloss.config.GRID_DEFAULT_RANGES`).
        residual_form: ``"add"``, ``"scale"`` or (regression) ``"weight"``; see `LossConfig`.

    Example:
        >>> from learnedloss.networks import grid_start_config
        >>> grid_start_config("huber", inputs=("residual", "target")).grid_knots
        (33, 9)
    """
    kind, output = _start(start)
    if inputs is None:
        inputs = ("residual",) if kind == "regression" else ("log_prob", "target")
    return LossConfig(
        kind=kind,
        parameterization="grid",
        output_activation=output,
        residual=True,
        residual_form=residual_form,
        inputs=tuple(inputs),
        grid_knots=knots,
        grid_range=grid_range,
    )


def taylor_start_config(
    start: str = "mse",
    inputs: tuple[str, ...] | None = None,
    order: int = 3,
    residual_form: str = "add",
) -> LossConfig:
    """A Taylor-polynomial loss that equals MSE, Huber (δ = 1) or cross-entropy exactly at
    start.

    Args:
        start: ``"mse"``, ``"huber"`` or ``"cross_entropy"``, as in `grid_start_config`.
        inputs: the polynomial's variables: default ``("input", "target")`` for regression
            (TaylorGLO's (prediction, target)) and ``("prob", "target")`` for cross-entropy
            (bounded, unlike the log-probability, which is ``-inf`` for masked classes).
        order: the polynomial's degree (TaylorGLO used 3).
        residual_form: see `LossConfig`.

    Example:
        >>> from learnedloss.networks import taylor_start_config
        >>> taylor_start_config("cross_entropy").inputs
        ('prob', 'target')
    """
    kind, output = _start(start)
    if inputs is None:
        inputs = ("input", "target") if kind == "regression" else ("prob", "target")
    return LossConfig(
        kind=kind,
        parameterization="taylor",
        output_activation=output,
        residual=True,
        residual_form=residual_form,
        inputs=tuple(inputs),
        taylor_order=order,
    )
