"""The fast path of frozen grid losses: a plain eager CPU call computed by the grid network's
plan (`learnedloss.networks.fast`), value and input gradient in one pass.

`grid_loss` takes a call when the network is a frozen `learnedloss.networks.GridNetwork`
with a plan for its config (`learnedloss.networks.fast.plan_for`), ``check_finite`` is off,
and the call is a plain eager CPU call: tensors on the CPU, not under ``torch.func``
transforms or ``torch.compile``, no side inputs, no target gradient, not empty. Anything else,
and any call whose values the general path treats specially (NaN, infinite or beyond-limit
features, ``-inf`` logits, ignored samples, out-of-range class indices), takes the general
path (`learnedloss.functional.general_loss`), so the fast path changes nothing but the speed:
values and input gradients agree with the general path to float rounding. Under
``create_graph=True`` its backward recomputes the gradient through the general path, so higher
derivatives are right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.functional.general import Progress, feature_limit, general_loss
from learnedloss.functional.reduction import mean_divisor, reduce
from learnedloss.kinds.regression import robust_scale
from learnedloss.networks import fast as plans

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class FastGrid(torch.autograd.Function):
    """The loss, with its input gradient computed in the same pass; backward scales that
    gradient (or, under ``create_graph`` or a second backward, recomputes it through the
    general path)."""

    @staticmethod
    def forward(ctx, input, compute, recompute, class_dim):
        value, gradient = compute(input)
        ctx.recompute = recompute
        ctx.class_dim = class_dim
        ctx.save_for_backward(input)
        # Held outside save_for_backward (it has no graph, so no reference cycle): the first
        # backward scales it in place and hands it on, so that it becomes ``input.grad``
        # without a copy.
        ctx.gradient = gradient
        return value

    @staticmethod
    def backward(ctx, grad):
        (input,) = ctx.saved_tensors
        gradient, ctx.gradient = ctx.gradient, None
        if gradient is None or torch.is_grad_enabled():  # retain_graph, create_graph
            return ctx.recompute(input, grad), None, None, None
        if grad.dim() == 0:
            scale = grad.item()
            if scale != 1.0:
                gradient.mul_(scale)
        else:
            gradient.mul_(grad if ctx.class_dim is None else grad.unsqueeze(ctx.class_dim))
        return gradient, None, None, None


def plain_call(*tensors: Any) -> bool:
    """Plain eager CPU tensors, outside transforms, compilation and tensor subclasses."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return False
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    for t in tensors:
        if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.device.type != "cpu":
            return False
        if wrapped(t):
            return False
    return True


def within(bounds: list[float], limit: float) -> bool:
    """All of ``[min, max, min, max, ...]`` in ``[-limit, limit]`` (False for NaN)."""
    return all(-limit <= b <= limit for b in bounds)


