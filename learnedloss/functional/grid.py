"""A per-element learned loss's grid (spline) form: `fit_grid` fits the knots and reports the
error of the conversion (`learnedloss.LearnedLoss.to_grid` builds the loss from it)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from learnedloss.config import LossConfig
from learnedloss.functional.ranges import Range, recorded_ranges
from learnedloss.kinds import loss_kind
from learnedloss.networks import build_network

_REGRESSION_FEATURES = {"input", "target", "residual"}
_CLASSIFICATION_FEATURES = {"log_prob", "prob", "target"}


@dataclass
class ExportReport:
    """How far the grid form is from the loss it was exported from, over ``ranges``.

    Errors are the largest absolute differences of the per-element loss (``value_error``)
    and of its derivative along the spline axis (``gradient_error``: the residual, or the
    log-probability for classification) on probe points between and on the knots;
    ``value_scale`` and ``gradient_scale`` are the largest absolute values of the original,
    so ``value_error / value_scale`` is a relative error.
    """

    ranges: dict[str, Range]
    knots: tuple[int, ...]
    value_error: float
    gradient_error: float
    value_scale: float
    gradient_scale: float
    note: str = ""

    @property
    def relative_value_error(self) -> float:
        return self.value_error / max(self.value_scale, 1e-12)

    @property
    def relative_gradient_error(self) -> float:
        return self.gradient_error / max(self.gradient_scale, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        out["knots"] = list(self.knots)
        out["relative_value_error"] = self.relative_value_error
        out["relative_gradient_error"] = self.relative_gradient_error
        return out


def _grid_axes(config: LossConfig, ranges: dict[str, Range], knots: tuple[int, ...] | None):
    reads = set(config.inputs)
    if config.kind == "regression":
        if not reads <= _REGRESSION_FEATURES:
            extra = sorted(reads - _REGRESSION_FEATURES)
            raise ValueError(
                f"this loss reads {extra} besides (prediction, target); a grid has at most two "
                "axes (residual, target), so it cannot be exported"
            )
        if "residual" not in ranges:
            raise ValueError(f"export needs a 'residual' range, got {sorted(ranges)}")
        if reads == {"residual"}:
            return ("residual",), (ranges["residual"],), knots or (257,)
        if "target" not in ranges:
            raise ValueError(f"export needs a 'target' range, got {sorted(ranges)}")
        return ("residual", "target"), (ranges["residual"], ranges["target"]), knots or (257, 41)
    if config.kind == "classification":
        if not reads <= _CLASSIFICATION_FEATURES:
            raise ValueError(f"cannot export a classification loss reading {sorted(reads)}")
        log_prob = ranges.get("log_prob", (-2.0 * ranges.get("logit", (-10, 10))[1] - 5, 0.0))
        return ("log_prob", "target"), (log_prob, (0.0, 1.0)), knots or (257, 2)
    raise ValueError(f"cannot export a {config.kind} loss to a grid")


def _features(config: LossConfig, axes: tuple[str, ...], x: torch.Tensor, y: torch.Tensor | None):
    """The named features of the source network at spline coordinate x and second axis y."""
    if config.kind == "regression":
        target = y if y is not None else torch.zeros_like(x)
        named = {"residual": x, "target": target, "input": target + x}
    else:
        named = {"log_prob": x, "prob": x.exp(), "target": y}
    return named


def _source_h(config: LossConfig, network: nn.Module, axes, x: torch.Tensor, y) -> torch.Tensor:
    named = _features(config, axes, x, y)
    return network.correction(torch.stack([named[n] for n in config.inputs], dim=-1))


def _per_element(network, config, axes, x, y):
    """Per-element loss of a network (source or grid) at probe points, as the loss computes
    it: h from the features, combined with the standard term."""
    named = _features(config, axes, x, y)
    kind = loss_kind(config.kind)
    skip = multiplier = None
    if config.residual:
        skip, multiplier = kind.standard_term(named)
    features = torch.stack([named[n] for n in config.inputs], dim=-1)
    return network(features, skip, multiplier)


@dataclass
class GridExport:
    """A loss's grid form, as `fit_grid` returns it.

    Attributes:
        config: the grid loss's architecture.
        network: its network (a `learnedloss.networks.GridNetwork`), the knots fitted.
        metadata: the source's metadata, plus the ranges (``feature_range``) and the
            conversion's error (``export``).
        report: the conversion's errors over the probe set.
    """

    config: LossConfig
    network: nn.Module
    metadata: dict[str, Any]
    report: ExportReport


def fit_grid(
    config: LossConfig,
    network: nn.Module,
    metadata: dict[str, Any] | None = None,
    ranges: dict[str, Range] | None = None,
    knots: tuple[int, ...] | None = None,
    probes: int = 4,
) -> GridExport:
    """The grid (spline) form of a per-element learned loss, and the error of the conversion.

    The grid keeps the loss's kind, ``residual``, ``residual_form`` and output activation
    and replaces only what computes ``h`` (`learnedloss.networks`): at each knot the grid
    takes the source's ``h`` and its derivative along the spline axis, so between knots the
    cubic Hermite spline matches the source to O(spacing⁴) in value where it is smooth.
    Regression losses become a 2-D grid over (residual, target) (1-D when they read only the
    residual); classification losses a grid over (log_prob, target) with target knots 0 and 1
    (exact for class-index targets; probability targets are interpolated linearly between the
    labelled and unlabelled curves).

    The ``"weight"`` form exports the weight logit ``h`` and keeps the softmax normalization
    over the call's elements, so the exported loss reweights a batch as the original does;
    the reported errors are those of the normalized per-element loss over the probe set.

    Args:
        config: the source loss's architecture: a regression or classification loss without
            side inputs.
        network: the source loss's network.
        metadata: the source loss's metadata (where `training_ranges` finds its range).
        ranges: ``{"residual": (lo, hi), "target": (lo, hi)}`` (regression) or
            ``{"log_prob": (lo, 0)}`` / ``{"logit": (lo, hi)}`` (classification); default: the
            range recorded in ``metadata`` (`training_ranges`), required otherwise.
        knots: knots per grid axis (default 257 along the residual or log-probability, 41
            along the target, 2 for classification targets).
        probes: probe points per knot interval for the error report.

    Returns:
        export (GridExport): the grid's config, fitted network, metadata and error report.

    Raises:
        ValueError: a loss of another kind, one with side inputs or features no grid axis
            holds, or no range given or recorded.
    """
    if config.kind not in ("regression", "classification") or config.side_inputs:
        raise ValueError(
            f"this {config.kind} loss reads {list(config.inputs)}; only regression and "
            "classification losses without side inputs can be exported to a grid (at most two "
            "axes), so it cannot be exported"
        )
    metadata = copy.deepcopy(metadata or {})
    ranges = recorded_ranges(config.kind, metadata, ranges)
    axes, grid_range, knots = _grid_axes(config, ranges, knots)
    grid_config = LossConfig(
        kind=config.kind,
        output_activation=config.output_activation,
        residual=config.residual,
        residual_form=config.residual_form,
        inputs=axes,
        parameterization="grid",
        grid_knots=tuple(knots),
        grid_range=tuple(grid_range),
    )
    grid = build_network(grid_config)
    positions = [p.to(torch.float64) for p in grid.knot_positions]
    source = copy.deepcopy(network).to(torch.float64)
    with torch.enable_grad():
        if len(positions) == 1:
            x = positions[0].clone().requires_grad_(True)
            h = _source_h(config, source, axes, x, None)
            (slope,) = torch.autograd.grad(h.sum(), x)
            values, slopes = h.detach()[None], slope[None]
        else:
            y, x = torch.meshgrid(positions[1], positions[0], indexing="ij")
            x = x.clone().requires_grad_(True)
            h = _source_h(config, source, axes, x, y)
            (slope,) = torch.autograd.grad(h.sum(), x)
            values, slopes = h.detach(), slope
    grid.fit_knots(values.float(), slopes.float())
    report = _report(
        (config, source), (grid_config, grid), axes, grid_range, tuple(knots), ranges, probes
    )
    metadata["feature_range"] = {k: list(v) for k, v in ranges.items()}
    metadata["export"] = {
        "from": {"parameterization": config.parameterization, "inputs": list(config.inputs)},
        "value_error": report.value_error,
        "gradient_error": report.gradient_error,
        "relative_value_error": report.relative_value_error,
        "relative_gradient_error": report.relative_gradient_error,
    }
    return GridExport(grid_config, grid, metadata, report)


def _report(source, grid, axes, grid_range, knots, ranges, probes) -> ExportReport:
    """The errors of ``grid`` against ``source`` (each a ``(config, network)`` pair)."""
    (lo, hi) = grid_range[0]
    xs = torch.linspace(lo, hi, (knots[0] - 1) * probes + 1, dtype=torch.float64)
    if len(knots) == 2:
        lo1, hi1 = grid_range[1]
        n1 = 2 if axes[1] == "target" and grid[0].kind == "classification" else 4 * knots[1]
        ys = torch.linspace(lo1, hi1, n1, dtype=torch.float64)
        y, x = torch.meshgrid(ys, xs, indexing="ij")
    else:
        x, y = xs, None
    grid_net = copy.deepcopy(grid[1]).to(torch.float64)
    out = []
    for config, network in (source, (grid[0], grid_net)):
        xr = x.clone().requires_grad_(True)
        with torch.enable_grad():
            value = _per_element(network, config, axes, xr, y)
            (gradient,) = torch.autograd.grad(value.sum(), xr)
        out.append((value.detach(), gradient))
    (v0, g0), (v1, g1) = out
    note = ""
    if grid[0].residual_form == "weight":
        note = "weight form: h exported, softmax normalization over the call kept"
    return ExportReport(
        ranges=dict(ranges),
        knots=knots,
        value_error=float((v0 - v1).abs().max()),
        gradient_error=float((g0 - g1).abs().max()),
        value_scale=float(v0.abs().max()),
        gradient_scale=float(g0.abs().max()),
        note=note,
    )
