"""The model-free RL family (see `learnedloss.families.registry`).

- ``learnedloss meta-train policy-gradient ...``: meta-train a drop-in for the REINFORCE
  surrogate on point-mass goals or cart-poles.
- ``learnedloss evaluate policy-gradient LOSS [LOSS ...]``: held-out tasks against REINFORCE
  with and without a baseline.
"""

from __future__ import annotations

import argparse

from learnedloss.families.evaluating import (
    add_plot_argument,
    add_tuned_lr_arguments,
    evaluate_at_tuned_lrs,
)
from learnedloss.families.parts import FamilyParts
from learnedloss.families.policy_gradient.recipe import (
    PolicyGradientRecipe,
    evaluate_policy_gradient,
)
from learnedloss.loss import LearnedLoss


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


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Evaluate policy-gradient losses on held-out tasks of the family and settings the first
    loss was meta-trained with; prints the tables and returns one result dict per seed."""
    recipe = PolicyGradientRecipe.from_loss(next(iter(losses.values())))
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


PARTS = FamilyParts(PolicyGradientRecipe, add_evaluate_arguments, evaluate)
