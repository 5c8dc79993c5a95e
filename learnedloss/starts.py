"""Start configurations: loss networks that equal a standard loss exactly before
meta-training, so that meta-training learns a correction of a loss that already works.

Each function returns a `LossConfig` whose residual term is the standard loss's own term and
whose network's last layer starts at zero (`LossConfig.residual`).
"""

from __future__ import annotations

from learnedloss.config import LossConfig


def _residual_start_config(
    output_activation, hidden, inputs, residual_form: str = "add"
) -> LossConfig:
    return LossConfig(
        hidden_sizes=hidden,
        activation="relu",
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
    return LossConfig(
        kind="classification",
        hidden_sizes=hidden,
        activation=activation,
        output_activation="identity",
        bias=True,
        residual=True,
        inputs=inputs,
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
    return LossConfig(
        kind="policy_gradient",
        hidden_sizes=hidden,
        activation="relu",
        output_activation="identity",
        bias=True,
        residual=True,
        residual_form="baseline",
        inputs=inputs,
    )
