"""The two-link planar reacher: gymnasium's MuJoCo ``Reacher-v5``, and its geometry in torch.

The real simulator is MuJoCo through gymnasium (``pip install "learnedloss[rl]"``): a
two-joint arm in the plane, links of 0.1 and 0.11, torques in [-1, 1] (gear 200), joint
damping 1, a time step of 0.02 s (two MuJoCo steps of 0.01 s), 50 steps per episode.
`MujocoReacher` sets its state and rolls policies out in it; the model-based recipe
(`learnedloss.families.reacher.recipe`) learns a dynamics model from those roll-outs and never
differentiates MuJoCo. `fingertip` is the arm's forward kinematics in torch, checked
against MuJoCo in ``tests/families/test_reacher.py``.

The start and goal distributions are gymnasium's ``reset``: joint angles uniform in
[-0.1, 0.1], joint velocities in [-0.005, 0.005], goals uniform in [-0.2, 0.2]² with norm
below 0.2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

LINK_LENGTHS = (0.1, 0.11)
"""The lengths of the upper link and the lower link (to the fingertip), from Reacher's XML."""
GOAL_RADIUS = 0.2
HORIZON = 50
"""gymnasium's time limit for ``Reacher-v5``."""


def fingertip(angles: torch.Tensor) -> torch.Tensor:
    """The fingertip's position for joint angles ``(*, 2)``; returns ``(*, 2)``."""
    first, second = angles.unbind(-1)
    l1, l2 = LINK_LENGTHS
    x = l1 * torch.cos(first) + l2 * torch.cos(first + second)
    y = l1 * torch.sin(first) + l2 * torch.sin(first + second)
    return torch.stack([x, y], dim=-1)


def sample_goals(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` goals ``(n, 2)`` from gymnasium's distribution (uniform in the disk of radius
    0.2, by rejection from the square as gymnasium does)."""
    goals = torch.empty(0, 2)
    while len(goals) < n:
        candidates = (torch.rand(2 * n, 2, generator=generator) * 2 - 1) * GOAL_RADIUS
        goals = torch.cat([goals, candidates[candidates.norm(dim=-1) < GOAL_RADIUS]])
    return goals[:n]


def sample_starts(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` start states ``(n, 4)``: joint angles and joint velocities, as gymnasium's
    reset draws them."""
    angles = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.1
    velocities = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.005
    return torch.cat([angles, velocities], dim=-1)


Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``policy(state (4,), goal (2,)) -> action (2,)``."""


class MujocoReacher:
    """gymnasium's ``Reacher-v5``, driven from given states and goals.

    Raises:
        ImportError: gymnasium or MuJoCo is not installed (``pip install "learnedloss[rl]"``).
    """

    def __init__(self) -> None:
        try:
            import gymnasium
        except ImportError as err:  # pragma: no cover - the rl extra is in dev
            raise ImportError(
                'the reacher needs gymnasium with MuJoCo: pip install "learnedloss[rl]"'
            ) from err
        self._env = gymnasium.make("Reacher-v5").unwrapped
        self._env.reset(seed=0)

    def step(self, state: np.ndarray, goal: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The state ``(4,)`` after applying ``action`` ``(2,)`` for one step from ``state``."""
        self._set(state, goal)
        self._env.step(np.asarray(action, dtype=np.float64))
        return self._state()

    def rollout(
        self, policy: Policy, start: torch.Tensor, goal: torch.Tensor, horizon: int = HORIZON
    ) -> dict[str, torch.Tensor]:
        """Run ``policy`` from ``start`` ``(4,)`` towards ``goal`` ``(2,)``.

        Returns ``states`` ``(horizon + 1, 4)`` (the start first), ``actions``
        ``(horizon, 2)`` (clipped to [-1, 1], as MuJoCo applies them) and ``fingertip``
        ``(horizon, 2)``, the fingertip after each step, all float32.
        """
        self._set(start.numpy(), goal.numpy())
        states, actions = [self._state()], []
        with torch.no_grad():
            for _ in range(horizon):
                state = torch.as_tensor(states[-1], dtype=torch.float32)
                action = policy(state, goal).clamp(-1.0, 1.0).numpy().astype(np.float64)
                self._env.step(action)
                actions.append(action)
                states.append(self._state())
        states_t = torch.as_tensor(np.array(states), dtype=torch.float32)
        return {
            "states": states_t,
            "actions": torch.as_tensor(np.array(actions), dtype=torch.float32),
            "fingertip": fingertip(states_t[1:, :2]),
        }

    def _set(self, state: np.ndarray, goal: np.ndarray) -> None:
        qpos = np.concatenate([state[:2], goal]).astype(np.float64)
        qvel = np.concatenate([state[2:], np.zeros(2)]).astype(np.float64)
        self._env.set_state(qpos, qvel)

    def _state(self) -> np.ndarray:
        data = self._env.data
        return np.concatenate([data.qpos[:2], data.qvel[:2]]).copy()
