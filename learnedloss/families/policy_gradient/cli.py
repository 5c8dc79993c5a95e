"""The model-free RL parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train policy-gradient ...``: meta-train a drop-in for the REINFORCE
  surrogate on point-mass goals or cart-poles.
- ``learnedloss evaluate policy-gradient LOSS [LOSS ...]``: held-out tasks against REINFORCE
  with and without a baseline.
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    add_hidden_argument,
    add_meta_gradient_arguments,
    add_plot_argument,
    add_schedule_arguments,
    add_tuned_lr_arguments,
    evaluate_at_tuned_lrs,
    positive_float,
    positive_int,
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
    """The `PolicyGradientRecipe` options, with its values as defaults."""
    defaults = PolicyGradientRecipe()
    add = parser.add_argument
    add(
        "--env",
        choices=list(ENVS),
        default=defaults.env,
        help="the task family (default: %(default)s)",
    )
    add(
        "--episodes",
        type=positive_int,
        default=defaults.episodes,
        help="episodes per policy update (default: %(default)s)",
    )
    add(
        "--query-episodes",
        type=positive_int,
        default=defaults.query_episodes,
        help="fresh episodes that score a trained policy (default: %(default)s)",
    )
    add(
        "--horizon",
        type=positive_int,
        default=defaults.horizon,
        help="steps per episode (default: 20 for the point mass, at most 100 for the cart-pole)",
    )
    add(
        "--policy-hidden",
        type=positive_int,
        nargs="+",
        default=list(defaults.policy_hidden),
        help="the policy network's hidden sizes (default: %(default)s)",
    )
    add(
        "--policy-std",
        type=positive_float,
        default=defaults.policy_std,
        help="the point-mass policy's exploration noise (default: %(default)s)",
    )
    add_hidden_argument(parser, defaults.hidden)
    add(
        "--inputs",
        nargs="+",
        default=list(defaults.inputs),
        help="per-step features the loss network reads: log_prob, advantage, and the side "
        "inputs reward_to_go and time (default: %(default)s)",
    )
    add_meta_gradient_arguments(parser, defaults)
    add_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, PolicyGradientRecipe, meta_train_policy_gradient, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The protocol of ``learnedloss evaluate policy-gradient``; the tasks are the family and
    settings the first loss was meta-trained with."""
    add_tuned_lr_arguments(
        parser,
        steps_help="policy updates per policy (default: the meta-training horizon)",
        lr_range_help="the tuning grid's bounds (default: 1e-3 2)",
        reference="REINFORCE with a baseline",
    )
    add_plot_argument(parser, "write the held-out curves of seed 0 to this PNG")


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Evaluate policy-gradient losses on held-out tasks of the family and settings the first
    loss was meta-trained with; prints the tables and returns one result dict per seed."""
    recipe = recipe_of(next(iter(losses.values())))
    tasks = recipe.tasks()
    steps = args.steps if args.steps is not None else recipe.inner_steps
    return evaluate_at_tuned_lrs(
        args,
        evaluate_policy_gradient,
        losses,
        tasks,
        steps=steps,
        default_lr_range=(1e-3, 2.0),
        tuned_label=f"{recipe.env}, {steps} policy updates, each loss at its own tuned lr",
        plot_title=f"held-out {recipe.env} tasks",
    )
