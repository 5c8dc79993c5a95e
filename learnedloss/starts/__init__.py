"""Exact starts: loss configurations that equal a standard loss before meta-training.

Each start is a residual `LossConfig` whose learned part starts at zero, so the loss is exactly
MSE, Huber, cross-entropy or the REINFORCE surrogate before meta-training (to float rounding)
and meta-training learns a correction of a loss that already works. One module per job:

- `learnedloss.starts.mlp`: starts of ML3's MLP (`mse_start_config` and the others).
- `learnedloss.starts.grid` and `learnedloss.starts.taylor`: starts of the grid (spline) and
  Taylor-polynomial parameterizations, by the name of a standard loss
  (`learnedloss.starts.standard`).
- `learnedloss.starts.monotone`: the start of the monotone parameterization, a loss that
  never decreases as the error grows (`monotone_start_config`).
- `learnedloss.starts.factors`: knot values that give a count-free grid loss the shape of a
  published robust loss (GCE, a soft small-loss selection).

The package sits at the networks layer: it imports `learnedloss.config` and
`learnedloss.errors`, nothing above.

Examples:
    >>> import torch
    >>> from learnedloss import LearnedLoss
    >>> from learnedloss.starts import grid_start_config, mse_start_config
    >>> x, y = torch.randn(64), torch.randn(64)
    >>> mse = torch.nn.functional.mse_loss(x, y)
    >>> torch.allclose(LearnedLoss(mse_start_config())(x, y), mse)
    True
    >>> torch.allclose(LearnedLoss(grid_start_config("mse"))(x, y), mse)
    True
"""

from learnedloss.starts.factors import (
    generalized_cross_entropy_factor,
    truncated_cross_entropy_factor,
)
from learnedloss.starts.grid import grid_start_config
from learnedloss.starts.mlp import (
    count_free_cross_entropy_start_config,
    cross_entropy_start_config,
    huber_start_config,
    mse_start_config,
    reinforce_start_config,
    scale_free_mse_start_config,
)
from learnedloss.starts.monotone import monotone_start_config
from learnedloss.starts.taylor import taylor_start_config

__all__ = [
    "count_free_cross_entropy_start_config",
    "cross_entropy_start_config",
    "generalized_cross_entropy_factor",
    "grid_start_config",
    "huber_start_config",
    "monotone_start_config",
    "mse_start_config",
    "reinforce_start_config",
    "scale_free_mse_start_config",
    "taylor_start_config",
    "truncated_cross_entropy_factor",
]
