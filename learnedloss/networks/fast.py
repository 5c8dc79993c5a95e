"""The fast plan of a frozen grid network: its whole per-element loss in few kernels.

A frozen grid loss (as `learnedloss.LearnedLoss.from_pretrained` loads it, or after
``freeze()``) is a fixed piecewise-cubic function. `GridNetwork.fast_plan` folds the residual
combination into the spline once (on the first call after the weights change), so that the
pre-activation ``z`` is one cubic per knot interval, with exact linear tails beyond the grid: a
`Plan`. A call then computes ``z`` and ``dz/dx`` by one gather of each coefficient and Horner's
rule (`Plan.evaluate`), and `activate` applies the output activation and its derivative.
`learnedloss.functional` decides which calls take the plan, reduces, and wraps it all in one
``torch.autograd.Function`` whose backward is one multiplication.

A plan exists for these configs (`plan_for`):

- regression over ``("residual",)`` or ``("residual", "target")`` (linear in the target)
  with ``residual_form="add"`` (or no residual);
- scale-free regression over ``("scaled_residual",)`` with ``residual_form="scale"``
  (``(1 + h(r / s)) * r``, ``s`` the call's `learnedloss.kinds.regression.robust_scale`);
- classification over ``("log_prob",)`` or ``("log_prob", "target")`` with
  ``residual_form="add"`` (or no residual);

with any output activation, when ``check_finite`` is off.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

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


def enabled() -> bool:
    """Whether fast plans may compute calls in this thread (not inside `disabled`)."""
    return not getattr(_state, "disabled", False)


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

    def evaluate(
        self,
        x: torch.Tensor,
        want_slope: bool,
        *,
        minus: torch.Tensor | None = None,
        labelled: torch.Tensor | None = None,
        second: torch.Tensor | None = None,
        fresh_z: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``z`` and ``dz/dt`` at the flat values ``x - minus`` along the spline axis.

        ``z`` is in scratch memory unless ``fresh_z``; ``dz/dt`` (when ``want_slope``) is
        fresh. ``labelled``: the flat positions of the elements that take the second row set
        (classification: the labelled classes); ``second``: the values along regression's
        second axis (the target).
        """
        return _pre_activation(
            x, self, want_slope, minus=minus, labelled=labelled, second=second, fresh_z=fresh_z
        )

    def evaluate_scaled(
        self, residual: torch.Tensor, robust: float, want_slope: bool, fresh_z: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``z = (1 + h(r / s)) * r`` and ``dz/dr`` for the flat residuals ``r`` and the
        call's robust scale ``s`` (the scaled-regression form)."""
        return _scaled_pre_activation(residual, robust, self, want_slope, fresh_z)


def plan_for(config: LossConfig, check_finite: bool = False) -> str | None:
    """The plan's form for a config (``"regression"``, ``"scaled-regression"``,
    ``"classification"``), or None when the config has none (or ``check_finite`` is on: the
    strict check is the general path's)."""
    if config.parameterization != "grid" or check_finite:
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


def _spline_rows(network: nn.Module) -> torch.Tensor:
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


def _plus_x(rows: torch.Tensor, slope: torch.Tensor, network: nn.Module) -> torch.Tensor:
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


def build_plan(network: nn.Module, form: str, dtype: torch.dtype) -> Plan:
    """The `Plan` of a grid network (a `learnedloss.networks.GridNetwork`) in ``dtype``, for
    a form `plan_for` gives; `GridNetwork.fast_plan` keeps it while the knots are unchanged."""
    residual = 1.0 if network.residual else 0.0
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
    """`Plan.evaluate`; ``scale`` replaces ``plan.scale`` (the scaled-regression form divides
    by the call's robust scale first)."""
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


def activate(
    z: torch.Tensor, slope: torch.Tensor | None, activation: str, factor: float, summed: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The output activation of the flat pre-activations ``z``, and ``slope`` times its
    derivative times ``factor`` (in place; ``z`` may be overwritten).

    Returns:
        ``(values, total, slope)``: the per-element values (a fresh tensor), or with
        ``summed`` and a ``square`` activation, their sum as one dot product instead
        (``values`` None); ``total`` is None otherwise.
    """
    zero = _zero(z.dtype)
    total = None
    if activation == "identity":
        values = z
        if slope is not None and factor != 1.0:
            slope.mul_(factor)
    elif activation == "square":
        if summed:
            values, total = None, torch.dot(z, z)
        else:
            values = z.square()
        if slope is not None:
            torch.addcmul(zero, slope, z, value=2.0 * factor, out=slope)
    elif activation == "huber":
        values = F.huber_loss(z, zero.expand_as(z), reduction="none")
        if slope is not None:
            torch.addcmul(zero, slope, z.clamp_(-1.0, 1.0), value=factor, out=slope)
    elif activation == "softplus":
        values = F.softplus(z)
        if slope is not None:
            torch.addcmul(zero, slope, z.sigmoid_(), value=factor, out=slope)
    else:  # pragma: no cover - guarded by plan_for's configs
        raise ValueError(activation)
    return values, total, slope


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
