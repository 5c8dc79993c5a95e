"""Learned losses as functions: per-sample values and reductions from a config, a network (or
its parameters) and a call's arguments, as ``torch.nn.functional`` is to ``torch.nn``.

`learnedloss.LearnedLoss` is a module around these functions; so are its ``check``, ``plot``,
grid export and the online shape recorder, which all compute a loss through them.

- `learned_loss`: a call's loss, reduced, by the fastest path that computes it exactly (a
  frozen grid network's fast plan, or the general path).
- `per_sample_losses`: the general path's per-sample values, unreduced, and the mask of
  samples that count; `general_loss` reduces them.
- `reduce` (with `REDUCTIONS`, `check_reduction`): what ``'mean'``, ``'sum'`` and
  ``'none'`` do, written once.
- `unreduced`: any loss module's per-sample values, its ``reduction`` left alone.
- `learnedloss.functional.grid.fit_grid`: a network's grid (spline) form, as
  `learnedloss.LearnedLoss.to_grid` exports it.

Examples:
    >>> import torch
    >>> from learnedloss import LearnedLoss
    >>> from learnedloss.functional import learned_loss
    >>> loss_fn = LearnedLoss.from_pretrained("mse-fit")
    >>> x, y = torch.zeros(4), torch.ones(4)
    >>> values = learned_loss(loss_fn.config, loss_fn.network, x, y, reduction="none")
    >>> torch.equal(values.mean(), loss_fn(x, y))
    True
"""

from learnedloss.functional.general import (
    DEFAULT_FEATURE_LIMIT,
    FEATURE_LIMIT,
    feature_limit,
    general_loss,
    per_sample_losses,
    usable_elements,
)
from learnedloss.functional.reduction import REDUCTIONS, check_reduction, mean_divisor, reduce
from learnedloss.functional.values import learned_loss, unreduced

__all__ = [
    "DEFAULT_FEATURE_LIMIT",
    "FEATURE_LIMIT",
    "REDUCTIONS",
    "check_reduction",
    "feature_limit",
    "general_loss",
    "learned_loss",
    "mean_divisor",
    "per_sample_losses",
    "reduce",
    "unreduced",
    "usable_elements",
]
