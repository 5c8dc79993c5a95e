"""A frozen learned loss adds no graph break to a user's training step under ``torch.compile``."""

from __future__ import annotations

import pytest
import torch

from learnedloss import LearnedLoss, LossConfig

# bundled loss -> (model output width, whether the targets are class indices)
GRID_LOSSES = {"sine-regression": (1, False), "noisy-labels": (3, True)}


def _batch(width: int, classes: bool) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small seeded model and an (input, target) batch for its output width."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, width))
    input = torch.randn(16, 4)
    target = torch.randint(0, width, (16,)) if classes else torch.randn(16, width)
    return model, input, target


def _explain_step(loss: LearnedLoss, model: torch.nn.Module, input, target):
    """``torch._dynamo.explain`` of the training step's forward: the model, then the loss."""

    def forward_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss(model(input), target)

    torch._dynamo.reset()
    try:
        return torch._dynamo.explain(forward_loss)(input, target)
    finally:
        torch._dynamo.reset()


def _reasons(explained) -> list[str]:
    return [str(reason.reason).splitlines()[0] for reason in explained.break_reasons]


@pytest.mark.parametrize("name", sorted(GRID_LOSSES))
def test_bundled_grid_loss_adds_no_graph_break(name):
    loss = LearnedLoss.from_pretrained(name)
    model, input, target = _batch(*GRID_LOSSES[name])
    explained = _explain_step(loss, model, input, target)
    assert explained.graph_break_count == 0, _reasons(explained)
    assert explained.graph_count == 1


def test_frozen_taylor_loss_adds_no_graph_break():
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(parameterization="taylor")).freeze()
    model, input, target = _batch(1, False)
    explained = _explain_step(loss, model, input, target)
    assert explained.graph_break_count == 0, _reasons(explained)


def test_compiled_step_matches_eager():
    loss = LearnedLoss.from_pretrained("sine-regression")
    model, input, target = _batch(1, False)

    def forward_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss(model(input), target)

    eager = forward_loss(input, target)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(forward_loss, backend="eager", fullgraph=True)(input, target)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager)
