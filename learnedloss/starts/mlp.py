"""Exact starts for the MLP parameterization (ML3's loss network).

Each function returns a residual `LossConfig` whose residual term is a standard loss's own term
and whose network's last layer starts at zero (`LossConfig.residual`): the loss equals MSE,
Huber, cross-entropy or the REINFORCE surrogate exactly before meta-training, and
meta-training learns a correction of a loss that already works.
"""

from __future__ import annotations

from learnedloss.config import LossConfig


def _residual_start_config(
    output_activation,
    hidden,
    inputs,
    residual_form: str = "add",
    kind: str = "regression",
    activation: str = "relu",
) -> LossConfig:
    """The config every MLP start shares: a residual network whose last layer starts at zero."""
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
