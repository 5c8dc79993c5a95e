"""The exact start of the Taylor-polynomial parameterization (after TaylorGLO).

`taylor_start_config` returns a residual `LossConfig` whose polynomial starts at zero, so the
loss is exactly MSE, Huber or cross-entropy before meta-training (to float rounding) and
meta-training learns a correction.
"""

from __future__ import annotations

from learnedloss.config import LossConfig
from learnedloss.starts.standard import standard_start


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

    Examples:
        >>> from learnedloss.starts import taylor_start_config
        >>> taylor_start_config("cross_entropy").inputs
        ('prob', 'target')
    """
    kind, output = standard_start(start)
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
