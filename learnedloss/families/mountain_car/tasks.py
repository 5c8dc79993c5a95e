"""Mountain-car tasks: ML3's exploration example (Bechtle et al., ICPR 2021, sec. V-C).

A small policy drives the car of `learnedloss.envs.MountainCar` for a fixed horizon from a
start in the valley. The task cost is the mean squared distance of the car's position to the
goal over the roll-out, ``MSELoss(positions, goal)``. Descending it makes the policy push
right, up a slope it cannot climb: the car stays in the valley. Reaching the goal needs a
detour, first up the left slope to gather speed. With ``shaped=True`` the meta-objective
asks for that detour: the distance to a waypoint on the left slope over the first part of
the roll-out, then the distance to the goal. That waypoint is information only
meta-training has; the learned loss sees, at every step, the position and the goal (its
input and target, and their difference), the velocity and the action.

Settings after ML3's reference code: goal position 0.5, start (-0.55, 0), waypoint at
position -0.947. Its horizon of 35 steps belongs to its own dynamics (a time step of 0.1 s).
With the standard dynamics used here the quickest way up takes about 68 steps, and pushing
along the velocity (a policy a gradient step can find) about 110, so the horizon is 200
steps, the time limit of gymnasium's ``MountainCar-v0``, and the waypoint counts over the
first 80.
"""

from __future__ import annotations

import torch
from torch import nn

from learnedloss.envs.mountain_car import GOAL_POSITION, MAX_SPEED, START_RANGE, MountainCar
from learnedloss.tasks.base import TaskBatch, TaskFamily

WAYPOINT_POSITION = -0.947
"""The intermediate point on the left slope, from ML3's reference code."""


def reached(positions: torch.Tensor) -> torch.Tensor:
    """Whether each roll-out's positions ``(*, horizon)`` got to the goal; a roll-out with a
    non-finite position (a diverged policy) did not."""
    return (positions >= GOAL_POSITION - 1e-6).any(dim=-1) & positions.isfinite().all(dim=-1)


class MountainCarPolicy(nn.Module):
    """A small policy: (position, velocity) -> force in [-1, 1].

    The state is centred and scaled (position about the valley, velocity by the speed
    limit) before a ``2 -> hidden -> 1`` tanh network (``hidden=0``: a linear map), whose
    output goes through ``tanh``.

    Shape:
        - Input: ``(*, 2)``.
        - Output: ``(*)``.
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(2, 1)
        self.register_buffer("_center", torch.tensor([-0.3, 0.0]), persistent=False)
        self.register_buffer("_scale", torch.tensor([0.9, MAX_SPEED]), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net((state - self._center) / self._scale)).squeeze(-1)


class PolicyRollout(nn.Module):
    """The model a mountain-car task trains: ``policy`` rolled out from start states.

    Shape:
        - Input: ``(N, 2)`` start states.
        - Output: ``(N, horizon, 3)``: position, velocity and action at each step.
    """

    def __init__(self, policy: nn.Module, horizon: int) -> None:
        super().__init__()
        self.policy = policy
        self.horizon = horizon

    def forward(self, starts: torch.Tensor) -> torch.Tensor:
        return MountainCar.rollout(self.policy, starts, self.horizon)


class MountainCarTasks(TaskFamily):
    """Drive a mountain car to the goal; each task is one start state and a fresh policy.

    The inner loop trains the policy on roll-outs from the task's start; the meta-objective
    scores the trained policy's roll-out from the same start.

    Args:
        shaped: meta-objective with the waypoint (see the module docs); otherwise the task
            cost.
        horizon: steps per roll-out.
        waypoint_steps: the first steps, scored by the distance to the waypoint when shaped.
        start: a fixed start position, or ``None`` to draw it from gymnasium's reset range
            (-0.6, -0.4); the velocity starts at 0.
        hidden: width of the policy's hidden layer.
    """

    loss_kind = "regression"

    def __init__(
        self,
        shaped: bool = True,
        horizon: int = 200,
        waypoint_steps: int = 80,
        start: float | None = None,
        hidden: int = 16,
    ) -> None:
        if not 0 < waypoint_steps < horizon:
            raise ValueError(
                f"waypoint_steps must lie between 0 and the horizon ({horizon}), "
                f"got {waypoint_steps}"
            )
        self.shaped, self.horizon, self.waypoint_steps = shaped, horizon, waypoint_steps
        self.start, self.hidden = start, hidden

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        if self.start is None:
            lo, hi = START_RANGE
            position = torch.rand(n_tasks, generator=generator) * (hi - lo) + lo
        else:
            position = torch.full((n_tasks,), float(self.start))
        starts = torch.stack([position, torch.zeros(n_tasks)], dim=-1)[:, None]  # (T, 1, 2)
        goal = torch.full((n_tasks, 1, self.horizon), GOAL_POSITION)
        return TaskBatch(starts, goal, starts, goal)

    def make_model(self) -> nn.Module:
        return PolicyRollout(MountainCarPolicy(self.hidden), self.horizon)

    def loss_arguments(self, prediction, target, x):
        """The position is the loss's input and the goal its target; it may also read the
        ``velocity`` (in units of the speed limit) and the ``action`` at each step.

        The velocity is passed detached: the loss reads it as the policy reads its
        observation, and its gradient reaches the policy through the positions (by way of
        the dynamics) and the actions. Were the velocity differentiable too, a loss that
        asks for actions along the velocity, the way out of the valley, would be lowered
        most easily by slowing the car down.
        """
        position, velocity, action = prediction.unbind(-1)
        return position, target, {"velocity": velocity.detach() / MAX_SPEED, "action": action}

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The task cost: mean squared distance of the position to the goal."""
        return ((prediction[..., 0] - target) ** 2).mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``missed``: 1 if the car never reached the goal in the roll-out, else 0."""
        return {"missed": 1.0 - reached(prediction[..., 0]).to(prediction.dtype).mean()}

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        if not self.shaped:
            return self.objective(prediction, target)
        position = prediction[..., 0]
        k = self.waypoint_steps
        detour = ((position[..., :k] - WAYPOINT_POSITION) ** 2).mean()
        return detour + ((position[..., k:] - target[..., k:]) ** 2).mean()

    def describe(self) -> dict:
        return {
            "family": "MountainCarTasks",
            "shaped": self.shaped,
            "horizon": self.horizon,
            "waypoint_steps": self.waypoint_steps,
            "start": self.start,
            "hidden": self.hidden,
        }
