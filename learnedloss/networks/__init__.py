"""Loss-network parameterizations: what computes a learned loss's per-element output.

A loss network maps a per-element feature vector (for regression: prediction and target) to
a per-element loss value. It knows nothing about reductions, shapes or validation; that is
the job of `learnedloss.functional`, which `learnedloss.LearnedLoss` calls. Four
parameterizations, chosen by ``LossConfig.parameterization`` and built by `build_network`:

- `PointwiseMLP` (``"mlp"``, the default): ML3's MLP.
- `GridNetwork` (``"grid"``): a C¹ cubic spline on a fixed grid of knots over one feature,
  optionally interpolated linearly over a second; O(1) per element. A frozen one takes a
  fast path (`learnedloss.networks.fast`) on eager CPU calls.
- `TaylorNetwork` (``"taylor"``): a low-order multivariate polynomial around a learned
  center, after TaylorGLO (Gonzalez and Miikkulainen, GECCO 2021).
- `MonotoneNetwork` (``"monotone"``): the integral of a non-negative influence over the
  error's scaled size, so the loss never decreases as the error grows, by construction.

The first three produce one number ``h`` per element, which `combine` turns into the loss as
the config's ``residual``, ``residual_form`` and ``output_activation`` say, so each can start
as exactly MSE, Huber or cross-entropy (`learnedloss.starts`); the monotone network scales
the standard term itself and starts as exactly MSE or cross-entropy.

Examples:
    >>> import torch
    >>> from learnedloss import LearnedLoss
    >>> from learnedloss.starts import grid_start_config
    >>> loss_fn = LearnedLoss(grid_start_config("mse"))
    >>> x, y = torch.randn(64), torch.randn(64)
    >>> torch.allclose(loss_fn(x, y), torch.nn.functional.mse_loss(x, y))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnedloss.networks.base import ACTIVATIONS, OUTPUT_ACTIVATIONS, LossNetwork, combine
from learnedloss.networks.grid import GridNetwork
from learnedloss.networks.mlp import PointwiseMLP
from learnedloss.networks.monotone import MonotoneNetwork
from learnedloss.networks.taylor import TaylorNetwork, taylor_exponents

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

NETWORKS: dict[str, type[LossNetwork]] = {
    "mlp": PointwiseMLP,
    "grid": GridNetwork,
    "taylor": TaylorNetwork,
    "monotone": MonotoneNetwork,
}
"""The network class of each ``LossConfig.parameterization``."""


def build_network(config: LossConfig) -> LossNetwork:
    """The loss network ``config.parameterization`` names, built for ``config``.

    Examples:
        >>> from learnedloss import LossConfig
        >>> from learnedloss.networks import build_network
        >>> type(build_network(LossConfig(parameterization="grid", inputs=("residual",)))).__name__
        'GridNetwork'
    """
    return NETWORKS[config.parameterization](config)


__all__ = [
    "ACTIVATIONS",
    "NETWORKS",
    "OUTPUT_ACTIVATIONS",
    "GridNetwork",
    "LossNetwork",
    "MonotoneNetwork",
    "PointwiseMLP",
    "TaylorNetwork",
    "build_network",
    "combine",
    "taylor_exponents",
]
