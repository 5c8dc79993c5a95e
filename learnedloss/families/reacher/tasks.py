"""Reacher goals through a learned dynamics model: ML3's model-based RL task.

Each task is a goal for the two-link reacher (`learnedloss.envs.reacher`), a start state
and a fresh policy. The inner loop trains the policy by backpropagating through roll-outs
of a learned `DynamicsModel` (never through MuJoCo): the loss scores the fingertip against
the goal at every step, and may read the joint velocities and the actions. The
meta-objective is the distance to the goal at the end of the roll-out and along it, plus a
small term on the final joint velocity (the arm should stop at the goal). Real performance
is measured by running the trained policies in MuJoCo (`learnedloss.families.reacher.recipe`).
"""

from __future__ import annotations

import torch
from torch import nn

from learnedloss.envs.reacher import HORIZON, fingertip, sample_goals, sample_starts
from learnedloss.families.sine.tasks import mlp
from learnedloss.tasks.base import TaskBatch, TaskFamily

VELOCITY_SCALE = 10.0
"""Joint velocities (rad/s) are divided by this before networks read them."""


def state_features(state: torch.Tensor) -> torch.Tensor:
    """(cos, sin) of both joint angles and the scaled joint velocities: ``(*, 4) -> (*, 6)``."""
    angles, velocities = state[..., :2], state[..., 2:]
    return torch.cat([angles.cos(), angles.sin(), velocities / VELOCITY_SCALE], dim=-1)


class DynamicsModel(nn.Module):
    """A learned model of the reacher: ``next_state = state + scale * mlp(features, action)``.

    The action is clipped to [-1, 1] as MuJoCo does. ``scale`` (a buffer) is the standard
    deviation of each state change in the data it was fitted on (`fit_dynamics`).

    Shape:
        - state: ``(*, 4)`` joint angles and velocities; action: ``(*, 2)``.
        - Output: ``(*, 4)``, the next state.
    """

    def __init__(self, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        self.net = mlp((8, *hidden, 4), activation="tanh")
        self.register_buffer("scale", torch.ones(4))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        features = torch.cat([state_features(state), action.clamp(-1.0, 1.0)], dim=-1)
        return state + self.scale * self.net(features)


def fit_dynamics(
    model: DynamicsModel,
    states: torch.Tensor,
    actions: torch.Tensor,
    next_states: torch.Tensor,
    *,
    steps: int = 2000,
    lr: float = 3e-3,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> float:
    """Fit ``model`` to transitions ``(N, 4), (N, 2), (N, 4)`` by Adam on the normalized
    state changes, in place; returns the final mean squared error over all transitions (in
    units of ``scale``). The model's parameters are left frozen (``requires_grad=False``),
    as the inner loop needs them."""
    generator = generator or torch.Generator().manual_seed(0)
    change = next_states - states
    with torch.no_grad():
        model.scale.copy_(change.std(dim=0).clamp_min(1e-6))
    model.requires_grad_(True)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=lr)
    for _ in range(steps):
        index = torch.randint(0, len(states), (batch_size,), generator=generator)
        error = (model(states[index], actions[index]) - next_states[index]) / model.scale
        optimizer.zero_grad()
        (error**2).mean().backward()
        optimizer.step()
    model.requires_grad_(False)
    with torch.no_grad():
        return float((((model(states, actions) - next_states) / model.scale) ** 2).mean())


class ReacherPolicy(nn.Module):
    """A deterministic policy: torques ``tanh(mlp(state features, goal / 0.2))``.

    Shape:
        - state: ``(*, 4)``; goal: ``(*, 2)``.
        - Output: ``(*, 2)``, in [-1, 1].
    """

    def __init__(self, hidden: tuple[int, ...] = (32,)) -> None:
        super().__init__()
        self.net = mlp((8, *hidden, 2), activation="tanh")
        with torch.no_grad():  # start near zero torque: a random fast spin is hard to undo
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.mul_(0.1)

    def forward(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([state_features(state), goal / 0.2], dim=-1)))


