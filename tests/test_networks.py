"""Loss-network parameterizations: grid (spline) and Taylor start exactly, meta-train, vmap,
save and load, and the config validates them strictly."""

from __future__ import annotations

import contextlib
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnedloss import ConfigError, LearnedLoss, LossConfig, MetaTrainer, kernels
from learnedloss.config import config_from_json_dict, config_to_json_dict
from learnedloss.families.sine import SineTasks
from learnedloss.networks import (
    GridNetwork,
    PointwiseMLP,
    TaylorNetwork,
    build_network,
    taylor_exponents,
)
from learnedloss.networks import fast as fast_module
from learnedloss.starts import grid_start_config, taylor_start_config

REGRESSION_STARTS = [
    ("mse", nn.MSELoss),
    ("huber", nn.HuberLoss),
]
CONFIGS = {
    "grid 1-D": lambda start: grid_start_config(start),
    "grid 2-D": lambda start: grid_start_config(start, inputs=("residual", "target")),
    "taylor": lambda start: taylor_start_config(start),
}


def perturbed(loss: LearnedLoss, scale: float = 0.3, seed: int = 0) -> LearnedLoss:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loss.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return loss


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("start,standard", REGRESSION_STARTS)
def test_regression_starts_are_exact(name, start, standard):
    loss = LearnedLoss(CONFIGS[name](start))
    x = (torch.randn(5, 7) * 6).requires_grad_(True)  # beyond the grid's range too
    y = torch.randn(5, 7) * 3
    for reduction in ("mean", "sum", "none"):
        loss.reduction = reduction
        torch.testing.assert_close(loss(x, y), standard(reduction=reduction)(x, y))
    loss.reduction = "mean"
    (g,) = torch.autograd.grad(loss(x, y), x)
    (g_ref,) = torch.autograd.grad(standard()(x, y), x)
    torch.testing.assert_close(g, g_ref)
    loss.freeze()  # the frozen fast path starts exactly too
    torch.testing.assert_close(loss(x, y), standard()(x, y))


@pytest.mark.parametrize("config", [grid_start_config("cross_entropy"), taylor_start_config("ce")])
def test_cross_entropy_starts_are_exact(config):
    loss = LearnedLoss(config)
    logits = torch.randn(6, 5) * 3
    labels = torch.randint(0, 5, (6,))
    torch.testing.assert_close(loss(logits, labels), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(6, 5), dim=1)
    torch.testing.assert_close(loss(logits, soft), F.cross_entropy(logits, soft))


def test_grid_masks_minus_inf_logits_like_cross_entropy():
    loss = perturbed(LearnedLoss(grid_start_config("cross_entropy")), 0.1)
    logits = torch.randn(4, 6).requires_grad_(True)
    masked = logits.detach().clone()
    masked[:, 0] = float("-inf")
    masked.requires_grad_(True)
    labels = torch.tensor([1, 2, 3, 4])
    value = loss(masked, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(masked.grad).all()


def test_grid_reproduces_a_cubic_and_extrapolates_linearly():
    config = LossConfig(
        parameterization="grid",
        inputs=("residual",),
        output_activation="identity",
        grid_knots=(5,),
        grid_range=((-2.0, 2.0),),
    )
    net = GridNetwork(config)
    knots = net.knot_positions[0].float()
    net.fit_knots(knots**3 - knots, 3 * knots**2 - 1)
    x = torch.linspace(-2, 2, 101).unsqueeze(-1)
    torch.testing.assert_close(net.correction(x), x[..., 0] ** 3 - x[..., 0], atol=1e-5, rtol=1e-5)
    beyond = torch.tensor([[3.0], [-4.0]])
    # value at the end + end slope * distance (11 is d/dx (x³ - x) at ±2)
    torch.testing.assert_close(net.correction(beyond), torch.tensor([6 + 11.0, -6 - 22.0]))


def test_frozen_fast_path_matches_the_differentiable_one_with_second_derivatives():
    loss = perturbed(LearnedLoss(grid_start_config("huber"), check_finite=False), 0.5)
    net = loss.network
    x = (torch.randn(300, dtype=torch.float64) * 5).unsqueeze(-1)
    reference = net._correction(x)
    loss.freeze()
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(net.correction(xa).sum(), xa, create_graph=True)
    (gb,) = torch.autograd.grad(net._correction(xb).sum(), xb, create_graph=True)
    torch.testing.assert_close(net.correction(x), reference)
    torch.testing.assert_close(ga, gb)
    (ha,) = torch.autograd.grad(ga.sum(), xa)
    (hb,) = torch.autograd.grad(gb.sum(), xb)
    torch.testing.assert_close(ha, hb)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("frozen", [False, True])
def test_vmap_and_grad(name, frozen):
    loss = perturbed(LearnedLoss(CONFIGS[name]("huber"), check_finite=False))
    if frozen:
        loss.freeze()
    x, y = torch.randn(3, 10), torch.randn(3, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batched = torch.func.vmap(torch.func.grad(lambda a, b: loss(a, b)))(x, y)
    looped = torch.stack([torch.func.grad(lambda a, b: loss(a, b))(x[k], y[k]) for k in range(3)])
    torch.testing.assert_close(batched, looped)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_meta_training_moves_each_parameterization(name):
    torch.manual_seed(0)
    loss = LearnedLoss(CONFIGS[name]("mse"))
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    trainer = MetaTrainer(
        loss,
        SineTasks(n_train=20, n_query=20, hidden=(8,)),
        inner_steps=2,
        inner_lr=0.02,
        meta_batch_size=2,
        validation_size=2,
        validate_every=0,
        progress=False,
    )
    trainer.fit(2)
    after = loss.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "config",
    [
        grid_start_config(
            "huber",
            inputs=("residual", "target"),
            knots=(9, 3),
            grid_range=((-3.0, 3.0), (-1.0, 2.0)),
        ),
        grid_start_config("cross_entropy"),
        taylor_start_config("mse", order=2),
        LossConfig(parameterization="taylor", inputs=("input", "target")),
    ],
)
def test_save_load_round_trip(tmp_path, config):
    loss = perturbed(LearnedLoss(config))
    loss.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["parameterization"] == config.parameterization
    loaded = LearnedLoss.from_pretrained(tmp_path)
    assert loaded.config == config
    for k, v in loss.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[k], v)


