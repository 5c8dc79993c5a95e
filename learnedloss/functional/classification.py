"""The fused path of frozen grid classification losses: one kernel call
(``torch.ops.learnedloss.grid_classification``, `learnedloss.kernels`) computes the
log-softmax, the loss and its gradient with respect to the logits.

It takes the bundled classification drop-ins' architectures: a grid network over each
class's log-probability (and optionally whether the class is the labelled one, or the
training progress), corrected by the cross-entropy term in the ``add`` form (``CE + h``) or
the ``scale`` form (``(1 + h) CE``), with the identity output. A call qualifies when
`fused_classification`'s checks pass: class indices of shape ``(N)`` for ``(N, C)`` logits
(or ``()`` for ``(C)``), no ``ignore_index`` among the classes, a plain eager CPU call
(`learnedloss.functional.fast.plain_call`) and ``check_finite`` off. The kernel itself hands
back to the general path any call with an out-of-range class index or a non-finite
log-probability (``-inf`` masks, NaN), so the values and gradients are the general path's
(`tests/core/test_kernels.py`). Where the kernels are not built, calls take the eager grid
path (`learnedloss.functional.fast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss import kernels
from learnedloss.config import PROGRESS_INPUT, UNSCHEDULED_PROGRESS
from learnedloss.functional.fast import FastGrid, general_gradient, plain_call
from learnedloss.functional.general import Progress, feature_limit
from learnedloss.functional.reduction import REDUCTION_CODES
from learnedloss.networks import fast as plans
from learnedloss.networks.base import second_axis_blend

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

FUSED_INPUTS = (("log_prob",), ("log_prob", "target"), ("log_prob", PROGRESS_INPUT))
"""The inputs of the grid classification losses the fused kernel computes."""

FUSED_FORMS = ("add", "scale")
"""The residual forms it computes (`learnedloss.config.LossConfig.residual_form`)."""


def fused_classification(
    config: LossConfig,
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    ignore_index: int,
    check_finite: bool,
    progress: Progress = None,
) -> torch.Tensor | None:
    """The reduced loss of a call by the fused kernel, or None when the call must take
    another path (see the module docstring). A loss over ``progress`` blends its splines at
    ``progress`` first (the general path interpolates the second axis linearly, and a
    spline is linear in its coefficients), and is then a one-axis loss."""
    if not _architecture_fits(config, network) or check_finite:
        return None
    if not _call_fits(input, target, ignore_index) or not kernels.active():
        return None
    dtype = torch.promote_types(network.values.dtype, input.dtype)
    lo, hi = network.grid_range[0]
    want = input.requires_grad and torch.is_grad_enabled()
    columns = network.coefficient_columns(dtype)
    if config.reads_progress:
        columns = _columns_at_progress(network, columns, progress)
    value, gradient, usable = torch.ops.learnedloss.grid_classification(
        input.detach(),
        target,
        columns,
        lo,
        hi,
        feature_limit(dtype),
        tuple(config.inputs) == FUSED_INPUTS[1],
        config.residual_form == "scale",
        REDUCTION_CODES[reduction],
        want,
    )
    if not usable.item():
        return None
    if not want:
        return value
    general = general_gradient(config, network, target, reduction, ignore_index, progress)
    class_dim = None if reduction != "none" else input.dim() - 1
    return FastGrid.apply(input, lambda _input: (value, gradient), general, class_dim)


def _architecture_fits(config: LossConfig, network: nn.Module) -> bool:
    """A grid classification loss over the log-probability (and the target axis), with the
    cross-entropy term added or scaled and the identity output."""
    if config.kind != "classification" or config.parameterization != "grid":
        return False
    if not config.residual or config.residual_form not in FUSED_FORMS:
        return False
    inputs = tuple(config.inputs)
    if config.output_activation != "identity" or inputs not in FUSED_INPUTS:
        return False
    if inputs == FUSED_INPUTS[1]:  # the target axis: one set of knots per target value, 0 and 1
        knots_fit = len(network.knots) == 2 and network.knots[1] == 2
        return knots_fit and tuple(network.grid_range[1]) == (0.0, 1.0)
    return len(network.knots) == len(inputs)


def _columns_at_progress(network: nn.Module, columns: torch.Tensor, progress: Progress):
    """One spline's ``(4, intervals)`` coefficient columns: the network's splines over the
    progress axis blended at ``progress`` as the general path interpolates them (clamped to
    the axis's range)."""
    row, weight = second_axis_blend(
        network, float(UNSCHEDULED_PROGRESS if progress is None else progress)
    )
    per_row = columns.unflatten(1, (network.knots[1], -1))
    return torch.lerp(per_row[:, row], per_row[:, row + 1], weight).contiguous()


def _call_fits(input, target, ignore_index: int) -> bool:
    """(N, C) or (C) logits on the CPU with class indices, outside transforms and compilation,
    and no ignored class."""
    if not plans.enabled() or not plain_call(input, target):
        return False
    if not input.is_floating_point() or input.dim() not in (1, 2) or input.numel() == 0:
        return False
    if target.is_floating_point() or target.dtype == torch.bool or target.requires_grad:
        return False
    if tuple(target.shape) != tuple(input.shape[:-1]):
        return False
    return not 0 <= ignore_index < input.shape[-1]
