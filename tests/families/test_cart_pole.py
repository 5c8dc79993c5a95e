"""Cart-pole: the simulator against gymnasium, categorical sampling, and the tasks."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from torch.distributions import Categorical

from learnedloss.envs import CartPole
from learnedloss.evaluation.baselines import reinforce, reinforce_from_returns
from learnedloss.evaluation.protocol import held_out_draw, train_curves
from learnedloss.families.policy_gradient.cart_pole import CartPoleTasks, alive
from learnedloss.families.policy_gradient.episodes import CategoricalPolicy, gumbel_noise
from learnedloss.families.policy_gradient.recipe import PolicyGradientRecipe
from learnedloss.families.recipe import meta_train


@pytest.mark.parametrize("length", [0.5, 0.3])
def test_every_transition_and_ending_matches_gymnasium(length):
    env = gymnasium.make("CartPole-v1").unwrapped
    env.length, env.polemass_length = length, env.masspole * length
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    endings = 0
    for i in range(400):
        state, action = np.array(env.state, dtype=np.float64), int(rng.integers(2))
        _, _, terminated, _, _ = env.step(action)
        ours = CartPole.step(torch.tensor(state), torch.tensor([float(action)]), length)
        np.testing.assert_allclose(ours.numpy(), np.array(env.state), rtol=0, atol=1e-12)
        assert bool(CartPole.terminated(ours)) == terminated
        if terminated:
            endings += 1
            env.reset(seed=i)
    assert endings > 5  # random pushes topple the pole: the ending test is exercised


def test_categorical_sampling_follows_the_softmax():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, hidden=(8,))
    observation = torch.randn(1, 4).expand(20000, 4)
    action, log_prob = policy.sample(observation, gumbel_noise((20000, 2), torch.Generator()))
    probabilities = torch.softmax(policy(observation[:1]), -1)[0]
    assert action.mean().item() == pytest.approx(probabilities[1].item(), abs=0.015)
    expected = Categorical(logits=policy(observation)).log_prob(action[:, 0])
    torch.testing.assert_close(log_prob, expected)


def test_steps_after_an_ending_count_for_nothing():
    tasks = CartPoleTasks(episodes=3, horizon=60, hidden=(4,))
    batch = tasks.sample(1, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    prediction = tasks.make_model()(batch.x_train[0])
    taken = alive(prediction)
    assert taken[:, 0].eq(1).all() and (taken[:, 1:] <= taken[:, :-1]).all()  # 1s, then 0s
    assert taken[:, -1].eq(0).any()  # an untrained policy drops the pole within 60 steps
    log_prob, _, side = tasks.loss_arguments(prediction, batch.y_train[0], None)
    assert log_prob[taken == 0].eq(0).all() and log_prob[taken == 1].ne(0).all()
    torch.testing.assert_close(side["reward_to_go"][:, 0], taken.sum(-1))
    survived = taken.sum(-1).mean()
    assert tasks.objective(prediction, None).item() == pytest.approx(1 - survived / 61)


def test_reinforce_learns_to_balance_and_the_baseline_helps():
    tasks = CartPoleTasks(hidden=(16,))
    template, batch, params = held_out_draw(tasks, 12, 1, seed=5)

    def final_cost(loss, lr):
        return train_curves(loss, tasks, template, batch, params, lr, 10, every=10)[-1].mean()

    start = train_curves(reinforce, tasks, template, batch, params, 0.4, 10, every=10)[0].mean()
    with_baseline = final_cost(reinforce, 0.4)
    without = min(final_cost(reinforce_from_returns, lr) for lr in (0.05, 0.1, 0.2))
    assert with_baseline < 0.3 * start and with_baseline < without


def test_meta_train_a_cart_pole_loss():
    recipe = PolicyGradientRecipe(
        env="cart-pole", episodes=3, query_episodes=3, horizon=30, outer_steps=2,
        inner_steps=2, meta_batch_size=2, es_pairs=1, validate_every=1, validation_size=2,
        hidden=(4,),
    )  # fmt: skip
    loss, _ = meta_train(recipe, family="policy-gradient", progress=False)
    assert loss.metadata["recipe"]["env"] == "cart-pole"
    assert recipe.tasks().describe()["family"] == "CartPoleTasks"
    with pytest.raises(ValueError, match="env must be one of"):
        PolicyGradientRecipe(env="pendulum").tasks()


def test_meta_objective_is_the_cost_with_a_gradient_through_taken_steps_only():
    tasks = CartPoleTasks(episodes=3, query_episodes=4, horizon=40, hidden=(4,))
    batch = tasks.sample(1, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = tasks.make_model()
    prediction = model(batch.x_query[0])
    value = tasks.meta_objective({}, prediction, batch.y_query[0], {})
    assert value.item() == pytest.approx(tasks.objective(prediction, None).item())
    grads = torch.autograd.grad(value, list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and grads[0].abs().sum() > 0
