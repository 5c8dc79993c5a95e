"""The grid parameterization: a cubic spline on a fixed grid of knots, fast per element."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss.networks.base import LossNetwork, _FirstLayerShim
from learnedloss.networks.fast import Plan, build_plan

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class GridNetwork(LossNetwork):
    r"""A piecewise-cubic function of one or two features on a fixed grid of knots.

    The first of ``config.inputs`` is the *spline axis*: ``grid_knots[0]`` equally spaced
    knots :math:`x_0 < \dots < x_{K-1}` over ``grid_range[0]``, with a learned value
    :math:`v_k` and slope :math:`m_k` at each knot. Between two knots the output is the cubic
    Hermite polynomial with those values and slopes at its ends, so ``h`` is continuous with
    a continuous first derivative (C¹), and it reproduces any cubic exactly. The optional
    second input is the *linear axis*: ``grid_knots[1]`` knots over ``grid_range[1]``, one
    spline per knot, interpolated linearly between them (for a classification loss over
    ``("log_prob", "target")`` with 2 target knots: one curve for the labelled class, one for
    the others, and soft targets in between).

    Outside the grid:

    - on the spline axis the function continues along its end slope (linear extrapolation,
      C¹ at the ends). Through a residual ``square`` output this makes the tails of
      ``(r + h(r))^2`` quadratic, continuing MSE; through ``huber`` they are linear. A
      ``log_prob`` of ``-inf`` (a class masked by a ``-inf`` logit) takes the end value
      ``h(x_0)`` instead of an infinite one, so masked classes cost what the grid's lowest
      knot costs, and nothing with a residual ``-target * log_prob`` start (their target is
      0);
    - on the linear axis the function is constant beyond the end knots (clamped).

    Evaluation is O(1) per element whatever the number of knots: the knot interval comes
    from index arithmetic (``floor``), the interval's 4 polynomial coefficients (and its
    extrapolation slope) from one gather out of a small table computed from the knots, then
    Horner's rule. The table is cached while the parameters are frozen and unchanged (a
    loaded loss), and rebuilt on every call when they require gradients or are passed in by
    ``torch.func.functional_call`` (meta-training), so the function stays a pure tensor
    function of its parameters and works under ``torch.func.vmap``.

    Parameters: ``values`` and ``slopes``, each of shape ``(K1, K0)`` (``K1 = 1`` for one
    input), slopes in units of the feature (d h / d x). A residual config starts with both
    at zero (``h = 0``: exactly the standard loss); otherwise ``h`` starts as the linear ramp
    from -1 to 1 across the spline axis's range.

    Shape:
        - Input: ``(*, in_features)`` with ``in_features`` 1 or 2.
        - Output: ``(*)``.
    """

    layers = _FirstLayerShim()

    def __init__(self, config: LossConfig) -> None:
        super().__init__(config)
        if config.grid_knots is None or config.grid_range is None:
            raise ValueError("a GridNetwork needs a LossConfig with parameterization='grid'")
        self.knots = tuple(config.grid_knots)
        self.grid_range = tuple(config.grid_range)
        k0 = self.knots[0]
        k1 = self.knots[1] if len(self.knots) == 2 else 1
        lo, hi = self.grid_range[0]
        values = torch.zeros(k1, k0)
        slopes = torch.zeros(k1, k0)
        if not config.residual:
            values += torch.linspace(-1.0, 1.0, k0)
            slopes += 2.0 / (hi - lo)
        self.values = nn.Parameter(values)
        self.slopes = nn.Parameter(slopes)
        self._mask_infinite = self.inputs[0] == "log_prob"
        self._cache: tuple | None = None

    @property
    def knot_positions(self) -> list[torch.Tensor]:
        """The knots of each axis, as 1-D float64 tensors."""
        return [
            torch.linspace(lo, hi, k, dtype=torch.float64)
            for (lo, hi), k in zip(self.grid_range, self.knots, strict=True)
        ]

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}, knots={self.knots}, range={self.grid_range}"

    # ------------------------------------------------------------------ the coefficient table

    def _build_table(self, dtype: torch.dtype) -> torch.Tensor:
        """Per interval: Hermite coefficients (a, b, c, d) in the local coordinate t ∈ [0, 1]
        and the extrapolation slope e (per unit t) of the end intervals; ``(K1 * (K0-1), 5)``."""
        k0 = self.knots[0]
        lo, hi = self.grid_range[0]
        step = (hi - lo) / (k0 - 1)
        v = self.values.to(dtype)
        m = self.slopes.to(dtype) * step
        v0, v1, m0, m1 = v[:, :-1], v[:, 1:], m[:, :-1], m[:, 1:]
        c = 3 * (v1 - v0) - 2 * m0 - m1
        d = 2 * (v0 - v1) + m0 + m1
        inner = torch.zeros_like(v0[:, : k0 - 3])
        e = torch.cat([m0[:, :1], inner, m1[:, -1:]], dim=1)
        return torch.stack([v0, m0, c, d, e], dim=-1).reshape(-1, 5)

    def table(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The coefficient table in ``dtype``, cached while the parameters are frozen."""
        v, m = self.values, self.slopes
        frozen = (
            isinstance(v, nn.Parameter)
            and isinstance(m, nn.Parameter)
            and not (v.requires_grad or m.requires_grad)
            and not torch.compiler.is_compiling()
        )
        if not frozen:
            return self._build_table(dtype)
        key = (v._version, m._version, v.data_ptr(), m.data_ptr(), v.device, dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._build_table(dtype))
        return self._cache[1]

    # ------------------------------------------------------------------ evaluation

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        if (
            len(self.knots) == 1
            and self._frozen()
            and not torch.compiler.is_compiling()
            and not _functorch_active()
        ):
            return _FrozenSpline.apply(features, self)
        return self._correction(features)

    def _frozen(self) -> bool:
        v, m = self.values, self.slopes
        return (
            isinstance(v, nn.Parameter)
            and isinstance(m, nn.Parameter)
            and not (v.requires_grad or m.requires_grad)
        )

    def _locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Interval index, clamped local coordinate and the excess beyond the grid's ends."""
        k0 = self.knots[0]
        lo, hi = self.grid_range[0]
        u = (x - lo) * ((k0 - 1) / (hi - lo))
        i = u.detach().floor().long().clamp(0, k0 - 2)  # NaN and ±inf land in range too
        t = u - i.to(x.dtype)
        tc = t.clamp(0.0, 1.0)
        excess = t - tc  # nonzero only beyond the grid's ends
        if self._mask_infinite:
            excess = torch.where(excess.isfinite(), excess, torch.zeros_like(excess))
        return i, tc, excess

    def _correction(self, features: torch.Tensor) -> torch.Tensor:
        """``h`` from differentiable tensor operations (meta-training, vmap, compile)."""
        dtype = features.dtype
        k0 = self.knots[0]
        i, tc, excess = self._locate(features[..., 0])
        table = self.table(dtype)
        if len(self.knots) == 1:
            rows = table[i]
        else:
            k1 = self.knots[1]
            lo1, hi1 = self.grid_range[1]
            w = (features[..., 1] - lo1) * ((k1 - 1) / (hi1 - lo1))
            j = w.detach().floor().long().clamp(0, k1 - 2)
            s = (w - j.to(dtype)).clamp(0.0, 1.0)
            index = j * (k0 - 1) + i
            rows = torch.lerp(table[index], table[index + (k0 - 1)], s.unsqueeze(-1))
        a, b, c, d, _ = rows.unbind(-1)
        value = a + tc * (b + tc * (c + tc * d))
        slope = b + tc * (2 * c + 3 * tc * d)  # d value / d t at the clamped point
        return value + excess * slope

    def _fast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` and ``dh/dx`` of a frozen 1-D spline with few kernels and few allocations
        (no autograd graph; called inside `_FrozenSpline`)."""
        dtype = x.dtype
        k0 = self.knots[0]
        lo, hi = self.grid_range[0]
        scale = (k0 - 1) / (hi - lo)
        u = (x - lo).mul_(scale)
        i = u.floor().to(torch.int32).clamp(0, k0 - 2).reshape(-1)  # NaN, ±inf in range
        t = u.sub_(i.view(u.shape))
        tc = t.clamp(0.0, 1.0)
        excess = t.sub_(tc)
        if self._mask_infinite:
            excess = torch.where(excess.isfinite(), excess, torch.zeros_like(excess))
        columns = self.coefficient_columns(dtype)
        a, b, c, d = (columns[k].index_select(0, i).view(tc.shape) for k in range(4))
        value = torch.addcmul(c, tc, d)
        value.mul_(tc).add_(b).mul_(tc).add_(a)
        slope = torch.addcmul(c, tc, d, value=1.5)
        slope.mul_(tc).mul_(2).add_(b)
        value = torch.addcmul(value, excess, slope)
        return value, slope.mul_(scale)

    def coefficient_columns(self, dtype: torch.dtype) -> torch.Tensor:
        """The table's 4 polynomial coefficients as contiguous rows, ``(4, intervals)``:
        ``a, b, c, d`` of ``a + b t + c t^2 + d t^3`` in each interval's local coordinate
        ``t``, the intervals of each knot of the second axis in turn (the fused kernels read
        them, `learnedloss.kernels`)."""
        table = self.table(dtype)
        cached = getattr(self, "_columns_cache", None)
        if cached is not None and cached[0] is table:
            return cached[1]
        columns = table[:, :4].t().contiguous()
        if self._frozen():
            self._columns_cache = (table, columns)
        return columns

    def _derivative(self, features: torch.Tensor) -> torch.Tensor:
        """``dh/dx`` along the spline axis from differentiable operations (double backward)."""
        i, tc, _ = self._locate(features[..., 0])
        _, b, c, d, _ = self.table(features.dtype)[i].unbind(-1)
        lo, hi = self.grid_range[0]
        return (b + tc * (2 * c + 3 * tc * d)) * ((self.knots[0] - 1) / (hi - lo))

    def fast_plan(self, form: str, dtype: torch.dtype) -> Plan:
        """This frozen network's fast plan in ``dtype`` (`learnedloss.networks.fast`), for a
        form `learnedloss.networks.fast.plan_for` gives; built from the knots on first use
        and kept while they are unchanged."""
        v, m = self.values, self.slopes
        weights = (v._version, m._version, v.data_ptr(), m.data_ptr(), v.device)
        cached = self.__dict__.get("_fast_plans")
        if cached is None or cached[0] != weights:
            cached = self.__dict__["_fast_plans"] = (weights, {})
        plan = cached[1].get((form, dtype))
        if plan is None:
            plan = cached[1][(form, dtype)] = build_plan(self, form, dtype)
        return plan

    @torch.no_grad()
    def fit_knots(self, values: torch.Tensor, slopes: torch.Tensor) -> None:
        """Set the knots' values and slopes (shape ``(K1, K0)``), e.g. from another loss."""
        self.values.copy_(values.reshape(self.values.shape))
        self.slopes.copy_(slopes.reshape(self.slopes.shape))


def _functorch_active() -> bool:
    """Whether a ``torch.func`` transform (vmap, grad) is running: the frozen fast path is
    for plain eager calls; transforms take the differentiable path."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return True if active is None else bool(active())


class _FrozenSpline(torch.autograd.Function):
    """A frozen 1-D spline's ``h`` with a one-multiply backward: the forward computes ``h``
    and ``dh/dx`` together without recording a graph. Under ``create_graph=True`` the
    backward recomputes ``dh/dx`` from differentiable operations, so second derivatives
    with respect to the input stay right."""

    @staticmethod
    def forward(features: torch.Tensor, network: GridNetwork) -> tuple[torch.Tensor, ...]:
        value, slope = network._fast(features[..., 0])
        return value, slope

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        features, network = inputs
        ctx.network = network
        ctx.save_for_backward(features, output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor, *_unused: torch.Tensor | None):
        features, slope = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: keep the derivative differentiable
            slope = ctx.network._derivative(features)
        return (grad * slope).unsqueeze(-1), None

    @classmethod
    def apply(cls, features: torch.Tensor, network: GridNetwork) -> torch.Tensor:  # type: ignore[override]
        return super().apply(features, network)[0]
