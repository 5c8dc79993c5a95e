"""Losses you can look at and check: export to the fast grid form, sanity checks, plots.

- `to_grid`: turn a per-element learned loss (MLP or Taylor) into the grid (spline) form,
  reporting the largest error in value and gradient over the range it was trained on.
- `check`: finite values and gradients, the minimum at the target, the gradient's sign and
  size, and whether an element's loss depends on the rest of the batch.
- `plot_loss`: the loss and its gradient over the residual next to MSE and Huber (PNG).
- `training_ranges`: the range of data a loss was meta-trained on, from its metadata.

See docs/parameterizations.md.
"""

from __future__ import annotations

from learnedloss.inspection.check import CheckReport, Criterion, check
from learnedloss.inspection.export import ExportReport, to_grid
from learnedloss.inspection.plot import plot_loss
from learnedloss.inspection.ranges import training_ranges

__all__ = [
    "CheckReport",
    "Criterion",
    "ExportReport",
    "check",
    "plot_loss",
    "to_grid",
    "training_ranges",
]
