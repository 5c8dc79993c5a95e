"""The measuring stick: same tasks and inits for every loss, tuned lrs, geometric means."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from learnedloss.evaluation.baselines import Tuned, scaled_mse, standard_losses
from learnedloss.evaluation.protocol import evaluate, geometric_mean, lr_grid, pick_lr
from learnedloss.families.sine import SineTasks

SMALL = dict(steps=10, n_tasks=6, n_inits=2)


def tasks(**kwargs):
    return SineTasks(n_train=20, n_query=20, hidden=(16, 8), **kwargs)


def test_lr_grid_is_spaced_by_a_fourth_root_of_two():
    grid = lr_grid(1e-3, 1e-1)
    assert grid[0] == pytest.approx(1e-3) and grid[-1] <= 1e-1 + 1e-12
    ratios = [b / a for a, b in pairwise(grid)]
    assert all(r == pytest.approx(2**0.25) for r in ratios)
    assert len(grid) == 27  # 4 per octave over log2(100) = 6.64 octaves, both ends


def test_geometric_mean():
    assert geometric_mean(torch.tensor([1.0, 4.0])) == pytest.approx(2.0)
    assert geometric_mean(torch.tensor([1.0, float("nan")])) == math.inf


def test_every_loss_sees_the_same_tasks_and_initializations():
    result = evaluate({"a": nn.MSELoss(), "b": nn.MSELoss()}, tasks(), lr=0.01, **SMALL)
    assert torch.equal(result.scores["a"].finals, result.scores["b"].finals)
    assert result.ratio("b") == 1.0


def test_scaled_mse_at_a_scaled_lr_is_mse():
    """c·MSE with SGD at lr/c takes exactly MSE's steps: the control is what it claims."""
    mse = evaluate({"MSE": nn.MSELoss()}, tasks(), lr=0.03, **SMALL)
    scaled = evaluate({"1.5 x MSE": scaled_mse(1.5)}, tasks(), lr=0.02, **SMALL)
    torch.testing.assert_close(
        scaled.scores["1.5 x MSE"].finals, mse.scores["MSE"].finals, rtol=1e-4, atol=1e-6
    )


def test_tuning_picks_the_best_lr_on_separate_tasks():
    grid = [1e-3, 1e-2, 5e-2]
    result = evaluate({"MSE": nn.MSELoss()}, tasks(), lrs=grid, tune_tasks=4, **SMALL)
    score = result.scores["MSE"]
    assert sorted(score.tuning) == grid
    assert score.lr == min(score.tuning, key=score.tuning.get)
    assert score.lr == 5e-2  # 10 steps of SGD on sines: the largest stable lr fits best
    assert result.protocol["lr"] == "tuned per loss"


def test_diverging_runs_are_counted_and_score_infinite():
    result = evaluate({"MSE": nn.MSELoss()}, tasks(), lr=50.0, **SMALL)
    score = result.scores["MSE"]
    assert score.diverged > 0 and score.score == math.inf
    assert "MSE" in result.table()


def test_standard_losses_include_the_controls_and_robust_baselines():
    assert set(standard_losses()) == {"MSE", "1.1 x MSE", "1.5 x MSE"}
    robust = standard_losses(robust=True)
    assert {"L1", "Huber d=0.25", "Huber d=0.5", "Huber d=1", "Huber d=2"} <= set(robust)
    assert {"0.7 x Huber d=0.5", "1.5 x Huber d=0.5"} <= set(robust)
    prediction, target = torch.tensor([0.1, 2.0, -3.0]), torch.zeros(3)
    plain = nn.functional.huber_loss(prediction, target, delta=0.5)
    torch.testing.assert_close(robust["1.5 x Huber d=0.5"](prediction, target), 1.5 * plain)
    torch.testing.assert_close(robust["Huber d=0.5"](prediction, target), plain)


def test_curves_have_a_point_every_k_steps_and_shrink_with_training():
    result = evaluate({"MSE": nn.MSELoss()}, tasks(), lr=0.05, every=5, **SMALL)
    curve = result.scores["MSE"].curve_mean
    assert curve.shape == (3,)  # steps 0, 5, 10
    assert curve[-1] < curve[0]


def test_pick_lr_takes_the_smallest_key_and_the_first_on_ties():
    calls = []

    def key(lr):
        calls.append(lr)
        return (-float(lr >= 0.1), abs(lr - 0.3))  # most successes, then the closest to 0.3

    assert pick_lr([0.01, 0.1, 0.3, 1.0], key) == 0.3
    assert calls == [0.01, 0.1, 0.3, 1.0]  # each lr scored once
    assert pick_lr([0.5, 0.2, 0.4], lambda lr: 0) == 0.5


def _small(losses, **options):
    return evaluate(losses, SineTasks(), steps=10, n_tasks=2, n_inits=1, tune_tasks=2, **options)


def test_widen_tunes_past_a_binding_edge_until_the_best_lr_is_inside():
    # on 10 steps of sine, both losses want lrs far above 2e-4: the grid's top binds
    plain = _small({"MSE": nn.MSELoss()}, lrs=[1e-4, 2e-4])
    assert plain.scores["MSE"].lr == 2e-4 and plain.protocol["widen"] == 0
    widened = _small({"MSE": nn.MSELoss(), "L1": nn.L1Loss()}, lrs=[1e-4, 2e-4], widen=3)
    for score in widened.scores.values():
        tried = sorted(score.tuning)
        assert tried == pytest.approx([1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3])  # one octave a round
        assert score.lr == pytest.approx(1.6e-3)  # still the top: the rounds ran out
        assert score.tuning[score.lr] == min(score.tuning.values())
    assert widened.protocol["widen"] == 3
    # the first two lrs score as without widening (the same tuning tasks)
    assert widened.scores["MSE"].tuning[2e-4] == plain.scores["MSE"].tuning[2e-4]


def test_widen_stops_where_the_best_lr_is_inside_and_extends_tuned_variants_apart():
    huber = Tuned("Huber", {"scaled 1": nn.MSELoss(), "scaled 1000": scaled_mse(1000.0)})
    result = _small({"MSE": nn.MSELoss(), "Huber": huber}, lrs=lr_grid(1e-3, 0.5, 1), widen=4)
    mse = result.scores["MSE"]
    best = min(mse.tuning, key=mse.tuning.get)
    tried = sorted(mse.tuning)
    assert tried == pytest.approx(lr_grid(1e-3, 0.5, 1))  # inside the grid: nothing added
    assert tried[0] < best < tried[-1]
    variants = result.scores["Huber"].variants
    # the variant scaled 1000x wants a 1000x smaller lr: it alone widens downwards
    assert min(variants["scaled 1000"]) == pytest.approx(5e-4)
    assert sorted(variants["scaled 1"]) == pytest.approx(tried)
    chosen = result.scores["Huber"]
    assert chosen.tuning[chosen.lr] == min(min(v.values()) for v in variants.values())


def test_widen_gives_the_same_choice_on_the_engine():
    options = dict(lrs=[1e-4, 2e-4], widen=2, optimizer="sgd")
    on_vmap = _small({"MSE": nn.MSELoss()}, **options)
    on_engine = _small({"MSE": nn.MSELoss()}, path="engine", **options)
    assert on_engine.scores["MSE"].lr == pytest.approx(on_vmap.scores["MSE"].lr)
    for lr, value in on_vmap.scores["MSE"].tuning.items():
        assert on_engine.scores["MSE"].tuning[lr] == pytest.approx(value, rel=1e-4)
