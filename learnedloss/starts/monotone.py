"""The exact start of the monotone parameterization.

`monotone_start_config` returns a `LossConfig` whose loss is exactly MSE or cross-entropy
before meta-training (to float rounding) and can only become another loss that never
decreases as the error grows (`learnedloss.networks.MonotoneNetwork`).
"""

from __future__ import annotations

from learnedloss.config import MONOTONE_MAGNITUDES, MONOTONE_OUTPUTS, LossConfig
from learnedloss.starts.standard import standard_start


def monotone_start_config(
    start: str = "mse",
    *,
    knots: int = 17,
    max_magnitude: float = 16.0,
    adapt_to: str | None = None,
    adapt_knots: int = 3,
) -> LossConfig:
    """A monotone loss that equals MSE or cross-entropy exactly at start.

    Args:
        start: ``"mse"`` (regression, over ``scaled_residual``) or ``"cross_entropy"``
            (classification, over ``scaled_nll``).
        knots: knots of the influence over the error's size, from 0 to ``max_magnitude``.
        max_magnitude: the largest knot, in units of the call's robust scale; beyond it the
            influence continues along its last slope (if rising) or stays flat.
        adapt_to: an optional second input whose value picks the shape, e.g.
            ``"contamination"`` (the call's fraction of far-off errors, in [0, 1]).
        adapt_knots: curves over ``adapt_to``'s range [0, 1], blended linearly.

    Examples:
        >>> import torch
        >>> from learnedloss import LearnedLoss
        >>> from learnedloss.starts import monotone_start_config
        >>> loss = LearnedLoss(monotone_start_config("mse", adapt_to="contamination"))
        >>> x, y = torch.randn(64), torch.randn(64)
        >>> torch.allclose(loss(x, y), torch.nn.functional.mse_loss(x, y))
        True
    """
    kind, _ = standard_start(start)
    if kind not in MONOTONE_MAGNITUDES:
        raise ValueError(f"a monotone start is 'mse' or 'cross_entropy', got {start!r}")
    inputs = (MONOTONE_MAGNITUDES[kind],) + ((adapt_to,) if adapt_to else ())
    grid_knots = (knots,) + ((adapt_knots,) if adapt_to else ())
    grid_range = ((0.0, float(max_magnitude)),) + (((0.0, 1.0),) if adapt_to else ())
    return LossConfig(
        kind=kind,
        parameterization="monotone",
        output_activation=MONOTONE_OUTPUTS[kind],
        residual=True,
        residual_form="scale",
        inputs=inputs,
        grid_knots=grid_knots,
        grid_range=grid_range,
    )
