"""The fast path of frozen monotone regression losses: value and input gradient in one pass.

A frozen `learnedloss.networks.MonotoneNetwork` over ``scaled_residual`` (and optionally
``contamination``) is :math:`s^2 R(|r| / s)` per element, with :math:`R` a quadratic on each
knot interval (`learnedloss.networks.monotone.MonotoneTables`). `monotone_loss` computes a
plain eager CPU call with a few kernels: the residual, its robust scale and contamination (the
general path's statistics), one search and one gather for the interval's coefficients, two
fused multiply-adds for the value and one for the gradient
:math:`s \\psi(|r| / s) \\operatorname{sign} r`, which the backward only scales. Calls the
general path treats specially (non-finite or beyond-limit values, side inputs, targets that
require gradients, transforms, compilation, other devices) return None and take the general
path; values and input gradients agree with it to float rounding
(`tests/core/test_monotone.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss.functional.fast import FastGrid, plain_call, within
from learnedloss.functional.general import feature_limit, general_loss
from learnedloss.functional.reduction import mean_divisor, reduce
from learnedloss.kinds.regression import (
    CONTAMINATION_THRESHOLD,
    evenly_spaced_sample,
    robust_scale,
)
from learnedloss.networks import fast as plans

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

FAST_INPUTS = (("scaled_residual",), ("scaled_residual", "contamination"))
"""The inputs of the monotone regression losses the fast path computes."""


def monotone_loss(
    config: LossConfig,
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    check_finite: bool,
) -> torch.Tensor | None:
    """The reduced loss of a call by a frozen monotone regression loss's tables, or None
    when the call must take the general path (see the module docstring)."""
    if not _eligible(config, network, input, target, check_finite):
        return None
    theta = network.log_influence
    dtype = torch.promote_types(torch.promote_types(theta.dtype, input.dtype), target.dtype)
    bounds = torch.stack([*torch.aminmax(input.detach()), *torch.aminmax(target)]).tolist()
    if not within(bounds, feature_limit(dtype) / 2):
        return None
    residual = torch.sub(input.detach().reshape(-1).to(dtype), target.reshape(-1).to(dtype))
    magnitude = residual.abs()
    scale = robust_scale(magnitude, finite=True).item()
    if sum(abs(b) for b in bounds) / scale > feature_limit(dtype) / 2:
        return None
    tables = network.fast_tables(dtype)
    coefficients = _coefficients(network, tables, magnitude, scale, len(config.inputs) == 2)
    boundaries = tables.boundaries
    want = input.requires_grad and torch.is_grad_enabled()
    factor = scale / mean_divisor(reduction, input.numel())

    def compute(_input: torch.Tensor):
        z = magnitude.mul_(1.0 / scale)
        a, b, c = coefficients[torch.bucketize(z, boundaries, right=True)].unbind(-1)
        shape = torch.addcmul(a, z, torch.addcmul(b, c, z))
        if reduction == "none":
            value = shape.mul_(scale * scale).view(input.shape)
        else:
            value = reduce(shape, reduction).mul_(scale * scale)
        gradient = None
        if want:
            influence = torch.addcmul(b, c, z, value=2.0)
            gradient = influence.mul_(residual.sign_()).mul_(factor).view(input.shape)
            gradient = gradient.to(input.dtype)
        return value.to(input.dtype), gradient

    if not want:
        return compute(input)[0]

    def general(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The input gradient through the general path, differentiable (double backward)."""
        with torch.enable_grad():
            value = general_loss(config, network, x, target, reduction=reduction)
            return torch.autograd.grad(value, x, grad, create_graph=True)[0]

    return FastGrid.apply(input, compute, general, None)


def _eligible(config, network, input, target, check_finite: bool) -> bool:
    """Whether the call is one the fast path computes (before looking at its values)."""
    if config.kind != "regression" or tuple(config.inputs) not in FAST_INPUTS or check_finite:
        return False
    if not plans.enabled() or not plain_call(input, target):
        return False
    if not input.is_floating_point() or not target.is_floating_point():
        return False
    if target.shape != input.shape or input.numel() == 0 or target.requires_grad:
        return False
    return network.log_influence.device.type == "cpu"


def _coefficients(network, tables, magnitude, scale: float, adaptive: bool) -> torch.Tensor:
    """The call's ``(K, 3)`` coefficients: the network's one curve, or its curves blended at
    the call's contamination as `MonotoneNetwork.shape_at` blends them."""
    coefficients = tables.coefficients
    if not adaptive:
        return coefficients[0]
    sample = evenly_spaced_sample(magnitude)
    beyond = int((sample > CONTAMINATION_THRESHOLD * scale).sum())
    lo, hi = network.grid_range[1]
    k1 = network.knots[1]
    position = min(max((beyond / sample.numel() - lo) / (hi - lo), 0.0), 1.0) * (k1 - 1)
    row = min(int(position), k1 - 2)
    return torch.lerp(coefficients[row], coefficients[row + 1], position - row)
