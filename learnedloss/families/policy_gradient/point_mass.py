"""Point-mass goals: model-free policy-gradient tasks for meta-training a REINFORCE loss.

Each task is a goal for `learnedloss.envs.PointMass` that the policy does not observe, and
a fresh Gaussian policy. The inner loop trains the policy with a policy-gradient loss on
batches of its own episodes; the meta-objective is the cost of the trained policy (the mean
distance to the goal over fresh episodes), with the likelihood-ratio gradient
(docs/policy-gradient.md has the derivation).

The model a task trains is `EpisodeRollout`: its input is the exploration noise of a batch
of episodes, its output their positions, actions and log-probabilities. Fixing the noise of
the inner loop's episodes per task (the same noise at every update) makes the inner loop a
deterministic function of the loss, so every loss is trained on the same episodes, runs
are reproducible, and evolution strategies use common random numbers (the PEGASUS trick,
Ng & Jordan, UAI 2000). The meta-objective scores other episodes, with noise the inner loop
never saw.
"""

from __future__ import annotations

import torch
from torch import nn

from learnedloss.envs.point_mass import GOAL_RANGE, MAX_STEP, PointMass
from learnedloss.families.policy_gradient.episodes import (
    GaussianPolicy,
    likelihood_ratio_cost,
    policy_gradient_arguments,
    sample_episodes,
)
from learnedloss.tasks.base import TaskBatch, TaskFamily


class EpisodeRollout(nn.Module):
    """A batch of point-mass episodes of ``policy`` from the origin, driven by given noise
    (see `learnedloss.families.policy_gradient.episodes.sample_episodes`).

    The policy observes the position / 0.5; a unit output of its network is the largest step
    (its ``scale`` is 0.1).

    Shape:
        - Input: ``(E, H, 2)``, standard normal noise for E episodes of H steps.
        - Output: ``(E, H, 5)``: the position after each step (2), the action (2) and its
          log-probability (1).
    """

    def __init__(self, policy: GaussianPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        start = noise.new_zeros((*noise.shape[:-2], 2))
        _, actions, log_prob, positions = sample_episodes(
            self.policy, lambda position: position / 0.5, PointMass.step, start, noise
        )
        return torch.cat([positions, actions, log_prob.unsqueeze(-1)], dim=-1)


class PointMassGoals(TaskFamily):
    """Reach an unobserved goal with a fresh Gaussian policy, by policy gradient.

    A loss for these tasks is called per step of every episode with the action's
    log-probability (its input) and its advantage (its target): the reward-to-go minus its
    mean over the batch's episodes at the same step, a baseline. It may read the side
    inputs ``reward_to_go`` (the return from that step on) and ``time`` (t / H, in
    [0, 1)). `learnedloss.evaluation.baselines.reinforce` is REINFORCE with that baseline,
    `baselines.reinforce_from_returns` REINFORCE without it; a learned loss is
    a ``policy_gradient`` `LearnedLoss`.

    Args:
        episodes: episodes per policy update (the inner loop's batch).
        query_episodes: fresh episodes the meta-objective and `learnedloss.evaluate` score.
        horizon: steps per episode.
        hidden: the policy's hidden widths.
        std: the policy's exploration noise (fixed).
    """

    loss_kind = "policy_gradient"

    def __init__(
        self,
        episodes: int = 16,
        query_episodes: int = 32,
        horizon: int = 20,
        hidden: tuple[int, ...] = (32,),
        std: float = 0.05,
    ) -> None:
        for name, value in (("episodes", episodes), ("query_episodes", query_episodes)):
            if value < 2:
                raise ValueError(f"{name} must be at least 2 (a baseline needs two), got {value}")
        if horizon < 1:
            raise ValueError(f"horizon must be positive, got {horizon}")
        self.episodes, self.query_episodes, self.horizon = episodes, query_episodes, horizon
        self.hidden, self.std = tuple(hidden), std

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        lo, hi = GOAL_RANGE
        goal = torch.rand(n_tasks, 1, 1, 2, generator=generator) * (hi - lo) + lo
        shape = (n_tasks, self.episodes, self.horizon, 2)
        noise_train = torch.randn(shape, generator=generator)
        noise_query = torch.randn((n_tasks, self.query_episodes, *shape[2:]), generator=generator)
        return TaskBatch(
            noise_train,
            goal.expand(shape).contiguous(),
            noise_query,
            goal.expand(noise_query.shape).contiguous(),
        )

    def make_model(self) -> nn.Module:
        return EpisodeRollout(GaussianPolicy(2, 2, self.hidden, self.std, scale=MAX_STEP))

    def loss_arguments(self, prediction, target, x):
        """``(log_prob, advantage, {"reward_to_go", "time"})`` for each step of each
        episode (`learnedloss.families.policy_gradient.episodes.policy_gradient_arguments`)."""
        rewards = PointMass.reward(prediction[..., :2], target)
        return policy_gradient_arguments(prediction[..., 4], rewards)

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The cost: the mean distance to the goal over every step of every episode (minus
        the mean reward)."""
        return -PointMass.reward(prediction[..., :2], target).mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``final_distance``: the mean distance to the goal after the last step."""
        return {
            "final_distance": -PointMass.reward(prediction[..., -1, :2], target[..., -1, :]).mean()
        }

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        """The cost, with the likelihood-ratio gradient
        (`learnedloss.families.policy_gradient.episodes.likelihood_ratio_cost`)."""
        cost = -PointMass.reward(prediction[..., :2], target)
        return likelihood_ratio_cost(cost, prediction[..., 4])

    def describe(self) -> dict:
        return {
            "family": "PointMassGoals",
            "episodes": self.episodes,
            "query_episodes": self.query_episodes,
            "horizon": self.horizon,
            "hidden": list(self.hidden),
            "std": self.std,
        }
