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

    What the grid keeps and how close it comes are described at
    `learnedloss.functional.grid.fit_grid`, which does the conversion.

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
