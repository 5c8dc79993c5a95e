"""A point mass that moves toward a goal in the plane: the task family of model-free RL.

The set-up follows the 2-D navigation tasks of MAML (Finn et al., ICML 2017, sec. 5.3): the
agent observes its position, its action is a velocity command clipped to [-0.1, 0.1] per
coordinate, it starts at the origin, and goals are drawn uniformly from the square
[-0.5, 0.5]². The reward of a step is minus the distance to the goal after it. The goal is
not observed: a fresh policy has to find it from rewards alone.

The step is a torch function of batched tensors, so whole batches of episodes run at once
(and under ``torch.func.vmap``). Model-free training never differentiates through it: the
policy's gradient comes from the log-probabilities of the actions (docs/policy-gradient.md).
"""

from __future__ import annotations

import torch

MAX_STEP = 0.1
"""The largest velocity command per coordinate and step (MAML's 2-D navigation)."""
GOAL_RANGE = (-0.5, 0.5)
"""Goals are drawn uniformly from this range in each coordinate."""


class PointMass:
    """Planar point-mass dynamics: ``position' = position + clip(action, -0.1, 0.1)``.

    Examples:
        >>> import torch
        >>> from learnedloss.envs import PointMass
        >>> PointMass.step(torch.zeros(1, 2), torch.tensor([[0.5, -0.05]]))
        tensor([[ 0.1000, -0.0500]])
    """

    @staticmethod
    def step(position: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One transition.

        Shape:
            - position: ``(*, 2)``.
            - action: ``(*, 2)``, clipped to [-0.1, 0.1] per coordinate.
            - Output: ``(*, 2)``, the next position.
        """
        return position + action.clamp(-MAX_STEP, MAX_STEP)

    @staticmethod
    def reward(position: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Minus the distance to the goal.

        Shape:
            - position, goal: ``(*, 2)``.
            - Output: ``(*)``.
        """
        return -torch.linalg.vector_norm(position - goal, dim=-1)