def general_gradient(
    config: LossConfig,
    network: nn.Module,
    target: torch.Tensor,
    reduction: str,
    ignore_index: int = -100,
    progress: Progress = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`FastGrid`'s ``recompute``: a call's input gradient through the general path, as a
    differentiable function of the input and the incoming gradient (double backward)."""

    def general(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            value = general_loss(
                config,
                network,
                x,
                target,
                reduction=reduction,
                ignore_index=ignore_index,
                progress=progress,
            )
            return torch.autograd.grad(value, x, grad, create_graph=True)[0]

    return general


def grid_loss(
    config: LossConfig,
    network: nn.Module,
    input: Any,
    target: Any,
    reduction: str,
    ignore_index: int,
    check_finite: bool,
) -> torch.Tensor | None:
    """The reduced loss of a call by a frozen grid network's plan, or None when the call
    must take the general path (see the module docstring). ``network`` must hold constants
    (a frozen loss's)."""
    form = plans.plan_for(config, check_finite)
    if form is None or not plans.enabled() or not plain_call(input, target):
        return None
    if not input.is_floating_point() or input.numel() == 0 or target.requires_grad:
        return None
    if network.values.device.type != "cpu":
        return None

    general = general_gradient(config, network, target, reduction, ignore_index)
    if form == "classification":
        return _classification(network, input, target, reduction, ignore_index, general)
    return _regression(network, input, target, reduction, general, form == "scaled-regression")


def _regression(
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    recompute: Callable,
    scaled: bool,
) -> torch.Tensor | None:
    if not target.is_floating_point() or target.shape != input.shape:
        return None
    dtype = torch.promote_types(
        torch.promote_types(network.values.dtype, input.dtype), target.dtype
    )
    # The general path gives elements with a NaN, infinite or beyond-limit feature the
    # squared error; such calls take it. Inputs and targets within half the limit keep the
    # residual within it too.
    bounds = torch.stack([*torch.aminmax(input.detach()), *torch.aminmax(target)]).tolist()
    if not within(bounds, feature_limit(dtype) / 2):
        return None
    plan = network.fast_plan("scaled-regression" if scaled else "regression", dtype)
    activation = network.output_activation
    flat_target = target.reshape(-1).to(dtype)
    second = flat_target if plan.second is not None else None
    shape = input.shape
    factor = (plan.scale if not scaled else 1.0) / mean_divisor(reduction, input.numel())
    want = input.requires_grad and torch.is_grad_enabled()
    fresh = reduction == "none" and activation == "identity"
    if scaled:
        residual = torch.sub(input.detach().reshape(-1).to(dtype), flat_target)
        robust = robust_scale(residual, finite=True).item()  # bounded above: all finite
        # the general path gives features beyond the limit the squared error
        if sum(abs(b) for b in bounds) / robust > feature_limit(dtype) / 2:
            return None

    def compute(x: torch.Tensor):
        if scaled:  # the residual and its scale were taken above (x is the input)
            z, slope = plan.evaluate_scaled(residual, robust, want, fresh)
        else:
            x = x.detach().reshape(-1).to(dtype)
            z, slope = plan.evaluate(x, want, minus=flat_target, second=second, fresh_z=fresh)
        values, total, slope = plans.activate(z, slope, activation, factor, reduction != "none")
        value = reduce(values, reduction, total=total, count=None if total is None else z.numel())
        if slope is not None:
            slope = slope.view(shape).to(input.dtype)
        return value.view(shape if reduction == "none" else ()).to(input.dtype), slope

    if not want:
        return compute(input)[0]
    return FastGrid.apply(input, compute, recompute, None)


def _classification(
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    ignore_index: int,
    recompute: Callable,
) -> torch.Tensor | None:
    if target.is_floating_point() or target.dtype == torch.bool or input.dim() == 0:
        return None
    class_dim = 0 if input.dim() == 1 else 1
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        return None
    n_classes = input.shape[class_dim]
    bounds = torch.stack(torch.aminmax(target.reshape(-1))).tolist()
    if not (bounds[0] >= 0 and bounds[1] < n_classes) or 0 <= ignore_index < n_classes:
        return None  # ignored samples or out-of-range indices: the general path checks them
    dtype = torch.promote_types(network.values.dtype, input.dtype)
    log_prob = F.log_softmax(input.to(dtype), dim=class_dim)
    if not within(torch.stack(torch.aminmax(log_prob.detach())).tolist(), feature_limit(dtype)):
        return None  # -inf (masked) or NaN logits: the general path handles them
    plan = network.fast_plan("classification", dtype)
    activation = network.output_activation
    # the flat position of each sample's labelled class in the (N, C, d1, ...) logits
    inner = math.prod(input.shape[class_dim + 1 :])
    labels = target.reshape(-1, inner).long() * inner + torch.arange(inner)
    labels = labels.add_(torch.arange(labels.shape[0]).unsqueeze(1), alpha=n_classes * inner)
    labels = labels.view(-1)
    samples = target.numel()
    shape = log_prob.shape
    factor = plan.scale / mean_divisor(reduction, samples)
    want = log_prob.requires_grad and torch.is_grad_enabled()

    def compute(lp: torch.Tensor):
        z, slope = plan.evaluate(lp.detach().reshape(-1), want, labelled=labels)
        values, total, slope = plans.activate(z, slope, activation, factor, reduction != "none")
        if reduction == "none":  # each sample's loss: the sum over its classes
            values = values.view(shape).sum(dim=class_dim)
        value = reduce(values, reduction, total=total, count=samples)
        if slope is not None:
            slope = slope.view(shape)
        return value.to(input.dtype), slope

    if not want:
        return compute(log_prob)[0]
    # recompute runs the general path on log-probabilities as logits: log_softmax leaves them
    # as they are, so it is the same function of the logits (and its derivatives).
    return FastGrid.apply(log_prob, compute, recompute, None if reduction != "none" else class_dim)