class _Unregistered:
    """Holds a module without registering it, so the inner loop does not train it and every
    roll-out sees the dynamics model's current weights (it is refitted in place)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module


class ModelRollout(nn.Module):
    """The model a reacher task trains: its policy rolled out through the dynamics model.

    Shape:
        - Input: ``(N, 6)``: start states (4) and goals (2).
        - Output: ``(N, horizon, 6)``: after each step the fingertip (2), the joint
          velocities (2) and the action taken (2).
    """

    def __init__(self, policy: ReacherPolicy, dynamics: DynamicsModel, horizon: int) -> None:
        super().__init__()
        self.policy = policy
        self._dynamics = _Unregistered(dynamics)
        self.horizon = horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state, goal = x[..., :4], x[..., 4:]
        steps = []
        for _ in range(self.horizon):
            action = self.policy(state, goal)
            state = self._dynamics.module(state, action)
            steps.append(torch.cat([fingertip(state[..., :2]), state[..., 2:], action], dim=-1))
        return torch.stack(steps, dim=-2)


class ReacherGoals(TaskFamily):
    """Reach a goal with a fresh policy, trained through a learned dynamics model.

    The loss is called with the fingertip positions as input and the goal as target (the
    plain task loss is ``nn.MSELoss()``, the mean squared distance over the roll-out), and
    offers the side inputs ``velocity`` (joint velocities / 10), ``action`` and ``time``
    (t / horizon) at each step.

    Args:
        dynamics: the learned model roll-outs go through; refitting it in place changes
            every later roll-out.
        horizon: steps per roll-out (gymnasium's 50).
        policy_hidden: the policy's hidden widths.
        velocity_weight: the weight of the mean squared final joint velocity in the
            meta-objective.
    """

    loss_kind = "regression"

    def __init__(
        self,
        dynamics: DynamicsModel,
        horizon: int = HORIZON,
        policy_hidden: tuple[int, ...] = (32,),
        velocity_weight: float = 1e-3,
    ) -> None:
        self.dynamics, self.horizon = dynamics, horizon
        self.policy_hidden, self.velocity_weight = tuple(policy_hidden), velocity_weight

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        goals = sample_goals(n_tasks, generator)
        starts = sample_starts(n_tasks, generator)
        x = torch.cat([starts, goals], dim=-1)[:, None]  # (T, 1, 6)
        y = goals[:, None, None, :].expand(n_tasks, 1, self.horizon, 2).contiguous()
        return TaskBatch(x, y, x, y)

    def make_model(self) -> nn.Module:
        return ModelRollout(ReacherPolicy(self.policy_hidden), self.dynamics, self.horizon)

    def loss_arguments(self, prediction, target, x):
        """The fingertip is the input and the goal the target; the joint velocities (/ 10),
        the actions and the time step (t / horizon) are offered as side inputs."""
        time = torch.arange(self.horizon, dtype=prediction.dtype, device=prediction.device)
        time = time / self.horizon
        side = {
            "velocity": prediction[..., 2:4] / VELOCITY_SCALE,
            "action": prediction[..., 4:],
            "time": time[:, None].expand(prediction[..., :2].shape),
        }
        return prediction[..., :2], target, side

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The plain task loss: the mean squared distance of the fingertip to the goal."""
        return ((prediction[..., :2] - target) ** 2).mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``final_distance``: the fingertip's distance to the goal after the last step (in
        the model)."""
        return {
            "final_distance": (prediction[..., -1, :2] - target[..., -1, :]).norm(dim=-1).mean()
        }

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        """Final distance + mean distance along the roll-out + ``velocity_weight`` times the
        mean squared final joint velocity."""
        distance = (prediction[..., :2] - target).norm(dim=-1)
        velocity = (prediction[..., -1, 2:4] ** 2).mean()
        return distance[..., -1].mean() + distance.mean() + self.velocity_weight * velocity

    def describe(self) -> dict:
        return {
            "family": "ReacherGoals",
            "horizon": self.horizon,
            "policy_hidden": list(self.policy_hidden),
            "velocity_weight": self.velocity_weight,
        }
