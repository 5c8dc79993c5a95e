"""The fast path of frozen grid losses: the whole per-element loss in one pass of few kernels.

A frozen grid loss (as `learnedloss.LearnedLoss.from_pretrained` loads it, or after
``freeze()``) is a fixed piecewise-cubic function. `fast_loss` evaluates it without the
general path's feature dictionary, masks and autograd graph: at freeze time (on the first call
after the weights change) the residual combination is folded into the spline, so that the
pre-activation ``z`` is one cubic per knot interval, with exact linear tails beyond the grid;
a call then computes ``z`` and ``dz/dx`` by one gather of each coefficient and Horner's rule,
applies the output activation and its derivative, and reduces, inside one
``torch.autograd.Function`` whose backward is one multiplication.

It applies to (`plan_for` says which configs):

- regression over ``("residual",)`` or ``("residual", "target")`` (linear in the target)
  with ``residual_form="add"`` (or no residual);
- scale-free regression over ``("scaled_residual",)`` with ``residual_form="scale"``
  (``(1 + h(r / s)) * r``, ``s`` the call's `learnedloss.kinds.regression.robust_scale`);
- classification over ``("log_prob",)`` or ``("log_prob", "target")`` with class-index
  targets and ``residual_form="add"`` (or no residual);

and any output activation, when the loss is
frozen, ``check_finite`` is off, and the call is a plain eager CPU call: tensors on the CPU,
not under ``torch.func`` transforms or ``torch.compile``, no target gradient, not empty.
Anything else, and any call whose values the general path would treat specially (NaN,
infinite or beyond-limit features, ``-inf`` logits, ignored samples' out-of-range checks),
takes the general path, so the fast path changes nothing but the speed: values and input
gradients agree with the general path to float rounding. Under ``create_graph=True`` its
backward recomputes the gradient through the general path, so higher derivatives are right.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from learnedloss.kinds.regression import robust_scale

if TYPE_CHECKING:
    from learnedloss.loss import LearnedLoss
    from learnedloss.networks.grid import GridNetwork

_state = threading.local()

SCRATCH_LIMIT = 1 << 19
"""The most elements per call whose scratch buffers are kept between calls (per thread and
dtype); larger calls allocate theirs afresh."""


@contextlib.contextmanager
def disabled():
    """Turn the fast path off for a block (in this thread): every call takes the general path."""
    previous = getattr(_state, "disabled", False)
    _state.disabled = True
    try:
        yield
    finally:
        _state.disabled = previous


# ----------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What a frozen grid network's fast path needs, in one dtype.

    Along the spline axis ``w = x * scale + offset`` puts the knots at ``1 .. K`` (K knots);
    ``row = clamp(floor(w), 0, K)`` picks the left tail (0), an interval (1 .. K-1) or the
    right tail (K), and ``t = w - row`` is the coordinate within it. ``columns[k]`` holds the
    coefficient of ``t**k`` of the pre-activation ``z`` (the residual term folded in) for each
    row; with a second axis the rows repeat per set (a knot interval of the target for
    regression, ``A + s * D`` with ``D`` in ``columns[4:]``; the target 0 or 1 for
    classification).
    """

    columns: torch.Tensor
    scale: float
    offset: float
    last: int
    second: tuple[float, float, int] | None  # regression target axis: scale, offset, last j


def plan_for(loss: LearnedLoss) -> str | None:
    """The fast-path form of a loss's config (``"regression"``, ``"scaled-regression"``,
    ``"classification"``), or None when the config has none."""
    config = loss.config
    if config.parameterization != "grid" or loss.check_finite:
        return None
    inputs = tuple(config.inputs)
    form = config.residual_form if config.residual else "add"
    if config.kind == "regression" and form == "scale" and inputs == ("scaled_residual",):
        return "scaled-regression"
    if form != "add":
        return None
    if config.kind == "regression" and inputs in (("residual",), ("residual", "target")):
        return "regression"
    if config.kind == "classification" and inputs in (("log_prob",), ("log_prob", "target")):
        return "classification"
    return None


