"""Reductions of per-sample losses, as PyTorch's losses do them: the one place that says what
``'mean'``, ``'sum'`` and ``'none'`` mean for a learned loss."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")
"""The reductions a loss takes, as in ``torch.nn`` losses."""


def check_reduction(reduction: object) -> str:
    """``reduction`` itself, when it is one of `REDUCTIONS`.

    Raises:
        ValueError: any other value; the message lists the allowed ones.
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    return reduction


REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}
"""Each reduction's code in the fused kernels' calls (`learnedloss.kernels`)."""


def mean_divisor(reduction: str, count: int) -> int:
    """What the reduced loss divides the sum of ``count`` samples' losses by: ``count`` for
    ``'mean'``, 1 otherwise (so also the scale of each sample's gradient)."""
    return count if reduction == "mean" else 1


def reduce(
    values: torch.Tensor | None,
    reduction: str,
    valid: torch.Tensor | None = None,
    *,
    count: int | None = None,
    total: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-sample losses as PyTorch's losses do.

    Args:
        values: the per-sample losses (``'none'`` returns them), or per-element values whose
            sum is the call's loss (a classification call's classes, with ``count``).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
        valid: the mask of samples that count (``ignore_index``): the others count 0, and
            ``'mean'`` divides by the number left (NaN when none is, as
            ``F.cross_entropy`` does).
        count: the number of samples ``'mean'`` divides the sum of ``values`` by (default:
            ``values.numel()``).
        total: the sum of ``values``, when the caller has it already (the fast grid path
            sums squares as one dot product); ``values`` may then be None unless
            ``reduction`` is ``'none'``.

    Returns:
        The loss: a 0-dim tensor, or ``values`` (masked) for ``'none'``.

    Examples:
        >>> import torch
        >>> from learnedloss.functional import reduce
        >>> reduce(torch.tensor([1.0, 2.0, 6.0]), "mean")
        tensor(3.)
        >>> reduce(torch.tensor([1.0, 2.0, 6.0]), "mean", torch.tensor([True, True, False]))
        tensor(1.5000)
    """
    if valid is not None:
        values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    if total is None:
        if reduction == "mean" and valid is None and count is None:
            return values.mean()
        total = values.sum()
    if reduction == "sum":
        return total
    if valid is not None:
        return total / valid.sum()
    return total / (values.numel() if count is None else count)
