"""Pieces every policy-gradient task family shares: a Gaussian policy, episodes sampled
from given noise, returns, and the likelihood-ratio meta-objective.

Episodes are driven by noise the task supplies, so a task's inner loop is a deterministic
function of the loss (the PEGASUS trick, Ng & Jordan, UAI 2000): all losses train on the
same episodes, runs are reproducible, and evolution strategies compare perturbed losses
with common random numbers. Actions are sampled without gradient; the only path from a
policy's parameters to an episode's output is the log-probability of its actions, as in
any score-function (REINFORCE) estimator, so environments are never differentiated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from learnedloss.families.sine.tasks import mlp

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def reward_to_go(rewards: torch.Tensor) -> torch.Tensor:
    """``G_t = sum_{t' >= t} r_t'`` along the last dimension (undiscounted).

    Shape:
        - rewards: ``(*, H)``.
        - Output: ``(*, H)``.
    """
    return rewards.flip(-1).cumsum(-1).flip(-1)


class GaussianPolicy(nn.Module):
    """A Gaussian policy with a fixed standard deviation: mean ``scale * mlp(observation)``
    (a tanh MLP, ``hidden`` wide).

    Shape:
        - Input: ``(*, in_features)`` observations.
        - Output: ``(*, out_features)``, the mean action.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: tuple[int, ...] = (32,),
        std: float = 0.05,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.net = mlp((in_features, *hidden, out_features), activation="tanh")
        self.std, self.scale = std, scale

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(observation)

    def log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The log-density of ``action`` ``(*, A)`` under ``N(mean, std²)``, ``(*)``."""
        z = (action - mean) / self.std
        return (-0.5 * z**2 - math.log(self.std) - _LOG_SQRT_2PI).sum(-1)

    def sample(
        self, observation: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The action ``mean + std * noise`` (``noise`` standard normal, ``(*, A)``),
        detached, and its log-probability ``(*)``."""
        mean = self(observation)
        action = (mean + self.std * noise).detach()
        return action, self.log_prob(mean, action)


class CategoricalPolicy(nn.Module):
    """A policy over ``n_actions`` discrete actions: logits ``mlp(observation)`` (tanh).

    Shape:
        - Input: ``(*, in_features)`` observations.
        - Output: ``(*, n_actions)``, the logits.
    """

    def __init__(self, in_features: int, n_actions: int, hidden: tuple[int, ...] = (32,)):
        super().__init__()
        self.net = mlp((in_features, *hidden, n_actions), activation="tanh")

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation)

    def sample(
        self, observation: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The action ``argmax(logits + noise)`` as a float index ``(*, 1)``, with ``noise``
        standard Gumbel ``(*, n_actions)`` (the Gumbel-max trick: a sample of the softmax),
        and its log-probability ``(*)``."""
        log_probs = torch.log_softmax(self(observation), dim=-1)
        action = (log_probs + noise).argmax(dim=-1, keepdim=True).detach()
        return action.to(log_probs.dtype), log_probs.gather(-1, action).squeeze(-1)


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise, ``-log(-log U)``, for `CategoricalPolicy.sample`."""
    uniform = torch.rand(shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(uniform))


def sample_episodes(
    policy: GaussianPolicy | CategoricalPolicy,
    observe: Callable[[torch.Tensor], torch.Tensor],
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``policy`` from ``start`` ``(E, S)`` with ``noise`` ``(E, H, N)``: the action of
    step t is ``policy.sample(observe(state_t), noise_t)``, detached, and the state moves to
    ``step(state_t, action_t)``.

    Returns ``(states, actions, log_probs, next_states)``: the states the actions were
    taken in ``(E, H, S)``, the actions ``(E, H, A)``, their log-probabilities ``(E, H)``
    and the states they led to ``(E, H, S)``.
    """
    state, states, actions, log_probs = start, [start], [], []
    for t in range(noise.shape[-2]):
        action, log_prob = policy.sample(observe(state), noise[..., t, :])
        actions.append(action)
        log_probs.append(log_prob)
        state = step(state, action)
        states.append(state)
    states = torch.stack(states, -2)
    actions, log_probs = torch.stack(actions, -2), torch.stack(log_probs, -1)
    return states[..., :-1, :], actions, log_probs, states[..., 1:, :]


def policy_gradient_arguments(log_prob: torch.Tensor, rewards: torch.Tensor):
    """What a policy-gradient loss is called with, for a batch of episodes ``(E, H)``:
    ``(log_prob, advantage, {"reward_to_go", "time"})``. The advantage is the reward-to-go
    minus its mean over the episodes at the same step (a baseline); the time is t / H. All
    but the log-probability are detached."""
    returns = reward_to_go(rewards).detach()
    advantage = returns - returns.mean(dim=0, keepdim=True)
    horizon = returns.shape[-1]
    time = torch.arange(horizon, dtype=returns.dtype, device=returns.device) / horizon
    return log_prob, advantage, {"reward_to_go": returns, "time": time.expand_as(returns)}


def likelihood_ratio_cost(costs: torch.Tensor, log_prob: torch.Tensor) -> torch.Tensor:
    """The mean cost of a batch of episodes ``(E, H)``, with the likelihood-ratio gradient.

    Its value is ``costs.mean()``; its gradient with respect to the policy is that of
    ``mean(log_prob * (C - b))``, with C the cost-to-go and b its mean over episodes at the
    same step (a baseline): the score-function estimate of the gradient of the expected
    cost. Backpropagated through the inner loop's updates, it is a meta-gradient.
    """
    cost_to_go = reward_to_go(costs).detach()
    surrogate = (log_prob * (cost_to_go - cost_to_go.mean(dim=0, keepdim=True))).mean()
    return costs.mean() + surrogate - surrogate.detach()