def test_mlp_files_do_not_mention_parameterizations():
    data = config_to_json_dict(LossConfig(), {}, "0")
    assert not {"parameterization", "grid_knots", "grid_range", "taylor_order"} & set(data)
    config, _ = config_from_json_dict(data)
    assert config.parameterization == "mlp"
    assert isinstance(build_network(config), PointwiseMLP)
    assert isinstance(LearnedLoss.from_pretrained("mse-fit").network, PointwiseMLP)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(parameterization="spline"),
        dict(parameterization="mlp", grid_knots=(5,)),
        dict(parameterization="grid", taylor_order=3),
        dict(parameterization="grid", inputs=("input", "target", "residual")),
        dict(parameterization="grid", inputs=("residual",), grid_knots=(2,)),
        dict(parameterization="grid", inputs=("residual",), grid_knots=(5, 5)),
        dict(parameterization="grid", inputs=("residual",), grid_knots=(5.0,)),
        dict(parameterization="grid", inputs=("residual",), grid_range=((1.0, -1.0),)),
        dict(parameterization="grid", inputs=("residual",), grid_range=((0.0, float("inf")),)),
        dict(parameterization="grid", inputs=("residual",), grid_range=(0.0, 1.0)),
        dict(parameterization="taylor", taylor_order=0),
        dict(parameterization="taylor", taylor_order=True),
    ],
)
def test_config_rejects_bad_parameterization_settings(kwargs):
    with pytest.raises(ConfigError):
        LossConfig(**kwargs)


def test_config_json_rejects_bad_parameterization_values():
    data = config_to_json_dict(grid_start_config("mse"), {}, "0")
    for key, value in [
        ("parameterization", 3),
        ("grid_knots", [1]),
        ("grid_range", "wide"),
        ("taylor_order", 3),
    ]:
        with pytest.raises(ConfigError):
            config_from_json_dict({**data, key: value})


def test_taylor_parameter_count_follows_taylorglo():
    # third order in (prediction, target): 6 coefficients + the 2-D center = 8 parameters
    loss = LearnedLoss(taylor_start_config("mse"))
    assert isinstance(loss.network, TaylorNetwork)
    assert sum(p.numel() for p in loss.parameters()) == 8
    assert len(taylor_exponents(2, 3)) == 9


# ------------------------------------------------------------------ the frozen fast path

