"""Batched evaluation (``evaluate(..., path="engine")``) scores every loss as the vmap path
does, falls back with a reason where the engine cannot train, and early stopping picks each
run's step on a validation half that the early-stopped score never sees."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.evaluation import Tuned, evaluate, held_out_draw, with_metrics, with_validation
from learnedloss.evaluation.baselines import (
    AdaptiveRobustLoss,
    generalized_cross_entropy,
    huber,
    scaled_mse,
)
from learnedloss.evaluation.batched import EngineRun, engine_curves, loss_refusal
from learnedloss.evaluation.protocol import _early_stopped
from learnedloss.families.noisy_labels.tasks import NoisyLabelTasks
from learnedloss.families.sine import SineTasks
from learnedloss.tasks.base import TaskFamily
from learnedloss.tasks.models import mlp

SMALL = dict(steps=8, n_tasks=3, n_inits=2, lrs=[1e-3, 1e-2, 5e-2], tune_tasks=3, every=2)


def sine_tasks():
    return SineTasks(n_train=20, n_query=20, hidden=(16, 8))


def noisy_tasks():
    return NoisyLabelTasks(
        sources=("synthetic",),
        n_classes=(3,),
        n_train=24,
        n_query=12,
        label_noise=(0.3, 0.3),
        noises=("symmetric",),
        widths=(8,),
        synthetic_inputs=(5, 5),
    )


def learned_regression_loss():
    torch.manual_seed(0)
    return LearnedLoss(LossConfig(hidden_sizes=(8, 8), bias=True))


def learned_loss_reading_x():
    torch.manual_seed(1)
    return LearnedLoss(LossConfig(inputs=("input", "target", "x"), hidden_sizes=(8,)))


def learned_classification_loss():
    torch.manual_seed(0)
    return LearnedLoss(LossConfig(kind="classification", hidden_sizes=(8,)))


def assert_same_evaluation(losses, tasks, **options):
    """Both paths pick the same lr and variant and agree on every recorded number."""
    vmap = evaluate(losses, tasks, path="vmap", **options)
    engine = evaluate(losses, tasks, path="engine", **options)
    for name in losses:
        a, b = vmap.scores[name], engine.scores[name]
        assert (b.path, b.path_reason) == ("engine", "")
        assert (a.lr, a.variant) == (b.lr, b.variant)
        torch.testing.assert_close(b.finals, a.finals, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b.curve_mean, a.curve_mean, rtol=1e-4, atol=1e-5)
        for metric, values in a.metrics.items():
            torch.testing.assert_close(b.metrics[metric], values, rtol=1e-4, atol=1e-5)
        assert b.early_stopped == pytest.approx(a.early_stopped, rel=1e-4)
        assert torch.equal(b.best_step, a.best_step)
        for label, tuning in a.variants.items() or {None: a.tuning}.items():
            other = b.variants[label] if label is not None else b.tuning
            assert other == pytest.approx(tuning, rel=1e-4)
    return vmap, engine


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_regression_losses_score_as_on_the_vmap_path(optimizer):
    losses = {
        "MSE": nn.MSELoss(),
        "learned": learned_regression_loss(),
        "learned, reads x": learned_loss_reading_x(),
        "Huber": Tuned("Huber", {f"d={d:g}": huber(d) for d in (0.25, 1.0)}),
        "1.5 x MSE": scaled_mse(1.5),
    }
    assert_same_evaluation(losses, sine_tasks(), optimizer=optimizer, **SMALL)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_classification_losses_score_as_on_the_vmap_path(optimizer):
    losses = {
        "CE": nn.CrossEntropyLoss(),
        "learned": learned_classification_loss(),
        "GCE": Tuned("GCE", {f"q={q:g}": generalized_cross_entropy(q) for q in (0.3, 0.7)}),
    }
    options = {**SMALL, "lrs": [1e-2, 0.1, 0.5]}
    assert_same_evaluation(losses, noisy_tasks(), optimizer=optimizer, select_by="error", **options)


def test_a_fixed_lr_scores_as_on_the_vmap_path():
    losses = {"MSE": nn.MSELoss(), "Huber": Tuned("Huber", {"d=0.5": huber(0.5)})}
    options = {k: v for k, v in SMALL.items() if k != "lrs"}
    assert_same_evaluation(losses, sine_tasks(), lr=0.02, **options)


def test_a_loss_trained_with_the_model_falls_back_with_a_reason():
    losses = {"MSE": nn.MSELoss(), "Adaptive robust": AdaptiveRobustLoss()}
    with pytest.warns(UserWarning, match="'Adaptive robust' runs on the vmap path"):
        engine = evaluate(losses, sine_tasks(), path="engine", lr=0.02, steps=4, n_tasks=2)
    fallback = engine.scores["Adaptive robust"]
    assert fallback.path == "vmap" and "JointInnerLoop" in fallback.path_reason
    assert engine.scores["MSE"].path == "engine"
    vmap = evaluate(losses, sine_tasks(), lr=0.02, steps=4, n_tasks=2)
    assert torch.equal(fallback.finals, vmap.scores["Adaptive robust"].finals)
    assert engine.to_dict()["protocol"]["fallbacks"] == {"Adaptive robust": fallback.path_reason}


def test_a_loss_that_fails_on_stacked_tasks_is_refused():
    def host_synced(prediction, target):  # .item() cannot run under vmap
        return (prediction - target).abs().mean() * float((target**2).mean().item() > 0)

    _, batch, _ = held_out_draw(sine_tasks(), 2, 1, 0)
    template = mlp((1, 16, 8, 1))
    assert "fails on stacked tasks" in loss_refusal(host_synced, template, batch)
    assert loss_refusal(huber(1.0), template, batch) is None


class BatchNormTasks(TaskFamily):
    """Sine tasks whose model has BatchNorm buffers, which the engine does not run."""

    def __init__(self):
        self.sines = sine_tasks()

    def sample(self, n_tasks, generator):
        return self.sines.sample(n_tasks, generator)

    def make_model(self):
        return nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def test_a_family_the_engine_cannot_run_falls_back_for_every_loss():
    with pytest.warns(UserWarning, match="runs on the vmap path"):
        result = evaluate(
            {"MSE": nn.MSELoss()}, BatchNormTasks(), path="engine", lr=0.01, steps=2, n_tasks=2
        )
    assert result.scores["MSE"].path == "vmap"
    assert "buffers" in result.scores["MSE"].path_reason


def test_runs_split_over_several_calls_train_as_in_one():
    tasks = sine_tasks()
    template, batch, params = held_out_draw(tasks, 3, 2, 0)
    runs = [EngineRun(nn.MSELoss(), lr) for lr in (1e-3, 1e-2)]
    runs += [EngineRun(huber(0.5), lr) for lr in (1e-2, 5e-2)]
    options = dict(steps=5, optimizer="sgd", objective=with_metrics(tasks), every=5)
    one = engine_curves(runs, tasks, template, batch, params, **options)
    several = engine_curves(runs, tasks, template, batch, params, max_models=7, **options)
    assert len(one) == len(several) == 4
    for a, b in zip(one, several, strict=True):
        assert a.shape == (2, 6, 1)
        torch.testing.assert_close(a, b)


def test_an_unknown_path_is_an_error():
    with pytest.raises(ValueError, match="path must be one of"):
        evaluate({"MSE": nn.MSELoss()}, sine_tasks(), lr=0.01, path="fast")


# -- early stopping -------------------------------------------------------------------


def test_the_validation_and_test_halves_split_the_query_rows_by_seed():
    tasks = sine_tasks()
    tasks.objective = lambda prediction, target: prediction.sum()  # the sum of row numbers
    rows = torch.arange(10.0).view(10, 1)
    values = with_validation(tasks, 10, seed=0)({}, rows, rows, {})
    assert values.shape == (3,)
    assert values[0] == 45 and values[1] + values[2] == 45  # halves cover all rows, once
    again = with_validation(tasks, 10, seed=0)({}, rows, rows, {})
    other = with_validation(tasks, 10, seed=1)({}, rows, rows, {})
    assert torch.equal(values, again) and not torch.equal(values, other)


def test_each_run_stops_where_its_validation_half_is_best():
    # two runs, 4 records (every 5 steps); columns: validation [objective], test [objective]
    validation = torch.tensor([[4.0, 3.0], [2.0, float("nan")], [3.0, 1.0], [2.0, 2.0]])
    test = torch.tensor([[40.0, 30.0], [20.0, 99.0], [30.0, 10.0], [25.0, 20.0]])
    halves = torch.stack([validation, test], dim=-1)
    stopped = _early_stopped(halves, [], column=0, every=5)
    assert stopped["best_step"].tolist() == [5, 10]  # the first best; NaN never wins
    assert stopped["early_stopped"] == pytest.approx(math.sqrt(20.0 * 10.0))
    assert stopped["last_on_test"] == pytest.approx(math.sqrt(25.0 * 20.0))


def test_evaluate_records_early_stopping_in_results_and_tables():
    options = {k: v for k, v in SMALL.items() if k != "lrs"}
    result = evaluate({"MSE": nn.MSELoss()}, sine_tasks(), lr=0.05, **options)
    score = result.scores["MSE"]
    assert score.early_stopped is not None and score.last_on_test is not None
    assert score.best_step.shape == score.finals.shape
    assert set(score.best_step.tolist()) <= set(range(0, SMALL["steps"] + 1, SMALL["every"]))
    assert "early-stop" in result.table()
    record = result.to_dict()["losses"]["MSE"]
    assert record["early_stopped"] == score.early_stopped
    assert record["stop_step"] == float(score.best_step.float().median())
    assert result.protocol["early_stopping"] is not None


def test_without_query_scoring_no_early_stopping_is_recorded():
    options = dict(lr=0.05, steps=4, n_tasks=2)
    on_train = evaluate({"MSE": nn.MSELoss()}, sine_tasks(), score_on="train", **options)
    switched_off = evaluate({"MSE": nn.MSELoss()}, sine_tasks(), early_stopping=False, **options)
    for result in (on_train, switched_off):
        assert result.scores["MSE"].early_stopped is None
        assert "early-stop" not in result.table()
        assert "early_stopped" not in result.to_dict()["losses"]["MSE"]
    with_stopping = evaluate({"MSE": nn.MSELoss()}, sine_tasks(), **options)
    expected = switched_off.scores["MSE"].finals
    torch.testing.assert_close(with_stopping.scores["MSE"].finals, expected)