def _spline_rows(network: GridNetwork) -> torch.Tensor:
    """``h``'s coefficients ``(K1, K+1, 4)`` in float64, per knot of the second axis (one
    set without it) and row: the left tail, the K-1 knot intervals, the right tail."""
    lo, hi = network.grid_range[0]
    step = (hi - lo) / (network.knots[0] - 1)
    v = network.values.detach().to(torch.float64)
    m = network.slopes.detach().to(torch.float64) * step  # per unit of the local coordinate
    v0, v1, m0, m1 = v[:, :-1], v[:, 1:], m[:, :-1], m[:, 1:]
    inner = [v0, m0, 3 * (v1 - v0) - 2 * m0 - m1, 2 * (v0 - v1) + m0 + m1]  # Hermite
    zero = torch.zeros_like(v[:, :1])
    left = [v[:, :1] - m[:, :1], m[:, :1], zero, zero]  # t = u + 1 runs over (-inf, 1)
    right = [v[:, -1:], m[:, -1:], zero, zero]  # t = u - (K-1) runs over [0, inf)
    return torch.cat(
        [torch.stack(left, dim=-1), torch.stack(inner, dim=-1), torch.stack(right, dim=-1)],
        dim=1,
    )


def _plus_x(rows: torch.Tensor, slope: torch.Tensor, network: GridNetwork) -> torch.Tensor:
    """``rows`` plus ``slope * x`` (``slope`` per set): the feature itself is linear in every
    row, ``x = lo + step * (row - 1 + t)``."""
    k0 = network.knots[0]
    lo, hi = network.grid_range[0]
    step = (hi - lo) / (k0 - 1)
    start = lo + step * (torch.arange(k0 + 1, dtype=torch.float64) - 1)
    rows = rows.clone()
    rows[..., 0] += slope.view(-1, 1) * start
    rows[..., 1] += slope.view(-1, 1) * step
    return rows


def build_plan(loss: LearnedLoss, form: str, dtype: torch.dtype) -> Plan:
    """The fast path's table for a frozen grid loss (see `Plan`)."""
    network = loss.network
    residual = 1.0 if loss.config.residual else 0.0
    k0 = network.knots[0]
    lo, hi = network.grid_range[0]
    scale = (k0 - 1) / (hi - lo)
    rows = _spline_rows(network)
    second = None
    if form == "scaled-regression":  # h alone: the caller forms (1 + h) * r
        rows = rows[0]
    elif form == "regression":  # z = r + h (or h), and r is the spline's axis
        rows = _plus_x(rows, torch.full((rows.shape[0],), residual, dtype=rows.dtype), network)
        if len(network.knots) == 2:  # A_j and D_j = A_{j+1} - A_j per target interval j
            k1 = network.knots[1]
            lo1, hi1 = network.grid_range[1]
            rows = torch.cat([rows[:-1], rows[1:] - rows[:-1]], dim=-1)
            second = ((k1 - 1) / (hi1 - lo1), -lo1 * (k1 - 1) / (hi1 - lo1), k1 - 2)
    else:  # classification: one set for target 0, one for target 1; z = h - target * lp
        if len(network.knots) == 2:  # h at target 0 and 1, as the general path interpolates
            k1 = network.knots[1]
            lo1, hi1 = network.grid_range[1]
            sets = []
            for y in (0.0, 1.0):
                w = (y - lo1) * (k1 - 1) / (hi1 - lo1)
                j = min(max(math.floor(w), 0), k1 - 2)
                sets.append(torch.lerp(rows[j], rows[j + 1], min(max(w - j, 0.0), 1.0)))
            rows = torch.stack(sets)
        else:
            rows = rows.expand(2, -1, -1)
        rows = _plus_x(rows, torch.tensor([0.0, -residual], dtype=rows.dtype), network)
    columns = rows.reshape(-1, rows.shape[-1]).t().to(dtype).contiguous()
    return Plan(columns, scale, 1.0 - lo * scale, k0, second)


def _plan(loss: LearnedLoss, form: str, dtype: torch.dtype) -> Plan:
    """`build_plan`, cached on the loss (per dtype) while its weights are unchanged."""
    v, m = loss.network.values, loss.network.slopes
    weights = (v._version, m._version, v.data_ptr(), m.data_ptr(), v.device)
    cached = loss.__dict__.get("_fast_plans")
    if cached is None or cached[0] != weights:
        cached = loss.__dict__["_fast_plans"] = (weights, {})
    plan = cached[1].get((form, dtype))
    if plan is None:
        plan = cached[1][(form, dtype)] = build_plan(loss, form, dtype)
    return plan


