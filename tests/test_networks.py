"""Loss-network parameterizations: grid (spline) and Taylor start exactly, meta-train, vmap,
save and load, and the config validates them strictly."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnedloss import ConfigError, LearnedLoss, LossConfig, MetaTrainer
from learnedloss.config import config_from_json_dict, config_to_json_dict
from learnedloss.families.sine import SineTasks
from learnedloss.networks import (
    GridNetwork,
    PointwiseMLP,
    TaylorNetwork,
    build_network,
    grid_start_config,
    taylor_exponents,
    taylor_start_config,
)

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
