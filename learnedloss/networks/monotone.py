"""The monotone parameterization: a loss that can only grow with the size of the error."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from learnedloss.config import PROGRESS_INPUT
from learnedloss.networks.base import LossNetwork, _FirstLayerShim

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

POWERS = {"square": 2, "identity": 1}
"""The power ``p`` of the standard term each output activation stands for: the squared error
(regression) grows as the error squared, a cross-entropy term (classification) linearly."""

SMALLEST_MAGNITUDE = 1e-6
"""Magnitudes below this (in the feature's units) are evaluated at it: on the first interval
the ratio `MonotoneNetwork` computes is a constant (``p = 2``) or affine (``p = 1``), so this
changes the loss by far less than its rounding."""


class MonotoneTables(NamedTuple):
    r"""A frozen monotone loss as polynomial coefficients, for the fast path: on each knot
    interval ``k`` (and on the tail beyond the last knot, ``k = K - 1``) the shape is
    :math:`R(z) = a_k + b_k z + c_k z^2` and its influence :math:`\psi(z) = b_k + 2 c_k z`.

    ``coefficients`` is ``(K1, K, 3)``: ``(a, b, c)`` per curve of the second axis and
    interval; ``boundaries`` the ``K - 1`` inner knots that `torch.bucketize` locates a
    magnitude among."""

    coefficients: torch.Tensor
    boundaries: torch.Tensor


class MonotoneNetwork(LossNetwork):
    r"""A loss that is non-decreasing in the size of the error by construction.

    The first input is a scaled error magnitude :math:`z \ge 0` (its absolute value is taken),
    for example ``scaled_residual`` (:math:`r / s`, :math:`s` the call's robust scale of the
    residuals) or ``scaled_nll`` (:math:`-\log p / s`). The network holds an *influence*
    :math:`\psi(z) \ge 0` (the derivative of the loss in :math:`z`, as in M-estimation) at
    ``grid_knots[0]`` equally spaced knots over ``grid_range[0] = (0, Z)``, interpolated
    linearly between them and continued beyond :math:`Z` along the last interval's slope when
    that slope is positive (flat otherwise). The loss shape is its integral,

    .. math::
        R(z) = \int_0^{z} \psi(u)\, du,

    computed exactly (it is piecewise quadratic) from cumulative sums of the knots'
    trapezoids. Since :math:`\psi \ge 0` everywhere, :math:`R` never decreases: the loss can
    flatten (redescend) but never dips, whatever the parameters. Each knot's influence is the
    standard loss's times :math:`\exp(\theta_k)` (``log_influence``, starting at 0), so that
    the search moves it by factors, and the parameterization starts as exactly the standard
    loss: :math:`\psi(z) = 2z` (``output_activation="square"``, MSE: :math:`R = z^2`, with
    :math:`\psi(0) = 0` fixed) or :math:`\psi = 1` (``"identity"``, cross-entropy:
    :math:`R = z`).

    The value is the standard term ``skip`` (the residual :math:`r = s z`, or the
    cross-entropy term) times :math:`R(z) / z^p`: :math:`s^2 R(r / s)` for regression and
    :math:`s R(u / s)` for a labelled class of cross-entropy :math:`u`, in the data's own
    units. An optional second input (a statistic of the call, such as ``contamination``) picks
    the shape: one influence curve per knot of ``grid_knots[1]`` over ``grid_range[1]``,
    interpolated linearly between them (so still non-negative) and clamped beyond the ends.

    Over training progress (second input ``"progress"``) every curve is *anchored*: its
    influence at the first knot it may move (the second knot for a squared error, the first
    for cross-entropy) is the standard loss's, whatever its ``log_influence`` there. Progress
    then changes the loss's shape, not its scale. A scale that changes over training would
    schedule the learning rate behind the optimizer's back: under SGD a scale is a learning
    rate, and under Adam a scale that grows or shrinks is a transient one.

    Shape:
        - Input: ``(*, in_features)`` with ``in_features`` 1 or 2, and the standard term
          ``skip`` of shape ``(*)``.
        - Output: ``(*)``.
    """

    layers = _FirstLayerShim()

    def __init__(self, config: LossConfig) -> None:
        super().__init__(config)
        if config.grid_knots is None or config.grid_range is None:
            raise ValueError("a MonotoneNetwork needs a config with parameterization='monotone'")
        self.knots = tuple(config.grid_knots)
        self.grid_range = tuple(config.grid_range)
        self.power = POWERS[config.output_activation]
        k0 = self.knots[0]
        k1 = self.knots[1] if len(self.knots) == 2 else 1
        first = 1 if self.power == 2 else 0  # MSE's influence is 0 at z = 0: fixed there
        self.log_influence = nn.Parameter(torch.zeros(k1, k0 - first))
        self.anchored = len(config.inputs) == 2 and config.inputs[1] == PROGRESS_INPUT

    @property
    def spacing(self) -> float:
        """The distance between two knots of the magnitude axis."""
        return self.grid_range[0][1] / (self.knots[0] - 1)

    def extra_repr(self) -> str:
        return f"knots={self.knots}, range={self.grid_range}, power={self.power}"

    def influence(self) -> torch.Tensor:
        r"""The influence :math:`\psi` at every knot, ``(K1, K0)``: the standard loss's times
        ``exp(log_influence)`` (0 at :math:`z = 0` for a squared error; anchored curves, over
        progress, keep the standard influence at their first free knot)."""
        theta = self.log_influence
        if self.anchored:  # each curve's first free knot keeps the standard influence
            theta = theta - theta[:, :1]
        k0 = self.knots[0]
        z = torch.arange(k0, dtype=theta.dtype, device=theta.device) * self.spacing
        if self.power == 2:
            return torch.cat([theta.new_zeros(theta.shape[0], 1), 2 * z[1:] * theta.exp()], dim=1)
        return theta.exp().expand(theta.shape[0], k0)

    def coefficients(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""The shape as a quadratic per interval, ``(K1, K, 3)``: on knot interval ``k``
        (``k = K - 1``: the tail beyond the last knot) :math:`R(z) = a_k + b_k z + c_k z^2`,
        from the influence's trapezoids (computed in ``dtype``; default the weights')."""
        psi = self.influence()
        psi = psi if dtype is None else psi.to(dtype)
        delta = self.spacing
        knots = torch.arange(self.knots[0], dtype=psi.dtype, device=psi.device) * delta
        area = delta * (psi[:, 1:] + psi[:, :-1]) / 2
        start = torch.cat([psi.new_zeros(psi.shape[0], 1), area.cumsum(dim=1)], dim=1)
        tail = ((psi[:, -1] - psi[:, -2]) / delta).clamp_min(0.0)
        # R = start_k + psi_k (z - z_k) + m_k (z - z_k)^2 on interval k, expanded in z
        curvature = torch.cat([(psi[:, 1:] - psi[:, :-1]) / (2 * delta), tail[:, None] / 2], 1)
        a = start - psi * knots + curvature * knots.square()
        b = psi - 2 * curvature * knots
        return torch.stack([a, b, curvature], dim=-1)

    def shape_at(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        r"""The loss shape :math:`R(z)` at magnitudes ``z`` (absolute values are taken).

        Args:
            z: ``(*)`` magnitudes in the feature's units.
            rows: ``(*)`` positions on the second axis (None: the only curve).
        """
        table = self.coefficients()
        z = z.abs()
        index = (z / self.spacing).floor().clamp(0, self.knots[0] - 1).long()
        if rows is None:
            coefficients = table[0][index]
        else:  # one curve per knot of the second axis, blended linearly
            lo, hi = self.grid_range[1]
            k1 = self.knots[1]
            position = ((rows - lo) / (hi - lo) * (k1 - 1)).clamp(0, k1 - 1)
            row = position.floor().clamp_max(k1 - 2).long()
            weight = (position - row.to(position.dtype)).unsqueeze(-1)
            lower = table[row, index]
            coefficients = lower + weight * (table[row + 1, index] - lower)
        a, b, c = coefficients.unbind(-1)
        return a + z * (b + c * z)

    def fast_tables(self, dtype: torch.dtype) -> MonotoneTables:
        """The frozen loss's `MonotoneTables` in ``dtype`` (computed in float64), rebuilt
        only when the weights change."""
        theta = self.log_influence
        key = (theta._version, theta.data_ptr(), theta.device, dtype)
        cached = getattr(self, "_tables", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                coefficients = self.coefficients(torch.float64)
                knots = torch.arange(1, self.knots[0], dtype=torch.float64) * self.spacing
                tables = MonotoneTables(coefficients.to(dtype), knots.to(dtype))
            self._tables = cached = (key, tables)
        return cached[1]

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        r"""The ratio :math:`R(z) / z^p` of the loss to the standard term's power."""
        z = features[..., 0].abs().clamp_min(SMALLEST_MAGNITUDE)
        rows = features[..., 1] if features.shape[-1] == 2 else None
        return self.shape_at(z, rows) / z**self.power

    def forward(
        self,
        features: torch.Tensor,
        skip: torch.Tensor | None = None,
        multiplier: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ratio = self.correction(features)
        standard = skip.square() if self.power == 2 else skip
        return standard * ratio
