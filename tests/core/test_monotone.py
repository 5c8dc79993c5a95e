"""The monotone parameterization: exact starts, monotone by construction, adaptive inputs."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learnedloss import LearnedLoss, LossConfig
from learnedloss.errors import ConfigError
from learnedloss.inspection import check
from learnedloss.kinds.regression import contamination
from learnedloss.starts import monotone_start_config


def _randomized(config: LossConfig, seed: int, spread: float = 2.0) -> LearnedLoss:
    loss = LearnedLoss(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        theta = loss.network.log_influence
        theta.copy_(torch.randn(theta.shape, generator=generator) * spread)
    return loss


@pytest.mark.parametrize("adapt_to", [None, "contamination"])
def test_regression_start_is_mse_in_value_and_gradient(adapt_to):
    loss = LearnedLoss(monotone_start_config("mse", adapt_to=adapt_to))
    x = (torch.randn(300, dtype=torch.float64) * 3).requires_grad_(True)
    y = torch.randn(300, dtype=torch.float64)
    with torch.no_grad():
        x[:20] += 200.0  # far beyond the knots: the tail continues MSE
    value = loss(x, y)
    (grad,) = torch.autograd.grad(value, x)
    x_ref = x.detach().clone().requires_grad_(True)
    reference = F.mse_loss(x_ref, y)
    (grad_ref,) = torch.autograd.grad(reference, x_ref)
    assert torch.allclose(value.double(), reference, rtol=1e-5)
    assert torch.allclose(grad.double(), grad_ref, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("adapt_to", [None, "contamination"])
def test_classification_start_is_cross_entropy(adapt_to):
    loss = LearnedLoss(monotone_start_config("cross_entropy", adapt_to=adapt_to))
    logits = torch.randn(64, 7) * 3
    labels = torch.randint(0, 7, (64,))
    logits[0, (labels[0] + 1) % 7] = -math.inf  # a masked class
    labels[1] = -100  # an ignored sample
    for reduction in ("mean", "sum", "none"):
        loss.reduction = reduction
        expected = F.cross_entropy(logits, labels, reduction=reduction)
        assert torch.allclose(loss(logits, labels), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["mse", "cross_entropy"])
@pytest.mark.parametrize("seed", range(4))
def test_any_parameters_give_a_monotone_loss(kind, seed):
    """Whatever the weights, the whole-range check finds no dip (by construction)."""
    loss = _randomized(monotone_start_config(kind, adapt_to="contamination"), seed)
    ranges = (
        {"logit": (-8.0, 8.0)}
        if kind == "cross_entropy"
        else {"target": (-3.0, 3.0), "residual": (-8.0, 8.0)}
    )
    report = check(loss, ranges)
    assert report.criteria["monotone"].passed, report.criteria["monotone"].numbers
    assert report.criteria["finite"].passed


def test_the_whole_range_check_catches_a_dip():
    """The bundled release-0.1 ``robust-regression`` rises and falls: the check fails it."""
    report = check(LearnedLoss.from_pretrained("robust-regression"))
    if report.criteria["monotone"].passed:  # the new monotone release passes instead
        assert LearnedLoss.from_pretrained("robust-regression").config.parameterization == (
            "monotone"
        )
    else:
        assert report.criteria["monotone"].numbers["worst_relative_drop"] > 1e-3


def test_shape_is_the_integral_of_the_influence():
    loss = _randomized(monotone_start_config("mse", knots=9, max_magnitude=8.0), seed=3)
    network = loss.network.double()
    z = torch.linspace(0.0, 12.0, 241, dtype=torch.float64)
    shape = network.shape_at(z)
    fine = torch.linspace(0.0, 12.0, 120_001, dtype=torch.float64)
    psi = network.influence()[0]
    knots = torch.linspace(0.0, 8.0, 9, dtype=torch.float64)
    inside = torch.from_numpy(np.interp(fine.numpy(), knots.numpy(), psi.detach().numpy()))
    psi = psi.detach()
    slope = max(float(psi[-1] - psi[-2]), 0.0)  # the tail continues a rising last slope
    psi_fine = torch.where(fine > 8.0, psi[-1].detach() + slope * (fine - 8.0), inside)
    integral = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(psi_fine, fine)]
    )
    expected = integral[::500]
    assert torch.allclose(shape.detach(), expected, rtol=1e-6, atol=1e-6)
    assert bool((network.influence() >= 0).all())


def test_regression_loss_is_equivariant_to_units():
    loss = _randomized(monotone_start_config("mse", adapt_to="contamination"), seed=1)
    x, y = torch.randn(128, dtype=torch.float64), torch.randn(128, dtype=torch.float64)
    x[:10] += 30
    base = loss(x, y)
    for a, b in ((0.01, 5.0), (100.0, -3.0)):
        assert torch.allclose(loss(a * x + b, a * y + b), a**2 * base, rtol=1e-4)


def test_classification_loss_is_free_of_the_class_count():
    loss = _randomized(monotone_start_config("cross_entropy", adapt_to="contamination"), seed=2)
    p = torch.rand(32, dtype=torch.float64) * 0.98 + 0.01
    values = []
    for classes in (2, 10, 100):
        # the labelled class has probability p, the others share the rest equally
        rest = torch.log((1 - p) / (classes - 1))
        logits = rest[:, None].expand(32, classes).clone()
        logits[:, 0] = torch.log(p)
        values.append(loss(logits, torch.zeros(32, dtype=torch.long)))
    assert torch.allclose(values[0], values[1], rtol=1e-6)
    assert torch.allclose(values[0], values[2], rtol=1e-6)


def test_contamination_reads_the_fraction_of_far_off_errors():
    errors = torch.cat([torch.ones(80), torch.full((20,), 50.0), torch.tensor([math.nan])])
    assert float(contamination(errors, torch.tensor(1.0))) == pytest.approx(0.2)
    assert float(contamination(errors * 7, torch.tensor(7.0))) == pytest.approx(0.2)
    assert float(contamination(torch.full((3,), math.nan), torch.tensor(1.0))) == 0.0


def test_contamination_changes_the_shape_it_picks():
    loss = LearnedLoss(monotone_start_config("mse", adapt_to="contamination", adapt_knots=5))
    with torch.no_grad():  # the clean curve stays MSE, contaminated ones (>= 25%) redescend
        loss.network.log_influence[1:, 4:] = -6.0
    clean = torch.rand(100, dtype=torch.float64) * 2 - 1  # none beyond 3 median errors
    dirty = clean.clone()
    dirty[:40] += 100.0
    zeros = torch.zeros(100, dtype=torch.float64)
    assert torch.allclose(loss(clean, zeros), F.mse_loss(clean, zeros), rtol=1e-5)
    assert loss(dirty, zeros) < 0.05 * F.mse_loss(dirty, zeros)


def test_save_and_load_round_trip(tmp_path):
    loss = _randomized(monotone_start_config("mse", adapt_to="contamination"), seed=5)
    loss.save_pretrained(tmp_path / "m")
    again = LearnedLoss.from_pretrained(tmp_path / "m")
    x, y = torch.randn(50), torch.randn(50)
    assert again.config == loss.config
    assert torch.equal(again.network.log_influence, loss.network.log_influence)
    assert torch.allclose(again(x, y), loss(x, y), rtol=1e-6)  # frozen: the fast path


def test_vmap_and_grad_over_a_batch_of_tasks():
    loss = _randomized(monotone_start_config("mse"), seed=0)
    x, y = torch.randn(4, 32), torch.randn(4, 32)
    per_task = torch.func.vmap(loss)(x, y)
    one_by_one = torch.stack([loss(a, b) for a, b in zip(x, y, strict=True)])
    assert torch.allclose(per_task, one_by_one, rtol=1e-5)
    grads = torch.func.vmap(torch.func.grad(loss))(x, y)
    assert torch.isfinite(grads).all()


@pytest.mark.parametrize(
    "changes",
    [
        {"inputs": ("residual",)},
        {"residual_form": "add"},
        {"output_activation": "huber"},
        {"grid_range": ((-1.0, 16.0),)},
    ],
)
def test_invalid_monotone_configs_are_refused(changes):
    base = monotone_start_config("mse").to_dict()
    base.update(changes)
    base["inputs"] = tuple(base["inputs"])
    base["grid_knots"] = tuple(base["grid_knots"])
    base["grid_range"] = tuple(tuple(p) for p in base["grid_range"])
    if "grid_range" in changes:
        base["grid_range"] = changes["grid_range"]
    with pytest.raises(ConfigError):
        LossConfig(**base)


# ------------------------------------------------------------------ the fast path


def _frozen_adaptive(seed: int = 0) -> LearnedLoss:
    config = monotone_start_config(
        "mse", knots=9, max_magnitude=8.0, adapt_to="contamination", adapt_knots=3
    )
    return _randomized(config, seed, spread=1.0).freeze()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("path", ["fused kernel", "eager"])
def test_the_fast_path_agrees_with_the_general_path(reduction, dtype, path):
    from learnedloss import kernels
    from learnedloss.networks import fast as plans

    loss = _frozen_adaptive()
    loss.reduction = reduction
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 75, generator=generator, dtype=dtype) * 3
    x[:, :12] += 40.0  # 16% far off: between two curves of the contamination axis
    x.requires_grad_(True)
    y = torch.randn(4, 75, generator=generator, dtype=dtype)
    eager = path == "eager"
    with kernels.disabled() if eager else contextlib.nullcontext():
        value = loss(x, y)
        (grad,) = torch.autograd.grad(value.sum(), x)
    node = "FastGridBackward" if eager else "MonotoneLoss>"
    assert value.grad_fn.name().endswith(node)
    with plans.disabled():
        slow = loss(x, y)
        (slow_grad,) = torch.autograd.grad(slow.sum(), x)
    assert value.shape == slow.shape and value.dtype == slow.dtype
    assert torch.allclose(value, slow, rtol=1e-5)
    assert torch.allclose(grad, slow_grad, rtol=1e-5, atol=1e-7 * float(slow_grad.abs().max()))


def test_the_fast_path_leaves_special_calls_to_the_general_path():
    loss = _frozen_adaptive()
    x, y = torch.randn(32, requires_grad=True), torch.randn(32)
    with torch.no_grad():
        nan_x = x.detach().clone()
        nan_x[3] = math.nan
    assert torch.isnan(loss(nan_x, y))  # NaN in, NaN out, as nn.MSELoss
    value = loss(x, y)  # a second derivative goes through the general path
    (grad,) = torch.autograd.grad(value, x, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), x)
    assert torch.isfinite(second).all()
    per_task = torch.func.vmap(loss)(x.detach().view(4, 8), y.view(4, 8))
    assert per_task.shape == (4,)
