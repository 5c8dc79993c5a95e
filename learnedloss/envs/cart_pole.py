"""The cart-pole of gymnasium's classic control (``CartPole-v1``), batched in torch.

The dynamics and constants are gymnasium's (gymnasium/envs/classic_control/cartpole.py,
after Barto, Sutton & Anderson, 1983): a cart of mass 1 pushed left or right with a force
of 10, a pole of mass 0.1 and half-length ``length`` (0.5 in gymnasium), gravity 9.8, and
explicit Euler steps of 0.02 s. An episode ends when the cart leaves [-2.4, 2.4] or the
pole leans more than 12 degrees; the reward is 1 for every step taken until then.
``tests/families/test_cart_pole.py`` checks transitions and terminations against gymnasium.
"""

from __future__ import annotations

import math

import torch

GRAVITY, CART_MASS, POLE_MASS, FORCE, TAU = 9.8, 1.0, 0.1, 10.0, 0.02
X_LIMIT = 2.4
ANGLE_LIMIT = 12 * 2 * math.pi / 360
START_HIGH = 0.05
"""gymnasium's reset draws every state variable uniformly from ± this."""


class CartPole:
    """Cart-pole dynamics as batched torch functions; the state is (x, ẋ, θ, θ̇).

    Examples:
        >>> import torch
        >>> from learnedloss.envs import CartPole
        >>> CartPole.step(torch.zeros(1, 4), torch.ones(1, 1), 0.5).shape
        torch.Size([1, 4])
    """

    @staticmethod
    def step(state: torch.Tensor, action: torch.Tensor, length=0.5) -> torch.Tensor:
        """One transition: ``action`` ``(*, 1)`` is 1 (push right) or 0 (push left);
        ``length`` is the pole's half-length, a float or ``(*)``.

        Shape:
            - state: ``(*, 4)``; action: ``(*, 1)``.
            - Output: ``(*, 4)``.
        """
        x, velocity, angle, spin = state.unbind(-1)
        force = (2 * action[..., 0] - 1) * FORCE
        cos, sin = torch.cos(angle), torch.sin(angle)
        total = CART_MASS + POLE_MASS
        pole_moment = POLE_MASS * length
        temp = (force + pole_moment * spin**2 * sin) / total
        angular = (GRAVITY * sin - cos * temp) / (length * (4.0 / 3.0 - POLE_MASS * cos**2 / total))
        linear = temp - pole_moment * angular * cos / total
        return torch.stack(
            [x + TAU * velocity, velocity + TAU * linear, angle + TAU * spin, spin + TAU * angular],
            dim=-1,
        )

    @staticmethod
    def terminated(state: torch.Tensor) -> torch.Tensor:
        """Whether ``state`` ``(*, 4)`` ends an episode, ``(*)`` bool."""
        return (state[..., 0].abs() > X_LIMIT) | (state[..., 2].abs() > ANGLE_LIMIT)

    @staticmethod
    def observe(state: torch.Tensor) -> torch.Tensor:
        """The state scaled by its limits (x / 2.4, θ / 12°; velocities as they are)."""
        scale = state.new_tensor([1 / X_LIMIT, 1.0, 1 / ANGLE_LIMIT, 1.0])
        return state * scale
