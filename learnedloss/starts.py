"""Start configurations: loss networks that equal a standard loss exactly before
meta-training, so that meta-training learns a correction of a loss that already works.

Each function returns a `LossConfig` whose residual term is the standard loss's own term and
whose network's last layer starts at zero (`LossConfig.residual`).
"""

from __future__ import annotations

import torch

from learnedloss.config import LossConfig


def _residual_start_config(
    output_activation,
    hidden,
    inputs,
    residual_form: str = "add",
    kind: str = "regression",
    activation: str = "relu",
) -> LossConfig:
    """The config every start shares: a residual network whose last layer starts at zero."""
    return LossConfig(
        kind=kind,
        hidden_sizes=hidden,
        activation=activation,
        output_activation=output_activation,
        bias=True,
        residual=True,
        residual_form=residual_form,
        inputs=inputs,
    )


def mse_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("input", "target", "residual"),
    residual_form: str = "add",
) -> LossConfig:
    """A loss network that equals MSE exactly before meta-training.

    The network reads (prediction, target, residual), combines the residual with its last
    pre-activation (``residual_form``: added, or scaling it, see `LossConfig`) and squares
    the result; its last layer starts at zero, so it starts as (prediction - target)² and
    learns a correction.
    """
    return _residual_start_config("square", hidden, inputs, residual_form)


def huber_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("input", "target", "residual"),
    residual_form: str = "add",
) -> LossConfig:
    """A loss network that equals the Huber loss (δ = 1, ``F.huber_loss``) exactly before
    meta-training: as `mse_start_config`, with a ``huber`` output instead of a square."""
    return _residual_start_config("huber", hidden, inputs, residual_form)


def cross_entropy_start_config(
    hidden: tuple[int, ...] = (50, 50),
    inputs: tuple[str, ...] = ("log_prob", "prob", "target"),
    activation: str = "relu",
) -> LossConfig:
    """A classification loss network that equals ``F.cross_entropy`` before meta-training.

    Each class's term is ``-target * log_prob`` plus the network's output, and the network's
    last layer starts at zero, so the loss starts as cross-entropy (to float rounding) and
    learns a correction per class.
    """
    return _residual_start_config(
        "identity", hidden, inputs, kind="classification", activation=activation
    )


def reinforce_start_config(
    hidden: tuple[int, ...] = (16, 16),
    inputs: tuple[str, ...] = ("advantage", "reward_to_go", "time"),
) -> LossConfig:
    """A policy-gradient loss network that equals the REINFORCE surrogate exactly before
    meta-training: ``-log_prob * (advantage - h)`` with the network's output ``h`` starting at
    zero. Without ``log_prob`` among ``inputs`` the correction does not depend on the policy,
    so the loss's gradient is always a reweighted score function, ``-(advantage - h) *
    grad log_prob``."""
    return _residual_start_config("identity", hidden, inputs, "baseline", kind="policy_gradient")


def scale_free_mse_start_config(
    hidden: tuple[int, ...] = (32, 32),
    inputs: tuple[str, ...] = ("scaled_residual", "standardized_target"),
) -> LossConfig:
    r"""A regression loss network that equals MSE exactly before meta-training and reads only
    features free of the targets' scale and offset (`learnedloss.kinds.regression.
    scale_free_features`): the batch's residuals over their median magnitude and its
    standardized targets.

    Its value is :math:`((1 + h) \cdot r)^2 = s^2 \cdot ((1 + h) \cdot r / s)^2`, the squared
    error :math:`r^2` times a factor :math:`(1 + h)^2` that depends on scale-free features
    only (the ``"scale"`` residual form with a ``square`` output, the last layer starting at
    zero, so :math:`h = 0` and the loss is MSE). Rescaling targets and predictions by
    :math:`a` and shifting them by :math:`b` multiplies the loss by exactly :math:`a^2`, as it
    does MSE; a loss meta-trained on one scale is the same loss on every other one. The factor
    can fall towards 0 for large scaled residuals (outlier rejection) but never makes the loss
    negative, and a perfect prediction stays a minimum.
    """
    return _residual_start_config("square", hidden, inputs, "scale")


def count_free_cross_entropy_start_config(
    hidden: tuple[int, ...] = (20, 20),
    inputs: tuple[str, ...] = ("prob", "margin"),
    activation: str = "relu",
) -> LossConfig:
    r"""A classification loss network that equals ``F.cross_entropy`` before meta-training and
    does not change with the number of classes.

    Each class's value is :math:`(1 + h_c) \cdot (-y_c \log p_c)` (the ``"scale"`` residual
    form): classes whose target probability is 0 contribute exactly 0, so with class-index
    targets a sample's loss is :math:`(1 + h(p_y, m_y)) \cdot (-\log p_y)`, a function of the
    labelled class's probability and margin over its strongest rival
    (`learnedloss.kinds.classification.class_margin`) alone, whatever C is. The earlier
    `cross_entropy_start_config` adds a learned term for every class, a sum that grows with C.
    """
    return _residual_start_config(
        "identity", hidden, inputs, "scale", kind="classification", activation=activation
    )


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
