"""Bad inputs to a regression loss's forward: non-finite and huge values behave as
`nn.MSELoss` does; bad reductions, a missing config and mismatched shapes are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig, LossInputError
from tests.bad_inputs.conftest import make_loss, refused

HUGE = 3e38  # squares overflow float32


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), HUGE, -HUGE])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_non_finite_and_huge_inputs_give_what_mse_gives(value, reduction):
    loss = make_loss()
    loss.reduction = reduction
    x, y = torch.tensor([0.5, value, -1.0]), torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(loss(x, y), nn.MSELoss(reduction=reduction)(x, y), equal_nan=True)
    torch.testing.assert_close(loss(y, x), nn.MSELoss(reduction=reduction)(y, x), equal_nan=True)


def test_a_bogus_reduction_is_refused():
    loss = make_loss()
    with refused(ValueError, "reduction must be one of ['mean', 'sum', 'none'], got 'bogus'"):
        loss.reduction = "bogus"
        loss(torch.zeros(3), torch.zeros(3))
    with refused(ValueError, "reduction must be one of", "got 'bogus'"):
        LearnedLoss(LossConfig(hidden_sizes=(8,)), reduction="bogus")


def test_a_loss_without_config_says_how_to_build_one():
    with refused(TypeError, "LearnedLoss needs a config", "LearnedLoss(LossConfig())"):
        LearnedLoss()


@pytest.mark.parametrize(
    ("input_shape", "target_shape"), [((3,), (4,)), ((3, 1), (3,)), ((2, 3), (3, 2))]
)
def test_mismatched_shapes_are_refused_not_broadcast(input_shape, target_shape):
    with refused(
        LossInputError,
        "input and target must have the same shape",
        f"got input {input_shape} and target {target_shape}",
        "never broadcasts",
    ):
        make_loss()(torch.zeros(input_shape), torch.zeros(target_shape))


def test_refused_calls_raise_the_librarys_error_which_is_both_builtin_types():
    for call, message in [
        (lambda: make_loss()(torch.zeros(3), torch.zeros(3, dtype=torch.long)), "floating-point"),
        (lambda: make_loss()([0.0], torch.zeros(1)), "must be a torch.Tensor"),
        (lambda: make_loss()(torch.zeros(2), torch.zeros(3)), "same shape"),
    ]:
        with refused(LossInputError, message) as caught:
            call()
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, TypeError)
