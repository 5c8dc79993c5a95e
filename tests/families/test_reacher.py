"""Model-based RL: the MuJoCo reacher, the learned dynamics model, collapse detection, and
meta-training end to end."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.cli import main
from learnedloss.envs.reacher import MujocoReacher, fingertip, sample_goals, sample_starts
from learnedloss.families.reacher.recipe import (
    CollapseMonitor,
    DynamicsRefit,
    ReacherData,
    ReacherRecipe,
    collect_random,
    evaluate_reacher,
    meta_train_reacher,
    summarize_reaching,
)
from learnedloss.families.reacher.tasks import DynamicsModel, ReacherGoals, fit_dynamics
from learnedloss.starts import mse_start_config

TINY = dict(
    random_episodes=10,
    fit_steps=50,
    refit_every=2,
    refit_episodes=2,
    horizon=10,
    outer_steps=2,
    inner_steps=2,
    meta_batch_size=2,
    es_pairs=1,
    validate_every=1,
    validation_size=2,
    hidden=(4,),
)


def test_fingertip_and_steps_match_mujoco():
    env = gymnasium.make("Reacher-v5").unwrapped
    env.reset(seed=0)
    reacher = MujocoReacher()
    state, goal = np.array([0.3, -1.2, 1.0, -2.0]), np.array([0.1, 0.05])
    env.set_state(np.concatenate([state[:2], goal]), np.concatenate([state[2:], [0, 0]]))
    tip = fingertip(torch.tensor(state[:2]))
    np.testing.assert_allclose(tip.numpy(), env.get_body_com("fingertip")[:2], atol=1e-12)
    env.step(np.array([0.5, -0.5]))
    ours = reacher.step(state, goal, np.array([0.5, -0.5]))
    np.testing.assert_allclose(ours, np.concatenate([env.data.qpos[:2], env.data.qvel[:2]]))


def test_starts_and_goals_follow_gymnasium_reset():
    generator = torch.Generator().manual_seed(0)
    goals, starts = sample_goals(500, generator), sample_starts(500, generator)
    assert goals.norm(dim=-1).max() < 0.2 and goals.abs().max() > 0.15
    assert starts[:, :2].abs().max() <= 0.1 and starts[:, 2:].abs().max() <= 0.005


def test_dynamics_model_learns_mujoco_transitions():
    """Fitted on 30 random episodes, the model predicts held-out transitions far better
    than 'nothing changes'."""
    reacher, data, held_out = MujocoReacher(), ReacherData(), ReacherData()
    collect_random(reacher, 30, torch.Generator().manual_seed(0), data)
    collect_random(reacher, 5, torch.Generator().manual_seed(1), held_out)
    torch.manual_seed(0)
    model = DynamicsModel()
    fit_dynamics(model, *data.tensors(), steps=500)
    states, actions, next_states = held_out.tensors()
    with torch.no_grad():
        error = ((model(states, actions) - next_states) / model.scale).pow(2).mean()
    still = ((states - next_states) / model.scale).pow(2).mean()
    assert error < 0.1 * still
    assert not any(p.requires_grad for p in model.parameters())


def test_policies_train_through_the_model_and_only_the_policy_learns():
    torch.manual_seed(0)
    tasks = ReacherGoals(DynamicsModel(), horizon=6)
    batch = tasks.sample(3, torch.Generator().manual_seed(0))
    model = tasks.make_model()
    assert all(name.startswith("policy.") for name, _ in model.named_parameters())
    prediction = model(batch.x_train[0])
    assert prediction.shape == (1, 6, 6)
    input, target, side = tasks.loss_arguments(prediction, batch.y_train[0], batch.x_train[0])
    assert input.shape == target.shape == side["velocity"].shape == side["time"].shape
    assert set(side) == {"velocity", "action", "time"}
    torch.testing.assert_close(target[0, 0], batch.x_train[0, 0, 4:])
    value = tasks.meta_objective({}, prediction, batch.y_train[0], {})
    grads = torch.autograd.grad(value, list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and grads[0].abs().sum() > 0


def test_collapse_monitor_flags_a_loss_without_gradient():
    torch.manual_seed(0)
    tasks = ReacherGoals(DynamicsModel(), horizon=6)
    monitor = CollapseMonitor(tasks, floor=0.01, n_tasks=2)
    fresh = LearnedLoss(mse_start_config((4,), ("input", "target", "residual"), "weight"))
    assert monitor.ratio(fresh) == pytest.approx(1.0)  # it starts as exactly MSE
    dead = LearnedLoss(LossConfig(hidden_sizes=(4,), inputs=("input", "target")))
    with torch.no_grad():
        dead.network.layers[-1].weight.zero_()  # a constant loss: no gradient at all

    class Trainer:
        loss, step = dead, 7

    record = {"meta_val": 1.0}
    with pytest.warns(UserWarning, match="collapsing"):
        monitor(Trainer, record)
    assert record["gradient_ratio"] == 0.0 and record["collapsed"]
    assert monitor.collapsed_at == 7


def test_refit_adds_real_transitions_and_refits():
    torch.manual_seed(0)
    reacher, data = MujocoReacher(), ReacherData()
    collect_random(reacher, 2, torch.Generator().manual_seed(0), data)
    tasks = ReacherGoals(DynamicsModel(), horizon=5)
    refit = DynamicsRefit(
        reacher, tasks, data, every=2, episodes=3, fit_steps=5, inner_steps=1,
        inner_lr=0.01, inner_optimizer="adam", seed=0,
    )  # fmt: skip

    class Trainer:
        loss, step = nn.MSELoss(), 1

    record: dict = {}
    refit(Trainer, record)  # not a refit step
    assert record == {} and len(data) == 2 * 50
    Trainer.step = 2
    before = tasks.dynamics.net[0].weight.clone()
    refit(Trainer, record)
    assert len(data) == 2 * 50 + 3 * 5
    assert {"dynamics_error", "real_final_distance"} <= set(record)
    assert not torch.equal(before, tasks.dynamics.net[0].weight)


def test_meta_train_and_evaluate_a_reacher_loss():
    recipe = ReacherRecipe(**TINY)
    loss, trainer, _ = meta_train_reacher(recipe, progress=False)
    assert loss.metadata["recipe"]["family"] == "reacher"
    assert loss.metadata["training"]["collapsed_at"] is None
    assert all("gradient_ratio" in r for r in trainer.history)
    assert "dynamics_error" in trainer.history[1]
    scores = evaluate_reacher(
        {"learned": loss}, recipe, n_goals=2, tune_goals=2, refits=1, lrs=[1e-3, 1e-2]
    )
    assert list(scores) == ["learned", "task loss (lr 0.003)", "task loss (tuned lr)"]
    assert scores["task loss (tuned lr)"].lr in (1e-3, 1e-2)
    assert all(0 < s.final_distance < 0.5 for s in scores.values())
    assert "mean ± std over 1 seeds" in summarize_reaching([scores])


def test_cli_meta_train_then_evaluate_reacher(tmp_path, capsys):
    out = tmp_path / "reacher"
    tiny = ["--random-episodes", "5", "--fit-steps", "20", "--refit-every", "1"]
    tiny += ["--refit-episodes", "1", "--outer-steps", "2", "--inner-steps", "1"]
    tiny += ["--meta-batch", "2", "--es-pairs", "1", "--validate-every", "1"]
    tiny += ["--validation-size", "2", "--hidden", "4"]
    assert main(["meta-train", "reacher", *tiny, "--out", str(out)]) == 0
    loss = LearnedLoss.from_pretrained(out)
    assert loss.config.side_inputs == ("velocity", "action", "time")
    assert loss.metadata["recipe"]["refit_every"] == 1
    report = tmp_path / "reach.json"
    args = ["--seeds", "1", "--n-goals", "2", "--tune-goals", "2", "--json", str(report)]
    assert main(["evaluate", "reacher", f"learned={out}", *args]) == 0
    assert "final distance in MuJoCo" in capsys.readouterr().out
    scores = json.loads(report.read_text())[0]
    assert set(scores) == {"learned", "task loss (lr 0.003)", "task loss (tuned lr)"}
    with pytest.raises(SystemExit, match="cannot be resumed"):
        main(["meta-train", "reacher", *tiny, "--out", str(out), "--resume", "--run-dir", "x"])


def test_bundled_reacher_loss_has_not_collapsed():
    """The card: the loss reads the fingertip, goal, velocity, torque and time, weights
    that average 1 over a roll-out, and its gradient on fresh policies is about the task
    loss's (1.00-1.04 during meta-training)."""
    loss = LearnedLoss.from_pretrained("reacher")
    assert loss.config.residual_form == "weight"
    assert loss.config.side_inputs == ("velocity", "action", "time")
    assert loss.metadata["training"]["collapsed_at"] is None
    torch.manual_seed(0)
    ratio = CollapseMonitor(ReacherGoals(DynamicsModel()), n_tasks=4).ratio(loss)
    assert 0.5 < ratio < 2.0
