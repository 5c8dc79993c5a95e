"""Bad inputs to a classification loss: masked (-inf) and NaN logits behave as
`nn.CrossEntropyLoss` does; class indices out of range and mis-shaped targets are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.starts import cross_entropy_start_config
from tests.bad_inputs.conftest import refused

INF = float("inf")


@pytest.fixture
def cross_entropy() -> LearnedLoss:
    """A classification loss that equals cross-entropy before training."""
    torch.manual_seed(0)
    return LearnedLoss(cross_entropy_start_config(hidden=(8,)))


@pytest.mark.parametrize(
    ("targets", "finite"),
    [([0, 1], True), ([1, 2], False)],  # masked classes that are not, then are, the targets
    ids=["masked-others", "masked-target"],
)
def test_minus_inf_masking_gives_what_cross_entropy_gives(cross_entropy, targets, finite):
    logits = torch.tensor([[0.0, -INF, 1.0], [2.0, 0.0, -INF]])
    target = torch.tensor(targets)
    learned, standard = cross_entropy(logits, target), nn.CrossEntropyLoss()(logits, target)
    torch.testing.assert_close(learned, standard)
    assert bool(torch.isfinite(learned)) is finite


def test_nan_logits_give_nan_as_cross_entropy_does(cross_entropy):
    logits, target = torch.full((2, 3), float("nan")), torch.tensor([0, 1])
    assert torch.isnan(cross_entropy(logits, target))
    assert torch.isnan(nn.CrossEntropyLoss()(logits, target))


def test_class_indices_out_of_range_are_refused(cross_entropy):
    with refused(ValueError, "target holds class indices [5] outside [0, 2]", "3 classes"):
        cross_entropy(torch.zeros(2, 3), torch.tensor([0, 5]))


def test_probability_targets_of_another_shape_are_refused(cross_entropy):
    with refused(ValueError, "class-probability targets must have the input's shape (2, 3)"):
        cross_entropy(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
