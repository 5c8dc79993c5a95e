"""The exact start of the grid (spline) parameterization.

`grid_start_config` returns a residual `LossConfig` whose spline output starts at zero, so the
loss is exactly MSE, Huber or cross-entropy before meta-training (to float rounding) and
meta-training learns a correction.
"""

from __future__ import annotations

from learnedloss.config import LossConfig
from learnedloss.starts.standard import standard_start


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

    Examples:
        >>> from learnedloss.starts import grid_start_config
        >>> grid_start_config("huber", inputs=("residual", "target")).grid_knots
        (33, 9)
    """
    kind, output = standard_start(start)
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
