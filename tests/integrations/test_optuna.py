"""An Optuna learning-rate study whose large learning rates diverge: with a learned loss, as
with nn.MSELoss, a diverged trial returns NaN, Optuna marks it failed, and the study goes on."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss

LEARNING_RATES = [0.01, 1e4, 0.05, 1e6, 0.02]  # the second and fourth diverge


def make_objective(loss_fn):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1e7, log=True)
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(20):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        return loss.item()

    return objective


def run_study(loss_fn):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="minimize")
    for lr in LEARNING_RATES:
        study.enqueue_trial({"lr": lr})
    study.optimize(make_objective(loss_fn), n_trials=len(LEARNING_RATES))
    return study


@pytest.mark.parametrize("name", ["mse-fit", "robust-regression"])
def test_diverging_trials_fail_and_the_study_goes_on_as_with_mse(name):
    reference = run_study(nn.MSELoss())
    study = run_study(LearnedLoss.from_pretrained(name))
    states = [t.state for t in study.trials]
    assert len(states) == len(LEARNING_RATES)  # no exception stopped the study
    for trial in study.trials:  # a non-finite loss is a failed trial, never an exception
        finite = trial.value is not None and math.isfinite(trial.value)
        assert trial.state == (
            optuna.trial.TrialState.COMPLETE if finite else optuna.trial.TrialState.FAIL
        )
    if name == "mse-fit":  # a fit to MSE diverges where MSE does (robust-regression's
        # gradients are bounded, so it need not)
        assert states == [t.state for t in reference.trials]
        assert states.count(optuna.trial.TrialState.FAIL) == 2
    assert study.best_trial.state == optuna.trial.TrialState.COMPLETE
    assert math.isfinite(study.best_value)
    assert study.best_params["lr"] in (0.01, 0.05, 0.02)


def test_a_pruning_objective_prunes_non_finite_losses():
    """The other usual spelling: report each step and prune on a non-finite loss."""
    loss_fn = LearnedLoss.from_pretrained("mse-fit")
    x, y = torch.randn(32, 3), torch.randn(32, 1)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1e7, log=True)
        model = nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for step in range(20):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise optuna.TrialPruned()
            trial.report(loss.item(), step)
            loss.backward()
            optimizer.step()
        return loss.item()

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study()
    for lr in (0.01, 1e6):
        study.enqueue_trial({"lr": lr})
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    ]
