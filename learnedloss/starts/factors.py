"""Knot values and slopes that give a count-free grid loss a known robust shape.

A count-free classification loss (`learnedloss.starts.count_free_cross_entropy_start_config`,
or a grid over one of its features) is cross-entropy times a factor ``1 + h``. These functions
compute ``h`` and its slope at a grid's knots for published robust losses, so that a grid loss
can start at such a shape instead of at cross-entropy.
"""

from __future__ import annotations

import torch


def generalized_cross_entropy_factor(
    log_prob: torch.Tensor, q: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Knot values and slopes that give a count-free grid loss GCE's shape.

    A loss of the form :math:`(1 + h(x)) \cdot (-x)` with :math:`x = \log p_y` (the count-free
    start over the labelled class's ``"log_prob"``) is the generalized cross-entropy
    :math:`(1 - p_y^q)/q` of Zhang and Sabuncu (NeurIPS 2018) when
    :math:`1 + h = (1 - p_y^q) / (-q x)`. The factor falls from 1 (cross-entropy) at
    :math:`p_y = 1` towards 0 for unlikely labels, which bounds the pull of a wrong label.
    Returns ``(h, dh/dx)`` at the knots ``log_prob`` (equally spaced, ascending; float64);
    at :math:`x = 0` the limits 0 and ``q/2``. The first (lowest) knot differs from GCE:
    its slope is 0, so that below the grid the factor stays constant and the loss keeps
    growing slowly as :math:`p_y \to 0` (GCE's is flat there) instead of turning negative
    along an extrapolated slope, and its value is the second knot's minus half that knot's
    slope times the spacing, which makes the first interval's factor a parabola whose slope
    rises linearly from 0: the loss then falls strictly as :math:`p_y` rises, everywhere.

    Shape:
        - log_prob: ``(K,)``; both outputs ``(K,)``.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    u = q * log_prob.to(torch.float64)
    small = u.abs() < 1e-6
    safe = torch.where(small, torch.full_like(u, -1.0), u)
    factor = torch.where(small, 1 + u / 2, torch.expm1(safe) / safe)
    slope = q * torch.where(small, 0.5 + u / 3, (safe * safe.exp() - torch.expm1(safe)) / safe**2)
    if len(slope) > 1:
        slope[0] = 0.0
        factor[0] = factor[1] - slope[1] * (log_prob[1] - log_prob[0]) / 2
    return factor - 1, slope


def truncated_cross_entropy_factor(
    log_relative_ce: torch.Tensor, keep_below: float, drop_above: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Knot values and slopes that make a count-free grid loss over ``"log_relative_ce"``
    a soft small-loss selection.

    With :math:`z = \ell / s` a sample's cross-entropy over the call's median
    (`learnedloss.kinds.classification.log_relative_cross_entropy`, the grid axis is
    :math:`u = \log z`), the loss :math:`(1 + h(u)) \cdot \ell = s \cdot G(z)` gives the
    sample the cross-entropy gradient times :math:`G'(z) = w(z)`, here 1 for
    :math:`z \le a` (``keep_below``), falling linearly to 0 at :math:`z = b`
    (``drop_above``) and 0 beyond: samples far harder than the batch's typical one (likely
    mislabelled once the clean ones are learned) stop pulling the model. Returns
    ``(h, dh/du)`` at the knots (float64), the slope at the last knot 0, so that the grid
    continues as a constant: beyond it a sample keeps the small weight
    :math:`(a + b) / (2 z_{\max})` and the loss never turns negative.

    Shape:
        - log_relative_ce: ``(K,)``; both outputs ``(K,)``.
    """
    if not 0.0 < keep_below < drop_above:
        raise ValueError(f"need 0 < keep_below < drop_above, got {keep_below}, {drop_above}")
    a, b = keep_below, drop_above
    z = log_relative_ce.to(torch.float64).exp()
    weight = ((b - z) / (b - a)).clamp(0.0, 1.0)
    middle = a + (z - a) - (z - a) ** 2 / (2 * (b - a))
    g = torch.where(z <= a, z, torch.where(z < b, middle, torch.full_like(z, (a + b) / 2)))
    slopes = (weight * z - g) / z
    slopes[-1] = 0.0
    return g / z - 1, slopes
