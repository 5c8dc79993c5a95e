"""The fast path of frozen monotone regression losses: value and input gradient in one pass.

A frozen `learnedloss.networks.MonotoneNetwork` over ``scaled_residual`` (and optionally
``contamination`` or ``progress``) is :math:`s^2 R(|r| / s)` per element, with :math:`R` a
quadratic on each knot interval (`learnedloss.networks.monotone.MonotoneTables`).
`monotone_loss` computes a plain eager CPU call by the fused kernel
``torch.ops.learnedloss.monotone_regression_loss`` (`learnedloss.kernels`, with its own C++
autograd node) where it is built, and otherwise by a few eager kernels, its reference: the
residual, its robust scale and contamination (the general path's statistics), one search and
one gather for the interval's coefficients, two fused multiply-adds for the value and one
for the gradient :math:`s \\psi(|r| / s) \\operatorname{sign} r`, which the backward only
scales. Calls the general path treats specially (non-finite or beyond-limit values, side
inputs, targets that require gradients, transforms, compilation, other devices) return None
and take the general path; values and input gradients agree with it to float rounding
(`tests/core/test_monotone.py`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss import kernels
from learnedloss.config import PROGRESS_INPUT, UNSCHEDULED_PROGRESS
from learnedloss.functional.fast import FastGrid, general_gradient, plain_call, within
from learnedloss.functional.general import Progress, feature_limit
from learnedloss.functional.reduction import REDUCTION_CODES, mean_divisor, reduce
from learnedloss.kinds.regression import (
    CONTAMINATION_THRESHOLD,
    evenly_spaced_sample,
    robust_scale,
)
from learnedloss.networks import fast as plans
from learnedloss.networks.base import second_axis_blend
from learnedloss.networks.monotone import MonotoneTables

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

FAST_INPUTS = (
    ("scaled_residual",),
    ("scaled_residual", "contamination"),
    ("scaled_residual", PROGRESS_INPUT),
)
"""The inputs of the monotone regression losses the fast path computes."""


def monotone_loss(
    config: LossConfig,
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    check_finite: bool,
    progress: Progress = None,
) -> torch.Tensor | None:
    """The reduced loss of a call by a frozen monotone regression loss's tables, or None
    when the call must take the general path (see the module docstring). A loss over
    ``progress`` blends its curves at ``progress`` first, and is then a one-curve loss."""
    if not _eligible(config, network, input, target, check_finite):
        return None
    theta = network.log_influence
    dtype = torch.promote_types(torch.promote_types(theta.dtype, input.dtype), target.dtype)
    tables = network.fast_tables(dtype)
    adaptive = len(config.inputs) == 2
    if config.reads_progress:
        tables = _tables_at_progress(network, tables, progress)
        adaptive = False
    if kernels.active():  # the kernel's own autograd node
        return _fused(network, tables, input, target, reduction, adaptive)
    want = input.requires_grad and torch.is_grad_enabled()
    outcome = _eager(network, tables, input, target, reduction, want, adaptive)
    if outcome is None:
        return None
    if not want:
        return outcome[0]
    general = general_gradient(config, network, target, reduction, progress=progress)
    return FastGrid.apply(input, lambda _input: outcome, general, None)


def _fused(network, tables, input, target, reduction: str, adaptive: bool):
    """The loss by the fused kernel (``torch.ops.learnedloss.monotone_regression_loss``,
    whose backward scales the gradient its forward computed), or None when the call's values
    need the general path."""
    lo, hi = network.grid_range[1] if adaptive else (0.0, 1.0)
    value, usable = torch.ops.learnedloss.monotone_regression_loss(
        input,
        target,
        tables.coefficients,
        tables.boundaries,
        lo,
        hi,
        feature_limit(tables.coefficients.dtype) / 2,
        REDUCTION_CODES[reduction],
    )
    return value if usable.item() else None


def _eager(network, tables, input, target, reduction: str, want: bool, adaptive: bool):
    """``(value, gradient)`` by eager kernels (the fused kernel's reference), or None when
    the call's values need the general path."""
    dtype = tables.coefficients.dtype
    bounds = torch.stack([*torch.aminmax(input.detach()), *torch.aminmax(target)]).tolist()
    if not within(bounds, feature_limit(dtype) / 2):
        return None
    residual = torch.sub(input.detach().reshape(-1).to(dtype), target.reshape(-1).to(dtype))
    magnitude = residual.abs()
    scale = robust_scale(magnitude, finite=True).item()
    if sum(abs(b) for b in bounds) / scale > feature_limit(dtype) / 2:
        return None
    coefficients = _coefficients(network, tables, magnitude, scale, adaptive)
    z = magnitude.mul_(1.0 / scale)
    a, b, c = coefficients[torch.bucketize(z, tables.boundaries, right=True)].unbind(-1)
    shape = torch.addcmul(a, z, torch.addcmul(b, c, z))
    if reduction == "none":
        value = shape.mul_(scale * scale).view(input.shape)
    else:
        value = reduce(shape, reduction).mul_(scale * scale)
    gradient = None
    if want:
        factor = scale / mean_divisor(reduction, input.numel())
        influence = torch.addcmul(b, c, z, value=2.0)
        gradient = influence.mul_(residual.sign_()).mul_(factor).view(input.shape)
        gradient = gradient.to(input.dtype)
    return value.to(input.dtype), gradient


@functools.cache
def _config_fits(config: LossConfig) -> bool:
    """A monotone regression loss over the inputs the fast path computes (kept per config:
    a small call must not pay for reading it again)."""
    return config.kind == "regression" and tuple(config.inputs) in FAST_INPUTS


def _eligible(config, network, input, target, check_finite: bool) -> bool:
    """Whether the call is one the fast path computes (before looking at its values)."""
    # plain_call first: under torch.compile it is False before the cached check is traced
    if check_finite or not plans.enabled() or not plain_call(input, target):
        return False
    if not _config_fits(config):
        return False
    if not input.is_floating_point() or not target.is_floating_point():
        return False
    if target.shape != input.shape or input.numel() == 0 or target.requires_grad:
        return False
    return network.log_influence.device.type == "cpu"


def _tables_at_progress(network, tables, progress: Progress):
    """One curve's tables: the network's curves blended at ``progress`` as
    `MonotoneNetwork.shape_at` blends its second axis."""
    row, weight = second_axis_blend(
        network, float(UNSCHEDULED_PROGRESS if progress is None else progress)
    )
    coefficients = tables.coefficients
    blended = torch.lerp(coefficients[row], coefficients[row + 1], weight)
    return MonotoneTables(blended[None], tables.boundaries)


def _coefficients(network, tables, magnitude, scale: float, adaptive: bool) -> torch.Tensor:
    """The call's ``(K, 3)`` coefficients: the network's one curve, or its curves blended at
    the call's contamination as `MonotoneNetwork.shape_at` blends them."""
    coefficients = tables.coefficients
    if not adaptive:
        return coefficients[0]
    sample = evenly_spaced_sample(magnitude)
    beyond = int((sample > CONTAMINATION_THRESHOLD * scale).sum())
    row, weight = second_axis_blend(network, beyond / sample.numel())
    return torch.lerp(coefficients[row], coefficients[row + 1], weight)