# ----------------------------------------------------------------------------- scratch


def _scratch(n: int, dtype: torch.dtype, count: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``count`` float buffers and an int32 buffer of ``n`` elements each, kept per thread
    and dtype for calls of up to `SCRATCH_LIMIT` elements (on the CPU, fresh pages cost
    more than the arithmetic done in them)."""
    if n > SCRATCH_LIMIT:
        return list(torch.empty(count, n, dtype=dtype)), torch.empty(n, dtype=torch.int32)
    store = getattr(_state, "scratch", None)
    if store is None:
        store = _state.scratch = {}
    held = store.get(dtype)
    if held is not None:
        views = held[2].get((n, count))
        if views is not None:
            return views
    if held is None or held[0].shape[0] < count or held[0].shape[1] < n:
        size = max(n, 0 if held is None else held[0].shape[1])
        rows = max(count, 0 if held is None else held[0].shape[0])
        held = (torch.empty(rows, size, dtype=dtype), torch.empty(size, dtype=torch.int32), {})
        store[dtype] = held
    floats, ints, cached = held
    views = cached[(n, count)] = ([floats[k, :n] for k in range(count)], ints[:n])
    return views


# ----------------------------------------------------------------------------- evaluation


def _pre_activation(
    x: torch.Tensor,
    plan: Plan,
    want_slope: bool,
    *,
    minus: torch.Tensor | None = None,
    labelled: torch.Tensor | None = None,
    second: torch.Tensor | None = None,
    fresh_z: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``z`` and ``dz/dt`` at the flat values ``x - minus`` along the spline axis.

    ``scale`` replaces ``plan.scale`` (the scaled-regression form divides by the call's
    robust scale first).
    ``z`` is in scratch memory unless ``fresh_z``; ``dz/dt`` (when ``want_slope``) is fresh.
    ``labelled``: the flat positions of the elements that take the second row set
    (classification: the labelled classes);
    ``second``: the values along regression's second axis (the target).
    """
    n = x.numel()
    width = plan.columns.shape[0]
    buffers, index = _scratch(n, x.dtype, 3 + width + (2 if second is not None else 0))
    scale = plan.scale if scale is None else scale
    if minus is None:
        w = torch.add(_scalar(plan.offset, x.dtype), x, alpha=scale, out=buffers[0])
    else:
        w = torch.sub(x, minus, out=buffers[0])
        w = torch.add(_scalar(plan.offset, x.dtype), w, alpha=scale, out=w)
    row = torch.floor(w, out=buffers[1]).clamp_(0, plan.last)
    t = w.sub_(row)
    if labelled is not None:
        row.index_add_(0, labelled, _scalar(plan.last + 1.0, x.dtype).expand(labelled.shape))
    s = None
    if second is not None:
        scale1, offset1, last1 = plan.second
        ws = torch.mul(second, scale1, out=buffers[2 + width]).add_(offset1)
        j = torch.floor(ws, out=buffers[3 + width]).clamp_(0, last1)
        s = ws.sub_(j).clamp_(0.0, 1.0)
        row.add_(j, alpha=plan.last + 1)
    index.copy_(row)
    coef = [torch.index_select(plan.columns[k], 0, index, out=buffers[2 + k]) for k in range(width)]
    if s is not None:  # linear in the target: A + s * D
        coef = [coef[k].addcmul_(s, coef[4 + k]) for k in range(4)]
    a, b, c, d = coef
    z = torch.addcmul(c, t, d, out=None if fresh_z else buffers[-1])
    z = torch.addcmul(b, z, t, out=z)
    z = torch.addcmul(a, z, t, out=z)
    if not want_slope:
        return z, None
    c.addcmul_(t, d, value=1.5)
    return z, torch.addcmul(b, c, t, value=2.0)


def _activate(
    z: torch.Tensor, slope: torch.Tensor | None, activation: str, reduction: str, factor: float
):
    """The output activation of ``z``, reduced as ``reduction`` says (``'none'``: a fresh
    tensor), and ``slope`` times its derivative times ``factor`` (in place)."""
    zero = _zero(z.dtype)
    if activation == "identity":
        value = z if reduction == "none" else z.sum() if reduction == "sum" else z.mean()
        if slope is not None and factor != 1.0:
            slope.mul_(factor)
    elif activation == "square":
        if reduction == "none":
            value = z.square()
        else:
            value = torch.dot(z, z)
            value = value / z.numel() if reduction == "mean" else value
        if slope is not None:
            torch.addcmul(zero, slope, z, value=2.0 * factor, out=slope)
    elif activation == "huber":
        value = F.huber_loss(z, zero.expand_as(z), reduction=reduction)
        if slope is not None:
            torch.addcmul(zero, slope, z.clamp_(-1.0, 1.0), value=factor, out=slope)
    elif activation == "softplus":
        value = F.softplus(z)
        value = (
            value if reduction == "none" else value.sum() if reduction == "sum" else value.mean()
        )
        if slope is not None:
            torch.addcmul(zero, slope, z.sigmoid_(), value=factor, out=slope)
    else:  # pragma: no cover - guarded by plan_for's configs
        raise ValueError(activation)
    return value, slope


_SCALARS: dict[tuple[float, torch.dtype], torch.Tensor] = {}


def _scalar(value: float, dtype: torch.dtype) -> torch.Tensor:
    """A 0-dim CPU tensor holding ``value`` (cached; read-only by convention)."""
    held = _SCALARS.get((value, dtype))
    if held is None:
        if len(_SCALARS) > 64:
            _SCALARS.clear()
        held = _SCALARS[(value, dtype)] = torch.tensor(value, dtype=dtype)
    return held


def _zero(dtype: torch.dtype) -> torch.Tensor:
    return _scalar(0.0, dtype)


class _FastGrid(torch.autograd.Function):
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


# ----------------------------------------------------------------------------- entry point


def _plain(*tensors: Any) -> bool:
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


def fast_loss(
    loss: LearnedLoss, input: Any, target: Any, side_inputs: dict[str, Any]
) -> torch.Tensor | None:
    """The loss by the fast path, or None when the call must take the general path."""
    if side_inputs or getattr(_state, "disabled", False) or not loss.frozen:
        return None
    form = plan_for(loss)
    if form is None or not _plain(input, target):
        return None
    if not input.is_floating_point() or input.numel() == 0 or target.requires_grad:
        return None
    if loss.network.values.device.type != "cpu":
        return None
    if form == "classification":
        return _classification(loss, input, target)
    return _regression(loss, input, target, scaled=form == "scaled-regression")


def _limit(dtype: torch.dtype) -> float:
    from learnedloss.loss import DEFAULT_FEATURE_LIMIT, FEATURE_LIMIT

    return FEATURE_LIMIT.get(dtype, DEFAULT_FEATURE_LIMIT)


def _within(bounds: list[float], limit: float) -> bool:
    """All of ``[min, max, min, max, ...]`` in ``[-limit, limit]`` (False for NaN)."""
    return all(-limit <= b <= limit for b in bounds)


def _general(loss: LearnedLoss, *args: Any) -> torch.Tensor:
    with disabled():
        return loss(*args)


def _regression(loss: LearnedLoss, input: torch.Tensor, target: torch.Tensor, scaled: bool = False):
    if not target.is_floating_point() or target.shape != input.shape:
        return None
    network = loss.network
    dtype = torch.promote_types(
        torch.promote_types(network.values.dtype, input.dtype), target.dtype
    )
    # The general path gives elements with a NaN, infinite or beyond-limit feature the
    # squared error; such calls take it. Inputs and targets within half the limit keep the
    # residual within it too.
    bounds = torch.stack([*torch.aminmax(input.detach()), *torch.aminmax(target)]).tolist()
    if not _within(bounds, _limit(dtype) / 2):
        return None
    plan = _plan(loss, "scaled-regression" if scaled else "regression", dtype)
    reduction = loss.reduction
    activation = network.output_activation
    flat_target = target.reshape(-1).to(dtype)
    second = flat_target if plan.second is not None else None
    shape = input.shape
    factor = plan.scale if not scaled else 1.0
    factor = factor / input.numel() if reduction == "mean" else factor
    want = input.requires_grad and torch.is_grad_enabled()
    fresh = reduction == "none" and activation == "identity"
    if scaled:
        residual = torch.sub(input.detach().reshape(-1).to(dtype), flat_target)
        robust = robust_scale(residual).item()
        # the general path gives features beyond the limit the squared error
        if sum(abs(b) for b in bounds) / robust > _limit(dtype) / 2:
            return None

    def compute(x: torch.Tensor):
        if scaled:  # the residual and its scale were taken above (x is the input)
            z, slope = _scaled_pre_activation(residual, robust, plan, want, fresh)
        else:
            x = x.detach().reshape(-1).to(dtype)
            z, slope = _pre_activation(
                x, plan, want, minus=flat_target, second=second, fresh_z=fresh
            )
        value, slope = _activate(z, slope, activation, reduction, factor)
        if slope is not None:
            slope = slope.view(shape).to(input.dtype)
        return value.view(shape if reduction == "none" else ()).to(input.dtype), slope

    def recompute(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            value = _general(loss, x, target)
            return torch.autograd.grad(value, x, grad, create_graph=True)[0]

    if not want:
        return compute(input)[0]
    return _FastGrid.apply(input, compute, recompute, None)


def _scaled_pre_activation(
    residual: torch.Tensor, robust: float, plan: Plan, want_slope: bool, fresh_z: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``z = (1 + h(r / s)) * r`` and ``dz/dr = 1 + h + (r / s) * h'`` (``s`` detached, as
    the general path's features take it) for the flat residuals ``r``."""
    h, dh_dt = _pre_activation(residual, plan, want_slope, scale=plan.scale / robust)
    slope = None
    if dh_dt is not None:  # 1 + h + r * dh/dt * (dt/dr)
        slope = torch.addcmul(h, dh_dt, residual, value=plan.scale / robust).add_(1.0)
    z = torch.addcmul(residual, residual, h, out=None if fresh_z else h)
    return z, slope


def _classification(loss: LearnedLoss, input: torch.Tensor, target: torch.Tensor):
    if target.is_floating_point() or target.dtype == torch.bool or input.dim() == 0:
        return None
    class_dim = 0 if input.dim() == 1 else 1
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        return None
    n_classes = input.shape[class_dim]
    bounds = torch.stack(torch.aminmax(target.reshape(-1))).tolist()
    if not (bounds[0] >= 0 and bounds[1] < n_classes) or 0 <= loss.ignore_index < n_classes:
        return None  # ignored samples or out-of-range indices: the general path checks them
    network = loss.network
    dtype = torch.promote_types(network.values.dtype, input.dtype)
    log_prob = F.log_softmax(input.to(dtype), dim=class_dim)
    if not _within(torch.stack(torch.aminmax(log_prob.detach())).tolist(), _limit(dtype)):
        return None  # -inf (masked) or NaN logits: the general path handles them
    plan = _plan(loss, "classification", dtype)
    reduction = loss.reduction
    activation = network.output_activation
    # the flat position of each sample's labelled class in the (N, C, d1, ...) logits
    inner = math.prod(input.shape[class_dim + 1 :])
    labels = target.reshape(-1, inner).long() * inner + torch.arange(inner)
    labels = labels.add_(torch.arange(labels.shape[0]).unsqueeze(1), alpha=n_classes * inner)
    labels = labels.view(-1)
    samples = target.numel()
    shape = log_prob.shape
    factor = plan.scale / samples if reduction == "mean" else plan.scale
    want = log_prob.requires_grad and torch.is_grad_enabled()

    def compute(lp: torch.Tensor):
        z, slope = _pre_activation(lp.detach().reshape(-1), plan, want, labelled=labels)
        if reduction == "none":
            value, slope = _activate(z, slope, activation, "none", factor)
            value = value.view(shape).sum(dim=class_dim)
        else:
            value, slope = _activate(z, slope, activation, "sum", factor)
            value = value / samples if reduction == "mean" else value
        if slope is not None:
            slope = slope.view(shape)
        return value.to(input.dtype), slope

    def recompute(lp: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        # The general path on log-probabilities as logits: log_softmax leaves them as they
        # are, so this is the same function of the logits (and its derivatives).
        with torch.enable_grad():
            value = _general(loss, lp, target)
            return torch.autograd.grad(value, lp, grad, create_graph=True)[0]

    if not want:
        return compute(log_prob)[0]
    return _FastGrid.apply(log_prob, compute, recompute, None if reduction != "none" else class_dim)
