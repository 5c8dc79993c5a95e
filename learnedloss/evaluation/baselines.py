"""Standard losses that learned losses are measured against.

Every baseline is a plain function ``(prediction, target) -> scalar`` (or a torch loss
module), so `learnedloss.evaluate` trains models with it exactly as with a learned loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossLike = nn.Module | LossFunction


def scaled_mse(scale: float) -> LossFunction:
    """``scale * MSE``: a control whose gap to MSE measures the noise of lr tuning."""
    return lambda prediction, target: scale * F.mse_loss(prediction, target)


def huber(delta: float, scale: float = 1.0) -> LossFunction:
    """``scale`` times the Huber loss with threshold ``delta`` (Huber, 1964); a rescaled
    copy is the robust baselines' control, as c·MSE is MSE's."""
    return lambda prediction, target: scale * F.huber_loss(prediction, target, delta=delta)


def standard_losses(robust: bool = False) -> dict[str, LossLike]:
    """The baselines: MSE, the c·MSE controls and, with ``robust``, L1, Huber δ ∈
    {0.25, 0.5, 1, 2} and the controls of Huber δ = 0.5 scaled by 0.7 and 1.5 (the same
    loss at other learning rates: how far lr tuning alone moves a tuned robust loss)."""
    losses: dict[str, LossLike] = {
        "MSE": nn.MSELoss(),
        "1.1 x MSE": scaled_mse(1.1),
        "1.5 x MSE": scaled_mse(1.5),
    }
    if robust:
        losses["L1"] = nn.L1Loss()
        for delta in (0.25, 0.5, 1.0, 2.0):
            losses[f"Huber d={delta:g}"] = huber(delta)
        for scale in (0.7, 1.5):
            losses[f"{scale:g} x Huber d=0.5"] = huber(0.5, scale)
    return losses


def scaled_cross_entropy(scale: float) -> LossFunction:
    """``scale * F.cross_entropy``: the classification control (cross-entropy at lr·scale)."""
    return lambda logits, target: scale * F.cross_entropy(logits, target)


def generalized_cross_entropy(q: float = 0.7) -> LossFunction:
    """The generalized cross-entropy of Zhang & Sabuncu (NeurIPS 2018), a noise-robust loss.

    For a sample of class :math:`y` with predicted probabilities :math:`p`,
    :math:`L_q = (1 - p_y^q) / q`: cross-entropy as :math:`q \\to 0`, the mean absolute
    error (up to a factor) at :math:`q = 1`. The paper uses :math:`q = 0.7`. Takes logits
    ``(N, C)`` and class indices ``(N,)``; returns the mean over samples.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return ((1.0 - torch.exp(q * log_p)) / q).mean()

    return loss


def classification_losses(label_smoothing: float = 0.1, q: float = 0.7) -> dict[str, LossLike]:
    """The classification baselines: cross-entropy, the 1.5·CE control, label-smoothed
    cross-entropy and the generalized cross-entropy (noise-robust)."""
    return {
        "CE": nn.CrossEntropyLoss(),
        "1.5 x CE": scaled_cross_entropy(1.5),
        f"CE, smoothing {label_smoothing:g}": nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        f"GCE q={q:g}": generalized_cross_entropy(q),
    }


def reinforce(log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """The REINFORCE surrogate ``-(log_prob * advantage).mean()`` (Williams, 1992).

    Its gradient is the score-function estimate of the policy gradient. With advantages
    that are returns minus a baseline (what `PointMassGoals` passes as
    the target), this is REINFORCE with a baseline."""
    return -(log_prob * advantage).mean()


def reinforce_from_returns(
    log_prob: torch.Tensor, advantage: torch.Tensor, *, reward_to_go: torch.Tensor
) -> torch.Tensor:
    """REINFORCE without a baseline: ``-(log_prob * reward_to_go).mean()``; it ignores the
    advantage and reads the side input ``reward_to_go``."""
    return -(log_prob * reward_to_go).mean()


reinforce_from_returns.side_inputs = ("reward_to_go",)


def scaled_reinforce(scale: float) -> LossFunction:
    """``scale * reinforce``: the policy-gradient control (REINFORCE at lr·scale)."""
    return lambda log_prob, advantage: scale * reinforce(log_prob, advantage)


def policy_gradient_losses() -> dict[str, LossLike]:
    """The policy-gradient baselines: REINFORCE with a baseline, its 1.5× control, and
    REINFORCE without one."""
    return {
        "REINFORCE + baseline": reinforce,
        "1.5 x REINFORCE + baseline": scaled_reinforce(1.5),
        "REINFORCE": reinforce_from_returns,
    }
