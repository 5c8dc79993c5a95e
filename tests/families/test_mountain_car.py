"""Mountain car: the simulator against gymnasium, the tasks, and meta-training end to end."""

from __future__ import annotations

import json
import math

import gymnasium
import numpy as np
import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.cli import main
from learnedloss.envs import MountainCar
from learnedloss.envs.mountain_car import GOAL_POSITION
from learnedloss.evaluation.protocol import held_out_draw, train_curves
from learnedloss.families.mountain_car.recipe import (
    DriveScore,
    MountainCarRecipe,
    drive,
)
from learnedloss.families.mountain_car.tasks import MountainCarTasks, PolicyRollout, reached
from learnedloss.families.recipe import meta_train


def gym_rollout(start: float, policy, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """gymnasium's states after each step, and the actions ``policy(t, state)`` chose."""
    env = gymnasium.make("MountainCarContinuous-v0").unwrapped
    env.reset(seed=0)
    env.state = state = np.array([start, 0.0])
    states, actions = [], []
    for t in range(steps):
        actions.append(policy(t, state))
        state, *_ = env.step(np.array([actions[-1]], dtype=np.float32))
        states.append(state)
    return np.array(states), np.array(actions)


@pytest.mark.parametrize("policy", ["random", "pump"])
def test_every_transition_matches_gymnasium(policy):
    """For the same actions, each step from gymnasium's state lands where gymnasium's does.
    Pushing along the velocity pumps energy until the car hits the left wall, then the
    goal, so the clips and the wall are exercised."""
    rng = np.random.default_rng(0)
    if policy == "random":  # beyond [-1, 1] too: both clip the force
        gym_states, actions = gym_rollout(-0.5, lambda t, s: rng.uniform(-1.5, 1.5), 300)
    else:
        gym_states, actions = gym_rollout(-0.5, lambda t, s: 1.0 if s[1] >= 0 else -1.0, 300)
    before = np.concatenate([[[-0.5, 0.0]], gym_states[:-1]])
    ours = MountainCar.step(
        torch.tensor(before, dtype=torch.float64), torch.tensor(actions, dtype=torch.float64)
    )
    np.testing.assert_allclose(ours.numpy(), gym_states, rtol=0, atol=2e-7)  # gym: float32
    if policy == "pump":
        assert gym_states[:, 0].min() == pytest.approx(-1.2) and gym_states[:, 0].max() > 0.5
        assert (gym_states[gym_states[:, 0] <= -1.2, 1] >= 0).all()  # stopped at the wall


def test_a_whole_rollout_matches_gymnasium():
    # left first, then right: reaches the goal
    gym_states, actions = gym_rollout(-0.55, lambda t, s: -1.0 if t < 30 else 1.0, 120)
    schedule = iter(torch.tensor(actions, dtype=torch.float64))
    ours = MountainCar.rollout(
        lambda state: next(schedule).expand(state.shape[:-1]),
        torch.tensor([-0.55, 0.0], dtype=torch.float64),
        120,
    )
    assert ours.shape == (120, 3)
    np.testing.assert_allclose(ours[:, :2].numpy(), gym_states, rtol=0, atol=1e-5)
    assert bool(reached(ours[:, 0])) and ours[:, 0].max() >= GOAL_POSITION


def test_rollouts_are_differentiable_in_the_policy():
    policy = nn.Linear(2, 1)
    positions = MountainCar.rollout(
        lambda s: torch.tanh(policy(s)).squeeze(-1), torch.tensor([[-0.5, 0.0]]), 50
    )[..., 0]
    positions.mean().backward()
    assert policy.weight.grad is not None and policy.weight.grad.abs().sum() > 0


def test_tasks_give_a_loss_the_position_goal_velocity_and_action():
    tasks = MountainCarTasks(horizon=30, waypoint_steps=10)
    batch = tasks.sample(4, torch.Generator().manual_seed(0))
    assert batch.x_train.shape == (4, 1, 2) and batch.y_train.shape == (4, 1, 30)
    assert bool(((batch.x_train[..., 0] >= -0.6) & (batch.x_train[..., 0] <= -0.4)).all())
    assert bool((batch.x_train[..., 1] == 0).all())
    model = tasks.make_model()
    assert isinstance(model, PolicyRollout)
    rollout = model(batch.x_train[0])
    assert rollout.shape == (1, 30, 3)
    position, goal, side = tasks.loss_arguments(rollout, batch.y_train[0], batch.x_train[0])
    torch.testing.assert_close(position, rollout[..., 0])
    torch.testing.assert_close(side["velocity"], rollout[..., 1] / 0.07)
    torch.testing.assert_close(side["action"], rollout[..., 2])
    # the velocity is an observation: the loss's gradient reaches the policy through the
    # positions and the actions only
    assert position.requires_grad and side["action"].requires_grad
    assert not side["velocity"].requires_grad
    assert bool((side["action"].abs() <= 1).all())
    # the shaped meta-objective rewards the left slope early on, the task cost does not
    left_first = torch.full((1, 30, 3), -0.947)
    left_first[:, 10:, 0] = GOAL_POSITION
    stay = torch.full((1, 30, 3), -0.5)
    goal = batch.y_train[0]
    shaped = MountainCarTasks(horizon=30, waypoint_steps=10)
    assert shaped.meta_objective({}, left_first, goal, {}) < 1e-12
    assert shaped.meta_objective({}, stay, goal, {}) > 0.1
    unshaped = MountainCarTasks(shaped=False, horizon=30, waypoint_steps=10)
    assert unshaped.meta_objective({}, left_first, goal, {}) > 0.4
    assert float(tasks.metrics(left_first, goal)["missed"]) == 0
    assert float(tasks.metrics(stay, goal)["missed"]) == 1
    with pytest.raises(ValueError, match="waypoint_steps must lie between 0 and the horizon"):
        MountainCarTasks(horizon=30, waypoint_steps=30)


def test_the_task_cost_keeps_the_car_in_the_valley():
    """The reason for shaping: gradient descent on the task cost never reaches the goal."""
    for optimizer, lr in (("adam", 0.03), ("adam", 1.0), ("sgd", 1.0)):
        positions = drive(nn.MSELoss(), lr=lr, steps=10, n_tasks=8, optimizer=optimizer)
        assert positions.shape == (8, 200)
        assert not bool(reached(positions).any())
        assert float(positions.max()) > -0.3  # it does climb the right slope, partway


def test_the_waypoint_never_reaches_the_loss():
    """Shaped and unshaped tasks train policies identically: only the meta-objective
    differs."""
    torch.manual_seed(0)
    loss = MountainCarRecipe(hidden=(8,)).initial_loss()
    torch.nn.init.normal_(loss.network.layers[-1].weight, std=0.1)
    runs = []
    for shaped in (True, False):
        tasks = MountainCarTasks(shaped=shaped, horizon=20, waypoint_steps=5)
        template, batch, params = held_out_draw(tasks, 3, 1, 0)
        runs.append(
            train_curves(
                loss,
                tasks,
                template,
                batch,
                params,
                0.5,
                3,
                objective=lambda p, pred, y, extra: pred.reshape(-1),
            )
        )
    assert torch.equal(runs[0], runs[1])


def test_meta_training_end_to_end_moves_the_loss_and_records_the_recipe(tmp_path):
    recipe = MountainCarRecipe(
        outer_steps=3,
        inner_steps=2,
        meta_batch_size=2,
        es_pairs=2,
        hidden=(8,),
        horizon=20,
        waypoint_steps=5,
        validate_every=3,
        validation_size=2,
    )
    loss, trainer = meta_train(recipe, family="mountain-car", progress=False)
    assert not torch.equal(
        loss.network.layers[-1].weight, torch.zeros_like(loss.network.layers[-1].weight)
    )
    assert loss.metadata["recipe"]["family"] == "mountain-car"
    assert loss.config.side_inputs == ("velocity", "action")
    assert loss.metadata["recipe"]["meta_gradient"] == "es"
    loss.save_pretrained(tmp_path / "loss")
    again = LearnedLoss.from_pretrained(tmp_path / "loss")
    assert again.config.residual_form == "add"
    assert len(trainer.history) == 3


@pytest.mark.slow
def test_cli_meta_trains_and_evaluates_mountain_car(tmp_path, capsys):
    out = tmp_path / "loss"
    common = ["--outer-steps", "2", "--inner-steps", "1", "--meta-batch", "2"]
    args = ["meta-train", "mountain-car", "--out", str(out), *common, "--hidden", "8"]
    assert main([*args, "--validate-every", "2", "--validation-size", "2"]) == 0
    assert LearnedLoss.from_pretrained(out).metadata["recipe"]["shaped"] is True
    png, report = tmp_path / "trajectories.png", tmp_path / "report.json"
    evaluate = ["evaluate", "mountain-car", f"shaped={out}", "--n-random", "2", "--steps", "1"]
    assert main([*evaluate, "--plot", str(png), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "task cost (tuned lr)" in printed and "shaped" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(report.read_text())[0]
    assert set(rows) == {"reference", "random"}
    assert set(rows["random"]) == {"shaped", "task cost (lr 0.1)", "task cost (tuned lr)"}
    assert rows["reference"]["task cost (lr 0.1)"]["success"] == 0.0


def test_a_loss_reading_side_inputs_the_tasks_do_not_offer_is_refused():
    from learnedloss import MetaTrainer
    from learnedloss.families.sine import SineTasks

    loss = MountainCarRecipe(hidden=(4,)).initial_loss()  # reads velocity and action
    trainer = MetaTrainer(loss, SineTasks(), meta_batch_size=2, progress=False, path="vmap")
    with pytest.raises(ValueError, match=r"reads the side inputs \['action', 'velocity'\].*"):
        trainer.fit(1)


def test_drive_scores_count_diverged_runs_as_failures_not_as_data():
    positions = torch.full((4, 6), -0.5)
    positions[0, 3] = GOAL_POSITION + 0.01  # reached
    positions[1] = math.nan  # diverged
    positions[2, 5] = math.inf  # diverged too
    score = DriveScore.of(positions, lr=0.5)
    assert score.success == 0.25 and score.diverged == 0.5
    kept = positions[[0, 3]]
    assert score.cost == pytest.approx(float(((kept - GOAL_POSITION) ** 2).mean()))
    assert score.rightmost == pytest.approx((GOAL_POSITION + 0.01 - 0.5) / 2)


def test_bundled_mountain_car_loss_does_what_its_card_says():
    """The card: trained 10 Adam steps at lr 0.1 with the bundled loss, policies reach the
    goal from the reference start and from random starts (most of them; here on policies and
    starts none of its evaluations drew), while with the task cost none do; and the loss's
    minimum over the action pushes along the velocity."""
    from learnedloss.families.mountain_car.recipe import REFERENCE_START

    loss = LearnedLoss.from_pretrained("mountain-car")
    per_step = LearnedLoss.from_pretrained("mountain-car", reduction="none")
    assert loss.metadata["recipe"]["shaped"] is True
    assert loss.config.side_inputs == ("velocity", "action")
    for start in (REFERENCE_START, None):
        learned = drive(loss, lr=0.1, n_tasks=10, start=start, seed=555)
        plain = drive(nn.MSELoss(), lr=0.1, n_tasks=10, start=start, seed=555)
        assert float(reached(learned).double().mean()) >= 0.5
        assert not bool(reached(plain).any())

    actions = torch.linspace(-3, 3, 601)
    for velocity in (-0.5, 0.5):  # in units of the speed limit
        values = per_step(
            torch.full_like(actions, -0.5),
            torch.full_like(actions, GOAL_POSITION),
            velocity=torch.full_like(actions, velocity),
            action=actions,
        )
        best = float(actions[values.argmin()])
        assert best * velocity > 0 and abs(best) > 1  # full force along the velocity
