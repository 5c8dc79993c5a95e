"""The shape of a regression loss over the residual, and a callback that records it during
online training (for the pictures in docs/online.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learnedloss.functional import unreduced
from learnedloss.loss import finite_check_disabled


def loss_shape(loss: nn.Module, residuals: torch.Tensor, target: float = 0.0) -> torch.Tensor:
    """The per-element loss at ``prediction = target + residual`` for each residual.

    Args:
        loss: a regression loss: a `LearnedLoss`, or a ``torch.nn`` loss with a
            ``reduction`` (`learnedloss.functional.unreduced`); its reduction is left alone.
        residuals: 1-D tensor of prediction - target values.
        target: the target the residuals are taken around.

    Returns:
        A 1-D float tensor, the loss at each residual (no graph).
    """
    if residuals.dim() != 1:
        raise ValueError(f"residuals must be 1-D, got shape {tuple(residuals.shape)}")
    parameter = next(iter(loss.parameters()), None)
    device = parameter.device if parameter is not None else residuals.device
    residuals = residuals.to(device)
    targets = torch.full_like(residuals, float(target))
    with torch.no_grad(), finite_check_disabled(loss):
        values = unreduced(loss, (targets + residuals)[:, None], targets[:, None])
    return values.reshape(-1).detach().float().cpu()


class ShapeRecorder:
    """A callback for `OnlineLossTrainer` that records ``trainer.loss``'s shape over
    ``residuals`` after the given steps; `start` records the shape before training as
    step 0.

    Attributes:
        shapes: ``{step: tensor of loss values}``.

    Examples:
        >>> import torch
        >>> recorder = ShapeRecorder(torch.linspace(-3, 3, 61), at=(0, 100, 1000))
        >>> # trainer = OnlineLossTrainer(..., callbacks=[recorder])
        >>> # recorder.start(trainer.loss); train; then read recorder.shapes
    """

    def __init__(self, residuals: torch.Tensor, at: Sequence[int], target: float = 0.0) -> None:
        self.residuals = residuals
        self.at = set(int(s) for s in at)
        self.target = target
        self.shapes: dict[int, torch.Tensor] = {}

    def __call__(self, trainer, record: dict) -> None:
        if record["step"] in self.at:
            self.shapes[record["step"]] = loss_shape(trainer.loss, self.residuals, self.target)

    def start(self, loss: nn.Module) -> None:
        """Record the shape of ``loss`` as step 0 (call before training)."""
        self.shapes[0] = loss_shape(loss, self.residuals, self.target)
