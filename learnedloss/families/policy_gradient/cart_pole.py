"""Cart-pole tasks: model-free policy gradient on gymnasium's classic-control cart-pole.

Each task is a pole half-length, drawn from a range around gymnasium's 0.5 and not observed
by the policy, and a fresh categorical policy (push left or right). Every episode starts from
its own state drawn as gymnasium's reset draws it and runs for at most ``horizon`` steps;
the steps after it ended (cart out of bounds, pole past 12 degrees) count for nothing. The
inner loop trains the policy with a policy-gradient loss on batches of its own episodes
(reward 1 per step survived, as gymnasium's); the meta-objective is the trained policy's
cost on fresh episodes (see `CartPoleTasks.objective`), with the likelihood-ratio gradient
(`learnedloss.families.policy_gradient.episodes`).
"""

from __future__ import annotations

import torch
from torch import nn

from learnedloss.envs.cart_pole import START_HIGH, CartPole
from learnedloss.families.policy_gradient.episodes import (
    CategoricalPolicy,
    gumbel_noise,
    likelihood_ratio_cost,
    policy_gradient_arguments,
    sample_episodes,
)
from learnedloss.tasks.base import TaskBatch, TaskFamily


class CartPoleRollout(nn.Module):
    """A batch of cart-pole episodes of ``policy``, driven by given starts, pole lengths and
    Gumbel noise (see `episodes.sample_episodes`). Episodes run for the
    whole horizon; which steps happened is for the task to read from the states.

    Shape:
        - Input: ``(E, 5 + 2H)``: each episode's start state (4), the pole's half-length
          (1), then Gumbel noise for H steps of 2 actions.
        - Output: ``(E, H, 6)``: the state each action was taken in (4), the action (1) and
          its log-probability (1).
    """

    def __init__(self, policy: CategoricalPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, length = x[..., :4], x[..., 4]
        noise = x[..., 5:].unflatten(-1, (-1, 2))
        states, actions, log_prob, _ = sample_episodes(
            self.policy,
            CartPole.observe,
            lambda state, action: CartPole.step(state, action, length),
            start,
            noise,
        )
        return torch.cat([states, actions, log_prob.unsqueeze(-1)], dim=-1)


def alive(prediction: torch.Tensor) -> torch.Tensor:
    """1 for the steps an episode took (no earlier state ended it), else 0: ``(*, H)``."""
    ended = CartPole.terminated(prediction[..., :4]).to(prediction.dtype).cumsum(-1) > 0
    return (~ended).to(prediction.dtype)


class CartPoleTasks(TaskFamily):
    """Balance a pole of unknown length with a fresh policy, by policy gradient.

    A loss is called per step of every episode as for `PointMassGoals`: the action's
    log-probability (0 for steps after the episode ended, so they pass no gradient), its
    advantage (reward-to-go minus its mean over the batch's episodes at that step), and the
    side inputs ``reward_to_go`` and ``time``.

    Args:
        episodes: episodes per policy update.
        query_episodes: fresh episodes that score a trained policy.
        horizon: the most steps per episode (gymnasium's time limit is 500).
        length: the range tasks draw the pole's half-length from.
        hidden: the policy's hidden widths.
    """

    loss_kind = "policy_gradient"

    def __init__(
        self,
        episodes: int = 16,
        query_episodes: int = 32,
        horizon: int = 100,
        length: tuple[float, float] = (0.3, 0.7),
        hidden: tuple[int, ...] = (32,),
    ) -> None:
        if min(episodes, query_episodes) < 2:
            raise ValueError("episodes and query_episodes must be at least 2 (for a baseline)")
        self.episodes, self.query_episodes, self.horizon = episodes, query_episodes, horizon
        self.length, self.hidden = tuple(length), tuple(hidden)

    def _episodes(self, length: torch.Tensor, count: int, generator) -> torch.Tensor:
        n_tasks = len(length)
        start = (torch.rand(n_tasks, count, 4, generator=generator) * 2 - 1) * START_HIGH
        noise = gumbel_noise((n_tasks, count, 2 * self.horizon), generator)
        return torch.cat([start, length[:, None, None].expand(n_tasks, count, 1), noise], -1)

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        lo, hi = self.length
        length = torch.rand(n_tasks, generator=generator) * (hi - lo) + lo
        x_train = self._episodes(length, self.episodes, generator)
        x_query = self._episodes(length, self.query_episodes, generator)
        no_target = lambda x: x.new_zeros((*x.shape[:-1], self.horizon))  # noqa: E731
        return TaskBatch(x_train, no_target(x_train), x_query, no_target(x_query))

    def make_model(self) -> nn.Module:
        return CartPoleRollout(CategoricalPolicy(4, 2, self.hidden))

    def loss_arguments(self, prediction, target, x):
        """``(log_prob, advantage, {"reward_to_go", "time"})`` for each step of each episode
        (reward 1 per step taken); the targets are unused."""
        taken = alive(prediction)
        return policy_gradient_arguments(prediction[..., 5] * taken, taken)

    def _step_costs(self, taken: torch.Tensor) -> torch.Tensor:
        """Per-step costs whose mean is `objective`, from the `alive` mask:
        ``(1 + H (1 - alive)) / (H + 1)``."""
        return (1 + self.horizon * (1 - taken)) / (self.horizon + 1)

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The cost: 1 minus the steps survived over H + 1, averaged over episodes. A policy
        that survives the whole horizon scores 1 / (H + 1), not 0, so geometric means stay
        finite; one that falls at once scores about 1."""
        return self._step_costs(alive(prediction)).mean()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``fell``: the fraction of episodes that ended before the horizon."""
        return {"fell": 1.0 - alive(prediction)[..., -1].mean()}

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        """The cost, with the likelihood-ratio gradient."""
        taken = alive(prediction)
        return likelihood_ratio_cost(self._step_costs(taken), prediction[..., 5] * taken)

    def describe(self) -> dict:
        return {
            "family": "CartPoleTasks",
            "episodes": self.episodes,
            "query_episodes": self.query_episodes,
            "horizon": self.horizon,
            "length": list(self.length),
            "hidden": list(self.hidden),
        }
