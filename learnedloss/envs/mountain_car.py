"""A differentiable mountain car: the standard dynamics, batched, in torch.

The dynamics and constants are those of gymnasium's ``MountainCarContinuous-v0``
(gymnasium/envs/classic_control/continuous_mountain_car.py), itself after Moore (1990) and
Sutton & Barto: with force ``f = clip(a, -1, 1)``,

    v' = clip(v + 0.0015 f - 0.0025 cos(3 p), -0.07, 0.07)
    p' = clip(p + v', -1.2, 0.6),  and v' = 0 when p' hits -1.2 moving left.

``tests/families/test_mountain_car.py`` checks every transition against gymnasium for the same
actions. The only addition is that the step is a torch function of batched tensors, so a
roll-out can be differentiated with respect to the policy that chose the actions (the clips
pass no gradient while they bind, as a clamp does).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MIN_POSITION, MAX_POSITION = -1.2, 0.6
MAX_SPEED = 0.07
POWER = 0.0015
GRAVITY = 0.0025
GOAL_POSITION = 0.5
"""Where the car counts as arrived: discrete ``MountainCar-v0``'s goal, as in ML3's reference
(gymnasium's continuous version ends at 0.45)."""
START_RANGE = (-0.6, -0.4)
"""gymnasium's reset draws the start position from this range, with zero velocity."""


class MountainCar:
    """The mountain-car dynamics as a batched, differentiable torch function.

    Examples:
        >>> import torch
        >>> from learnedloss.envs import MountainCar
        >>> state = torch.tensor([[-0.55, 0.0]])
        >>> MountainCar.step(state, torch.tensor([1.0])).shape
        torch.Size([1, 2])
    """

    @staticmethod
    def step(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One transition.

        Shape:
            - state: ``(*, 2)``, (position, velocity).
            - action: ``(*)``, the force; clipped to [-1, 1].
            - Output: ``(*, 2)``, the next state.
        """
        position, velocity = state.unbind(-1)
        force = action.clamp(-1.0, 1.0)
        velocity = velocity + force * POWER - GRAVITY * torch.cos(3 * position)
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        at_wall = (position <= MIN_POSITION) & (velocity < 0)
        velocity = torch.where(at_wall, torch.zeros_like(velocity), velocity)
        return torch.stack([position, velocity], dim=-1)

    @classmethod
    def rollout(
        cls,
        policy: Callable[[torch.Tensor], torch.Tensor],
        start: torch.Tensor,
        horizon: int,
    ) -> torch.Tensor:
        """Roll ``policy`` (state ``(*, 2)`` -> action ``(*)``) out from ``start``.

        Returns ``(*, horizon, 3)``: the (position, velocity) reached after each step and
        the action that led there.

        Shape:
            - start: ``(*, 2)``.
            - Output: ``(*, horizon, 3)``.
        """
        state, steps = start, []
        for _ in range(horizon):
            action = policy(state)
            state = cls.step(state, action)
            steps.append(torch.cat([state, action.unsqueeze(-1)], dim=-1))
        return torch.stack(steps, dim=-2)
