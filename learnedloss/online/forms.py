r"""How the online loss enters the model's update: the ``form`` of `OnlineLossTrainer`.

- ``"loss"``: the learned loss as it is (its scale is learned too).
- ``"shape"``: `ScaleNormalizedLoss`, the learned loss rescaled on every batch so that its
  gradient with respect to the predictions has the norm of the standard loss's (MSE or
  cross-entropy) on the same batch. Its overall scale is then fixed, and the meta-gradient
  moves only its shape.
- ``"sample-weights"``: `SampleWeightedLoss`, the standard loss with a learned weight per
  sample as a function of that sample's loss, after Meta-Weight-Net (Shu, Xie, Yi, Zhao,
  Zhou, Xu and Meng, "Meta-Weight-Net: Learning an Explicit Mapping For Sample Weighting",
  NeurIPS 2019); the weights are normalized to mean 1 over the batch, so here too only the
  shape is learned.

Both wrappers are ``(prediction, target) -> scalar`` modules whose parameters are the ones the
trainer meta-learns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FORMS = ("loss", "shape", "sample-weights")
TINY = 1e-12


def standard_loss(
    kind: str, prediction: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """MSE (regression) or cross-entropy (classification; integer labels of any dtype or
    class probabilities), per sample with ``reduction="none"``: a regression sample's squared
    errors are averaged over its output dimensions."""
    if kind == "regression":
        squared = F.mse_loss(prediction, target, reduction="none")
        per_sample = squared.reshape(squared.shape[0], -1).mean(dim=1)
    else:
        labels = target if target.is_floating_point() else target.long()
        per_sample = F.cross_entropy(prediction, labels, reduction="none")
    return per_sample if reduction == "none" else per_sample.mean()


class ScaleNormalizedLoss(nn.Module):
    r"""A learned loss rescaled per batch to the standard loss's gradient norm.

    .. math::
        \tilde\ell_\phi(\hat y, y) = c_\phi\, \ell_\phi(\hat y, y), \qquad
        c_\phi = \frac{\lVert \nabla_{\hat y}\, \ell_{\mathrm{std}}(\hat y, y) \rVert}
                      {\lVert \nabla_{\hat y}\, \ell_\phi(\hat y, y) \rVert}

    The factor :math:`c_\phi` is computed at the predictions cut from the model's graph, so for
    the model it is a per-batch constant; it stays a function of the loss's parameters
    :math:`\phi`, so the meta-gradient sees that multiplying :math:`\ell_\phi` by a constant
    changes nothing (it is orthogonal to the scale direction). Under SGD and Adam alike the
    model's update is then set by the loss's shape alone.

    Args:
        loss: the learned loss (``(prediction, target) -> scalar``, mean reduction).
        kind: ``"regression"`` (MSE is the standard) or ``"classification"`` (cross-entropy).

    Shape:
        - prediction: ``(N, *)`` outputs, or ``(N, C)`` logits.
        - target: as ``loss`` takes it.
        - output: scalar.
    """

    def __init__(self, loss: nn.Module, kind: str) -> None:
        super().__init__()
        self.loss = loss
        self.kind = kind

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.factor(prediction, target) * self.loss(prediction, target)

    def factor(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:math:`c_\\phi` on this batch: constant for the model, differentiable in the loss's
        parameters while gradients are enabled."""
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            free = prediction.detach().requires_grad_(True)
            (learned,) = torch.autograd.grad(self.loss(free, target), free, create_graph=keep_graph)
            (standard,) = torch.autograd.grad(standard_loss(self.kind, free, target), free)
        precision = torch.promote_types(learned.dtype, torch.float32)
        scale = standard.to(precision).norm() / learned.to(precision).norm().clamp_min(TINY)
        return scale if keep_graph else scale.detach()


class SampleWeightedLoss(nn.Module):
    """The standard loss with a learned weight per sample (Meta-Weight-Net's form).

    A small network maps each sample's standard loss (cut from the graph) to a weight in
    (0, 1); the weights are divided by their batch mean, so they average 1 and the loss keeps
    the standard loss's scale. The last layer starts at zero, so before the first update every
    weight is 1 and the loss is exactly the standard loss.

    Args:
        kind: ``"regression"`` (MSE per sample) or ``"classification"`` (cross-entropy).
        hidden: the weighting network's hidden width (Meta-Weight-Net used 100).

    Shape:
        - prediction: ``(N, *)`` outputs, or ``(N, C)`` logits.
        - target: ``(N, *)`` regression targets, or ``(N,)`` class indices.
        - output: scalar.
    """

    def __init__(self, kind: str, hidden: int = 100) -> None:
        super().__init__()
        self.kind = kind
        self.weighting = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.weighting[2].weight)
        nn.init.zeros_(self.weighting[2].bias)

    def weights(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Each sample's weight (mean 1 over the batch) from its loss."""
        inputs = per_sample.detach()[:, None].to(self.weighting[0].weight.dtype)
        raw = torch.sigmoid(self.weighting(inputs))[:, 0]
        return raw / raw.mean().clamp_min(TINY)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_sample = standard_loss(self.kind, prediction, target, reduction="none")
        return (self.weights(per_sample).to(per_sample.dtype) * per_sample).mean()

    def describe(self) -> str:
        """The architecture, for the trainer's settings."""
        return f"SampleWeightedLoss(kind={self.kind!r}, hidden={self.weighting[0].out_features})"
