"""The model-free RL parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train policy-gradient ...``: meta-train a drop-in for the REINFORCE
  surrogate on point-mass goals.
- ``learnedloss evaluate LOSS`` of a policy-gradient loss: held-out goals against REINFORCE
  with and without a baseline (``evaluate`` dispatches here by the loss's kind).
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    add_meta_gradient_arguments,
    add_schedule_arguments,
    evaluate_at_tuned_lrs,
    run_recipe,
)
from learnedloss.families.policy_gradient.recipe import (
    ENVS,
    PolicyGradientRecipe,
    evaluate_policy_gradient,
    meta_train_policy_gradient,
    recipe_of,
)
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PolicyGradientRecipe()
    add = parser.add_argument
    add("--env", choices=list(ENVS), default=defaults.env, help="the task family")
    add("--episodes", type=int, default=defaults.episodes, help="episodes per policy update")
    add(
        "--query-episodes",
        type=int,
        default=defaults.query_episodes,
        help="fresh episodes that score a trained policy",
    )
    add(
        "--horizon",
        type=int,
        default=defaults.horizon,
        help="steps per episode (default: 20 for the point mass, at most 100 for the cart-pole)",
    )
    add("--policy-hidden", type=int, nargs="+", default=list(defaults.policy_hidden))
    add(
        "--policy-std",
        type=float,
        default=defaults.policy_std,
        help="the point-mass policy's exploration noise",
    )
    add("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    add(
        "--inputs",
        nargs="+",
        default=list(defaults.inputs),
        help="per-step features the loss network reads: log_prob, advantage, and the side "
        "inputs reward_to_go and time",
    )
    add_meta_gradient_arguments(parser, defaults)
    add_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, PolicyGradientRecipe, meta_train_policy_gradient, max_seconds)


def run_evaluate(args: argparse.Namespace, loss: LearnedLoss) -> list[dict]:
    """Evaluate a policy-gradient loss on held-out tasks of the family and settings it was
    meta-trained with; prints the tables and returns one result dict per seed."""
    recipe = recipe_of(loss)
    tasks = recipe.tasks()
    steps = args.steps if args.steps is not None else recipe.inner_steps
    return evaluate_at_tuned_lrs(
        args,
        evaluate_policy_gradient,
        loss,
        tasks,
        steps=steps,
        default_lr_range=(1e-3, 2.0),
        tuned_label=f"{recipe.env}, {steps} policy updates, each loss at its own tuned lr",
        plot_title=f"held-out {recipe.env} tasks",
    )