FAST_REGRESSION = {
    "huber 1-D": lambda: grid_start_config("huber"),
    "mse 1-D": lambda: grid_start_config("mse"),
    "huber 2-D": lambda: grid_start_config("huber", inputs=("residual", "target")),
    "mse 2-D": lambda: grid_start_config(
        "mse", inputs=("residual", "target"), knots=(9, 4), grid_range=((-3, 2), (-1, 2))
    ),
    "softplus, no residual": lambda: LossConfig(
        parameterization="grid", inputs=("residual",), output_activation="softplus"
    ),
    "identity 2-D, no residual": lambda: LossConfig(
        parameterization="grid", inputs=("residual", "target"), output_activation="identity"
    ),
    "scale-free mse": lambda: grid_start_config(
        "mse", inputs=("scaled_residual",), residual_form="scale", knots=(17,)
    ),
    "scale-free huber": lambda: grid_start_config(
        "huber", inputs=("scaled_residual",), residual_form="scale", grid_range=((-6, 3),)
    ),
}
FAST_CLASSIFICATION = {
    "cross-entropy": lambda: grid_start_config("cross_entropy"),
    "cross-entropy 1-D": lambda: grid_start_config("cross_entropy", inputs=("log_prob",)),
    "softplus, no residual": lambda: LossConfig(
        kind="classification",
        parameterization="grid",
        inputs=("log_prob", "target"),
        output_activation="softplus",
        grid_knots=(17, 3),
        grid_range=((-8.0, 0.0), (-0.5, 1.5)),
    ),
}


@pytest.fixture
def fast_calls(monkeypatch):
    """How many calls took the eager fast path (the fused kernels, which would take the
    classification calls first, are off for the test: tests/core/test_kernels.py checks them
    against the general path)."""
    calls = []
    original = fast_module._pre_activation

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(fast_module, "_pre_activation", counted)
    with kernels.disabled():
        yield calls


def fast_and_general(loss, x, y, grad_of=None):
    """(value, input gradient) by the fast path and by the general path."""
    out = []
    for general in (False, True):
        xx = x.detach().clone().requires_grad_(True)
        with fast_module.disabled() if general else contextlib.nullcontext():
            value = loss(xx, y)
        (grad,) = torch.autograd.grad(value.sum(), xx)
        out.append((value.detach(), grad))
    return out


def assert_same(fast, general, rtol=2e-5, atol=2e-5):
    torch.testing.assert_close(fast[0], general[0], rtol=rtol, atol=atol, equal_nan=True)
    torch.testing.assert_close(fast[1], general[1], rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("name", list(FAST_REGRESSION))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_equals_the_general_path_for_regression(name, reduction, dtype, fast_calls):
    loss = perturbed(LearnedLoss(FAST_REGRESSION[name](), reduction=reduction), 0.5).freeze()
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(40, 7, generator=generator) * 5).to(dtype)  # beyond the grid too
    y = (torch.randn(40, 7, generator=generator) * 3).to(dtype)
    single = dtype == torch.float32
    # the scale-free form's gradient, 1 + h + u h', adds float32 terms in another order
    near = 1e-4 if "scale-free" in name else 1e-5
    for a, b, rtol in [
        (x, y, near if single else 1e-10),
        (x[0, 0], y[0, 0], near if single else 1e-10),  # 0-dim
        # far beyond the grid: the general path's float32 table rounds its end slopes
        (x * 1e6, y, 1e-4 if single else 1e-10),
    ]:
        fast, general = fast_and_general(loss, a, b)
        assert fast[0].shape == general[0].shape and fast[0].dtype == dtype
        assert_same(fast, general, rtol=rtol)
    assert len(fast_calls) == 3


@pytest.mark.parametrize("name", ["huber 1-D", "mse 2-D", "scale-free mse"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fast_path_keeps_the_standard_loss_at_nan_inf_and_extreme_values(name, reduction):
    loss = perturbed(LearnedLoss(FAST_REGRESSION[name](), reduction=reduction), 0.5).freeze()
    x = torch.tensor([0.5, float("nan"), float("inf"), -float("inf"), 3e18, 2e18, 1.0])
    y = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 2e18, float("nan")])
    for k in range(len(x)):
        pick = [0, k]
        assert_same(*fast_and_general(loss, x[pick], y[pick]))
    assert_same(*fast_and_general(loss, x, y))
    # the standard loss's semantics: NaN in, NaN out; an infinite error, an infinite loss
    loss.reduction = "none"
    out = loss(x, y)
    assert out[1].isnan() and out[2] == float("inf") and out[3] == float("inf")
    assert out[4] == torch.tensor(3e18) ** 2 and out[5] == 0.0


