"""The drop-in contract of LearnedLoss, following nn.MSELoss conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.loss import finite_check_disabled


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
    loss = LearnedLoss(LossConfig())
    shapes = [tuple(p.shape) for p in loss.parameters()]
    # ML3's regression reference: 2 -> 50 -> 50 -> 1, no biases, ReLU, Softplus output.
    assert shapes == [(50, 2), (50, 50), (1, 50)]
    assert loss(torch.randn(10), torch.randn(10)) > 0  # softplus output is positive


def test_initialization_is_reproducible_from_the_global_seed():
    torch.manual_seed(3)
    a = LearnedLoss(LossConfig())
    torch.manual_seed(3)
    b = LearnedLoss(LossConfig())
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
def test_strict_check_is_opt_in_and_raises_on_non_finite_values(small_loss, value):
    input = torch.randn(6)
    input[2] = value
    assert not small_loss.check_finite  # the default: no check, no host sync
    assert not torch.isfinite(small_loss(input, torch.randn(6)))
    small_loss.check_finite = True
    with pytest.raises(ValueError, match=r"input holds 1 non-finite value.*check_finite=True"):
        small_loss(input, torch.randn(6))
    with pytest.raises(ValueError, match=r"target holds 1 non-finite value"):
        small_loss(torch.randn(6), input)
    strict = LearnedLoss.from_pretrained("mse-fit", check_finite=True)
    with pytest.raises(ValueError, match="non-finite"):
        strict(input, torch.randn(6))
    with finite_check_disabled(strict):  # still turns an opt-in check off for a block
        assert not torch.isfinite(strict(input, torch.randn(6)))
    assert strict.check_finite


@pytest.mark.parametrize("name", ["mse-fit", "sine-regression", "robust-regression"])
def test_non_finite_and_extreme_values_behave_as_in_mse(name):
    """NaN in gives NaN out, an infinite or overflowing error an infinite loss with an infinite
    gradient, as nn.MSELoss gives: no exception, and no NaN where MSE has none."""
    loss = LearnedLoss.from_pretrained(name)
    cases = [
        (float("nan"), 0.0),
        (float("inf"), 0.0),
        (float("-inf"), 1.0),
        (float("inf"), float("inf")),
        (3e38, -3e38),
        (-3e38, 3e38),
        (3e38, 0.0),
        (3e38, 3e38),
        (2e18, 2e18),
    ]
    for prediction, target in cases:
        x = torch.tensor([prediction, 0.5, -1.0], requires_grad=True)
        y = torch.tensor([target, 0.0, 1.0])
        value = loss(x, y)
        (grad,) = torch.autograd.grad(value, x)
        x_mse = x.detach().clone().requires_grad_(True)
        mse = nn.functional.mse_loss(x_mse, y)
        (grad_mse,) = torch.autograd.grad(mse, x_mse)
        case = f"{name}: prediction {prediction}, target {target}"
        assert value.isnan() == mse.isnan() and value.isinf() == mse.isinf(), case
        if not mse.isfinite():
            assert value == mse or (value.isnan() and mse.isnan()), case
        assert torch.equal(grad[:1].isnan(), grad_mse[:1].isnan()), case
        if not grad_mse[0].isnan():  # the same direction; inf where MSE's is inf
            assert grad[0].sign() == grad_mse[0].sign(), case
            assert grad[0].isinf() or not grad_mse[0].isinf(), case
        assert torch.isfinite(grad[1:]).all(), case


def test_finite_values_are_unchanged_by_the_non_finite_handling(small_loss):
    """Bit for bit: the handling of non-finite elements does not touch finite ones."""
    torch.manual_seed(0)
    input = torch.randn(64, 3, requires_grad=True)
    target = torch.randn(64, 3)
    features = torch.stack([input, target], dim=-1)
    direct = small_loss.network(features).mean()
    (direct_grad,) = torch.autograd.grad(direct, input)
    value = small_loss(input, target)
    (grad,) = torch.autograd.grad(value, input)
    assert torch.equal(value, direct) and torch.equal(grad, direct_grad)
    # one non-finite element leaves the others' gradients as they were
    poisoned = input.detach().clone()
    poisoned[0, 0] = float("nan")
    poisoned.requires_grad_(True)
    small_loss.reduction = "none"
    values = small_loss(poisoned, target)
    assert values[0, 0].isnan() and torch.isfinite(values.flatten()[1:]).all()
    (grad,) = torch.autograd.grad(values.flatten()[1:].sum(), poisoned)
    assert torch.isfinite(grad.flatten()[1:]).all()  # (at the NaN itself NaN, as in MSE)


def test_unknown_reduction_is_rejected_when_built_and_when_set(small_loss):
    with pytest.raises(ValueError, match="reduction must be one of"):
        LearnedLoss(LossConfig(), reduction="avg")
    with pytest.raises(ValueError, match=r"reduction must be one of .* got 'bogus'"):
        small_loss.reduction = "bogus"
    assert small_loss.reduction == "mean"
    loaded = LearnedLoss.from_pretrained("mse-fit")
    with pytest.raises(ValueError, match="reduction must be one of"):
        loaded.reduction = None
    loaded.reduction = "sum"
    assert loaded(torch.ones(3), torch.zeros(3)) == 3 * loaded.network(torch.tensor([1.0, 0.0]))


def test_a_loss_needs_a_config_or_a_pretrained_name():
    with pytest.raises(TypeError, match=r"needs a config .* or pretrained"):
        LearnedLoss()
    with pytest.raises(TypeError, match="criterion__pretrained"):
        LearnedLoss(reduction="sum")  # what skorch builds from criterion__reduction alone
    with pytest.raises(TypeError, match="not both"):
        LearnedLoss(LossConfig(), pretrained="mse-fit")
    by_name = LearnedLoss(pretrained="mse-fit", reduction="sum")
    loaded = LearnedLoss.from_pretrained("mse-fit", reduction="sum")
    assert by_name.frozen and not list(by_name.parameters())
    assert by_name.config == loaded.config and by_name.metadata == loaded.metadata
    for name, tensor in loaded.weights().items():
        assert torch.equal(by_name.weights()[name], tensor)
    x, y = torch.randn(5, 2), torch.randn(5, 2)
    assert torch.equal(by_name(x, y), loaded(x, y))


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
    assert loss.frozen and not list(loss.parameters())
    assert sorted(loss.state_dict()) == sorted(loss.weights())  # its own state: its weights
    assert not any(p.requires_grad for p in loss.network.parameters())
    prediction = torch.randn(10, 1, requires_grad=True)
    loss(prediction, torch.randn(10, 1)).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.network.parameters())
    loss.unfreeze()
    assert not loss.frozen and loss.training
    assert all(p.requires_grad for p in loss.parameters())
    assert sorted(loss.state_dict()) == sorted(loss.weights())
    loss.freeze()
    assert loss.frozen and not list(loss.parameters())


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
