"""Evolution-strategies meta-gradients: the estimator, and
MetaTrainer(meta_gradient=EvolutionStrategies(...))."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.meta import EvolutionStrategies
from learnedloss.meta.es import es_gradient
from learnedloss.meta.inner import initial_params
from learnedloss.starts import mse_start_config
from tests.core.test_trainer import TINY, make_loss, tiny_tasks


def test_es_recovers_the_gradient_of_a_quadratic():
    """For a quadratic, Gaussian smoothing changes nothing, so the antithetic estimate is
    unbiased for the exact gradient 2 (φ - c); with many pairs it points the same way."""
    centre = {"a": torch.tensor([1.0, -2.0, 0.5]), "b": torch.tensor([[3.0, 0.0]])}
    point = {"a": torch.zeros(3), "b": torch.ones(1, 2)}

    def objective(params):
        return sum(((params[k] - centre[k]) ** 2).sum() for k in params)

    gradient, value = es_gradient(objective, point, 4000, 0.1, torch.Generator().manual_seed(0))
    exact = torch.cat([(2 * (point[k] - centre[k])).flatten() for k in point])
    estimate = torch.cat([gradient[k].flatten() for k in point])
    assert F.cosine_similarity(estimate, exact, dim=0) > 0.99
    torch.testing.assert_close(estimate.norm(), exact.norm(), rtol=0.05, atol=0)
    # the mean objective estimates the smoothed one, F(φ) + σ² · dim
    assert value == pytest.approx(float(objective(point)) + 0.01 * 5, rel=0.02)


def test_es_leaves_out_pairs_whose_inner_loop_diverged():
    def objective(params):
        x = params["x"]
        return torch.tensor(math.inf) if x[0] > 1.3 else (x**2).sum()

    point = {"x": torch.ones(2)}
    gradient, value = es_gradient(objective, point, 200, 0.5, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(g).all() for g in gradient.values()) and math.isfinite(value)
    never = es_gradient(lambda p: torch.tensor(math.nan), point, 3, 0.5, torch.Generator())
    assert never[0] is None and math.isnan(never[1])
    with pytest.raises(ValueError, match="sigma > 0"):
        es_gradient(objective, point, 3, 0.0, torch.Generator())


def test_es_meta_gradient_agrees_with_backprop_where_the_inner_loop_is_smooth():
    """On a short, low-lr inner loop the meta-objective is smooth, so the ES estimate with
    many pairs points along the exact second-order meta-gradient."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    small = LearnedLoss(mse_start_config(hidden=(4,)))  # 4·3 + 4 + 4 + 1 = 21 weights
    nn.init.normal_(small.network.layers[-1].weight, std=0.1)  # away from the exact start
    trainer = MetaTrainer(small, tiny_tasks(outlier_fraction=0.2), validate_every=0, **TINY)
    generator = torch.Generator().manual_seed(3)
    batch = trainer.tasks.sample(4, generator)
    _, params = initial_params(trainer.tasks.make_model, 4, generator)
    trainer.meta_objective(batch, params).backward()
    exact = torch.cat([p.grad.flatten() for p in trainer.loss.parameters()])
    estimate, _ = es_gradient(
        lambda perturbed: trainer.meta_objective(batch, params, perturbed),
        dict(trainer.loss.named_parameters()),
        400,
        1e-3,
        torch.Generator().manual_seed(0),
    )
    estimate = torch.cat([estimate[k].flatten() for k, _ in trainer.loss.named_parameters()])
    assert F.cosine_similarity(estimate, exact, dim=0) > 0.9


def test_es_training_moves_the_loss_is_recorded_and_resumes_bit_identically(tmp_path):
    settings = dict(
        TINY,
        meta_gradient=EvolutionStrategies(pairs=3, sigma=0.05),
        validate_every=2,
        checkpoint_every=2,
    )
    whole = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), **settings)
    start = {k: v.clone() for k, v in whole.loss.state_dict().items()}
    best = whole.fit(4)
    assert any(not torch.equal(start[k], v) for k, v in whole.loss.state_dict().items())
    assert best.metadata["training"]["meta_gradient"] == "es"
    assert best.metadata["training"]["es_pairs"] == 3
    assert best.metadata["training"]["es_sigma"] == 0.05
    assert all(math.isfinite(r["meta_train"]) and not r["skipped"] for r in whole.history)

    first = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), run_dir=tmp_path, **settings)
    first.fit(2)
    resumed = MetaTrainer(
        make_loss(seed=7), tiny_tasks(outlier_fraction=0.2), run_dir=tmp_path, **settings
    )
    resumed.fit(4, resume=True)
    for k, v in whole.loss.state_dict().items():
        assert torch.equal(resumed.loss.state_dict()[k], v), k
    assert resumed.history == whole.history

    backprop = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), run_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="cannot resume"):
        backprop.fit(5, resume=True)


def test_a_checkpoint_of_the_string_shorthand_resumes_with_the_object(tmp_path):
    """``meta_gradient="es"`` records the same settings as ``EvolutionStrategies()``, so
    either resumes the other's run."""
    settings = dict(TINY, validate_every=0, checkpoint_every=1)
    MetaTrainer(make_loss(), tiny_tasks(), meta_gradient="es", run_dir=tmp_path, **settings).fit(1)
    resumed = MetaTrainer(
        make_loss(), tiny_tasks(), meta_gradient=EvolutionStrategies(), run_dir=tmp_path, **settings
    )
    resumed.fit(2, resume=True)
    assert resumed.step == 2
    other = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        meta_gradient=EvolutionStrategies(sigma=0.1),
        run_dir=tmp_path,
        **settings,
    )
    with pytest.raises(ValueError, match="cannot resume"):
        other.fit(3, resume=True)


def test_bad_es_settings_are_rejected():
    with pytest.raises(ValueError, match="meta_gradient must be 'backprop' or 'es'"):
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient="spsa")
    with pytest.raises(ValueError, match="EvolutionStrategies needs pairs"):
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient=EvolutionStrategies(pairs=0))
    with pytest.raises(ValueError, match="EvolutionStrategies needs sigma"):
        EvolutionStrategies(sigma=-1.0)