@pytest.mark.parametrize("name", list(FAST_CLASSIFICATION))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fast_path_equals_the_general_path_for_classification(name, reduction, fast_calls):
    loss = perturbed(LearnedLoss(FAST_CLASSIFICATION[name](), reduction=reduction), 0.5).freeze()
    generator = torch.Generator().manual_seed(2)
    cases = [
        (
            torch.randn(16, 5, generator=generator) * 6,
            torch.randint(0, 5, (16,), generator=generator),
        ),
        (torch.randn(5, generator=generator) * 30, torch.tensor(3)),  # far below the grid too
        (  # (N, C, d) logits, uint8 class indices
            torch.randn(3, 4, 5, generator=generator),
            torch.randint(0, 4, (3, 5), generator=generator).to(torch.uint8),
        ),
        (
            torch.randn(4, 3, 6, generator=generator),
            torch.randint(0, 3, (4, 6), generator=generator),
        ),
    ]
    for logits, labels in cases:
        assert_same(*fast_and_general(loss, logits, labels))
    assert len(fast_calls) == len(cases)
    logits, labels = cases[0]
    double = fast_and_general(loss, logits.double(), labels)  # float64 logits
    assert_same(*double, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fast_path_leaves_masked_logits_and_ignore_index_to_the_general_path(reduction):
    loss = perturbed(LearnedLoss(grid_start_config("cross_entropy"), reduction=reduction), 0.5)
    loss.freeze()
    logits = torch.randn(6, 4) * 3
    logits[1, 2] = -float("inf")  # a masked class
    labels = torch.tensor([0, 1, 3, -100, 2, 0])
    assert_same(*fast_and_general(loss, logits, labels))
    assert_same(*fast_and_general(loss, logits, labels.clamp_min(0)))  # masked, no ignore
    assert_same(*fast_and_general(loss, logits.nan_to_num(neginf=0.0), labels))  # ignore only
    masked = loss(logits, labels.clamp_min(0))
    assert torch.isfinite(masked).all()  # the masked class costs nothing, as in F.cross_entropy
    with pytest.raises(ValueError, match="outside"):
        loss(logits.nan_to_num(neginf=0.0), torch.tensor([0, 1, 4, 0, 2, 0]))


@pytest.mark.parametrize("name", ["huber 1-D", "huber 2-D"])
def test_fast_path_second_derivatives_and_retained_graphs(name, fast_calls):
    loss = perturbed(LearnedLoss(FAST_REGRESSION[name]()), 0.5).freeze()
    x, y = torch.randn(30, dtype=torch.float64) * 4, torch.randn(30, dtype=torch.float64)
    grads, hessians = [], []
    for general in (False, True):
        xx = x.clone().requires_grad_(True)
        with fast_module.disabled() if general else contextlib.nullcontext():
            value = loss(xx, y)
            (g,) = torch.autograd.grad(value, xx, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), xx)
        grads.append(g.detach())
        hessians.append(h)
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(hessians[0], hessians[1])
    xx = x.clone().requires_grad_(True)
    value = loss(xx, y)
    value.backward(retain_graph=True)
    first = xx.grad.clone()
    value.backward()  # the retained graph gives the same gradient again
    torch.testing.assert_close(xx.grad, 2 * first)
    assert fast_calls


def test_fast_path_is_not_taken_under_transforms_or_when_trainable(fast_calls):
    loss = perturbed(LearnedLoss(grid_start_config("huber")), 0.5)
    x, y = torch.randn(3, 10), torch.randn(3, 10)
    loss(x, y)  # trainable: the general path
    assert not fast_calls
    loss.freeze()
    batched = torch.func.vmap(torch.func.grad(lambda a, b: loss(a, b)))(x, y)
    torch.func.grad(lambda a: loss(a, y))(x)
    assert not fast_calls
    rows = [x[k].clone().requires_grad_(True) for k in range(3)]
    looped = torch.stack(
        [torch.autograd.grad(loss(a, b), a)[0] for a, b in zip(rows, y, strict=True)]
    )
    torch.testing.assert_close(batched, looped)
    assert len(fast_calls) == 3
    strict = perturbed(LearnedLoss(grid_start_config("huber"), check_finite=True), 0.5).freeze()
    strict(x, y)
    assert len(fast_calls) == 3
    general = fast_and_general(loss, x, y)[1][0]
    with torch.no_grad():  # no gradient wanted: the value only
        torch.testing.assert_close(loss(x, y), general)
    assert len(fast_calls) == 5


def test_fast_path_follows_changed_weights_and_half_precision(fast_calls):
    loss = perturbed(LearnedLoss(grid_start_config("huber")), 0.5).freeze()
    x, y = torch.randn(50) * 3, torch.randn(50)
    before = loss(x, y)
    with torch.no_grad():
        loss.network.values.add_(0.25)
    after, general = fast_and_general(loss, x, y)
    assert not torch.allclose(before, after[0])
    assert_same(after, general)
    half = fast_and_general(loss, x.bfloat16(), y.bfloat16())
    assert half[0][0].dtype == torch.bfloat16
    assert_same(*half, rtol=1e-2, atol=1e-2)
