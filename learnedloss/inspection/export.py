"""`to_grid`: turn a per-element learned loss into the fast grid (spline) form (the conversion
itself is `learnedloss.functional.grid.fit_grid`; `learnedloss.LearnedLoss.to_grid` calls it)."""

from __future__ import annotations

from typing import Any

from learnedloss.functional.grid import ExportReport, GridExport, fit_grid
from learnedloss.functional.ranges import Range

__all__ = ["ExportReport", "GridExport", "fit_grid", "to_grid"]


def to_grid(
    loss: Any,
    ranges: dict[str, Range] | None = None,
    knots: tuple[int, ...] | None = None,
    probes: int = 4,
):
    """Export a per-element learned loss to the grid (spline) form, and report its error:
    ``loss.to_grid(ranges, knots=knots, probes=probes)``.

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
        loss: a `learnedloss.LearnedLoss` without side inputs.
        ranges: ``{"residual": (lo, hi), "target": (lo, hi)}`` (regression) or
            ``{"log_prob": (lo, 0)}`` / ``{"logit": (lo, hi)}`` (classification); default: the
            range recorded in the loss's metadata (`training_ranges`), required otherwise.
        knots: knots per grid axis (default 257 along the residual or log-probability, 41
            along the target, 2 for classification targets).
        probes: probe points per knot interval for the error report.

    Returns:
        grid_loss (LearnedLoss): a frozen `learnedloss.LearnedLoss` whose metadata records
            the source, the ranges (``feature_range``) and the error.
        report (ExportReport): the conversion's errors over the probe set.

    Examples:
        >>> from learnedloss import LearnedLoss
        >>> from learnedloss.inspection import to_grid
        >>> grid, report = to_grid(LearnedLoss.from_pretrained("sine-regression"))
        >>> report.relative_gradient_error < 0.05
        True
    """
    return loss.to_grid(ranges, knots=knots, probes=probes)
