"""The drop-in contract of LearnedLoss, following nn.MSELoss conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig


def per_element_reference(loss: LearnedLoss, input: torch.Tensor, target: torch.Tensor):
    """Evaluate the network on each (prediction, target) pair on its own, in float64."""
    pairs = zip(input.reshape(-1), target.reshape(-1), strict=True)
    values = [loss.network(torch.stack([p, t]).double()).item() for p, t in pairs]
    return torch.tensor(values, dtype=torch.float64).view(input.shape)


@pytest.mark.parametrize("shape", [(), (5,), (4, 3), (2, 3, 4, 5)])
def test_reductions_follow_mse_conventions(small_loss, shape):
    small_loss.double()
    input, target = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    reference = per_element_reference(small_loss, input, target)
    small_loss.reduction = "none"
    none = small_loss(input, target)
    assert none.shape == input.shape
    torch.testing.assert_close(none, reference)
    small_loss.reduction = "sum"
    torch.testing.assert_close(small_loss(input, target), reference.sum())
    small_loss.reduction = "mean"
    mean = small_loss(input, target)
    assert mean.shape == ()
    torch.testing.assert_close(mean, reference.mean())


def test_default_config_is_ml3_reference_architecture():
    loss = LearnedLoss()
    shapes = [tuple(p.shape) for p in loss.parameters()]
    # ML3's regression reference: 2 -> 50 -> 50 -> 1, no biases, ReLU, Softplus output.
    assert shapes == [(50, 2), (50, 50), (1, 50)]
    assert loss(torch.randn(10), torch.randn(10)) > 0  # softplus output is positive


def test_initialization_is_reproducible_from_the_global_seed():
    torch.manual_seed(3)
    a = LearnedLoss()
    torch.manual_seed(3)
    b = LearnedLoss()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    # torch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1 / 50**0.5
    assert a.network.layers[1].weight.abs().max() <= bound


def test_mismatched_shapes_raise_and_name_both_shapes(small_loss):
    with pytest.raises(ValueError, match=r"input \(8, 1\).*target \(8,\)"):
        small_loss(torch.randn(8, 1), torch.randn(8))
    with pytest.raises(ValueError, match=r"never broadcasts"):
        small_loss(torch.randn(8, 3), torch.randn(1, 3))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("which", ["input", "target"])
def test_non_float_tensors_are_rejected(small_loss, dtype, which):
    good = torch.randn(4)
    bad = torch.ones(4, dtype=dtype)
    args = (bad, good) if which == "input" else (good, bad)
    with pytest.raises(TypeError, match=rf"{which} must be a floating-point tensor.*{dtype}"):
        small_loss(*args)


def test_non_tensors_are_rejected(small_loss):
    with pytest.raises(TypeError, match=r"target must be a torch.Tensor, got list"):
        small_loss(torch.randn(2), [1.0, 2.0])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_raise_unless_disabled(small_loss, value):
    input = torch.randn(6)
    input[2] = value
    with pytest.raises(ValueError, match=r"input holds 1 non-finite value"):
        small_loss(input, torch.randn(6))
    with pytest.raises(ValueError, match=r"target holds 1 non-finite value"):
        small_loss(torch.randn(6), input)


def test_finite_check_can_be_disabled(small_loss):
    input = torch.randn(6)
    input[0] = float("nan")
    small_loss.check_finite = False
    assert torch.isnan(small_loss(input, torch.randn(6)))


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction must be one of"):
        LearnedLoss(reduction="avg")


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [(torch.float16, 2e-2), (torch.bfloat16, 5e-2), (torch.float32, 1e-5), (torch.float64, 1e-12)],
)
def test_all_float_dtypes_work_and_return_the_input_dtype(small_loss, dtype, tol):
    torch.manual_seed(1)
    input64, target64 = (
        torch.randn(64, 3, dtype=torch.float64),
        torch.randn(64, 3, dtype=torch.float64),
    )
    reference = small_loss.double()(input64, target64)
    small_loss.float()
    input = input64.to(dtype).requires_grad_(True)
    out = small_loss(input, target64.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), reference, rtol=tol, atol=tol)
    out.backward()
    assert input.grad.dtype == dtype and torch.isfinite(input.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_module_follows_to_dtype(small_loss, dtype):
    small_loss.to(dtype)
    assert all(p.dtype == dtype for p in small_loss.parameters())
    input = torch.randn(16, dtype=dtype)
    assert small_loss(input, torch.randn(16, dtype=dtype)).dtype == dtype


def test_float64_input_is_computed_in_float64_even_with_float32_weights(small_loss):
    input, target = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    reference = LearnedLoss(small_loss.config).double()
    reference.load_state_dict(small_loss.state_dict())
    torch.testing.assert_close(
        small_loss(input, target), reference.double()(input, target), rtol=1e-12, atol=1e-12
    )


def test_works_under_cpu_autocast(small_loss):
    input, target = torch.randn(128, 4), torch.randn(128, 4)
    eager = small_loss(input, target)
    input.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = small_loss(input, target)
    out.float().backward()
    assert out.dtype == torch.float32  # the input's dtype
    torch.testing.assert_close(out, eager, rtol=3e-2, atol=3e-2)
    assert torch.isfinite(input.grad).all()


def test_gradient_with_respect_to_input_is_correct(small_loss):
    small_loss.double()
    input = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randn(5, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: small_loss(x, target), (input,))
    assert torch.autograd.gradgradcheck(lambda x: small_loss(x, target), (input,))


def test_torch_compile_gives_eager_values(small_loss):
    torch._dynamo.reset()
    compiled = torch.compile(small_loss)
    for shape in [(32, 1), (7, 3)]:
        input, target = torch.randn(shape), torch.randn(shape)
        torch.testing.assert_close(compiled(input, target), small_loss(input, target))


def test_frozen_loss_gives_gradients_to_input_only():
    loss = LearnedLoss.from_pretrained("mse-fit")
    assert not loss.training
    assert not any(p.requires_grad for p in loss.parameters())
    prediction = torch.randn(10, 1, requires_grad=True)
    loss(prediction, torch.randn(10, 1)).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    loss.unfreeze()
    assert loss.training and all(p.requires_grad for p in loss.parameters())


def test_bundled_mse_fit_matches_mse_inside_its_range():
    """The card promises a fit to MSE on |ŷ|, |y| <= 10; check values and gradients."""
    loss = LearnedLoss.from_pretrained("mse-fit")
    torch.manual_seed(0)
    target = torch.rand(2000, 1) * 16 - 8
    prediction = (target + torch.randn(2000, 1)).clamp(-10, 10).requires_grad_(True)
    value = loss(prediction, target)
    reference = nn.MSELoss()(prediction, target)
    assert abs(value.item() / reference.item() - 1) < 0.02
    (grad,) = torch.autograd.grad(value, prediction)
    (ref_grad,) = torch.autograd.grad(reference, prediction)
    assert (grad - ref_grad).norm() / ref_grad.norm() < 0.1


def test_config_is_validated():
    with pytest.raises(ValueError, match=r"activation must be one of .* got 'sigmoid'"):
        LossConfig(activation="sigmoid")
    with pytest.raises(ValueError, match="hidden_sizes must be a sequence of positive ints"):
        LossConfig(hidden_sizes=(50, 0))
    with pytest.raises(
        ValueError,
        match=r"kind must be one of \['regression', 'classification', 'policy_gradient'\]",
    ):
        LossConfig(kind="ranking")
    with pytest.raises(TypeError, match="config must be a LossConfig"):
        LearnedLoss({"hidden_sizes": [4]})
