"""The noisy-labels parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train noisy-labels ...``: meta-train a class-count-free drop-in for
  ``nn.CrossEntropyLoss`` on the broad family (`NoisyLabelsRecipe`).
- ``learnedloss evaluate noisy-labels LOSS [LOSS ...]``: the transfer evaluation on held-out
  data (`learnedloss.families.noisy_labels.transfer`).
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    add_hidden_argument,
    add_meta_gradient_arguments,
    add_schedule_arguments,
    fraction,
    positive_int,
    run_recipe,
)
from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe, meta_train_noisy_labels
from learnedloss.families.noisy_labels.tasks import HELD_OUT_TABLES, TABLES
from learnedloss.families.noisy_labels.transfer import summary, transfer
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `NoisyLabelsRecipe` options, with its values as defaults."""
    defaults = NoisyLabelsRecipe()
    add = parser.add_argument
    add(
        "--sources",
        nargs="+",
        default=list(defaults.sources),
        choices=["synthetic", *TABLES],
        help="what tasks draw from (default: %(default)s; never the held-out tables "
        f"{list(HELD_OUT_TABLES)} if you want to evaluate on them)",
    )
    add(
        "--n-classes",
        type=positive_int,
        nargs="+",
        default=list(defaults.n_classes),
        help="class counts the tasks draw from (default: %(default)s)",
    )
    add(
        "--label-noise",
        type=fraction,
        nargs=2,
        default=list(defaults.label_noise),
        metavar=("LOW", "HIGH"),
        help="range of each task's flipped fraction (default: %(default)s)",
    )
    add(
        "--widths",
        type=positive_int,
        nargs="+",
        default=list(defaults.widths),
        help="widths the tasks' MLPs draw from (default: %(default)s)",
    )
    add_hidden_argument(parser, defaults.hidden)
    add(
        "--inner-optimizer",
        choices=["sgd", "adam"],
        default=defaults.inner_optimizer,
        help="the inner loop's optimizer (default: %(default)s)",
    )
    add_schedule_arguments(parser, defaults)
    add_meta_gradient_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, NoisyLabelsRecipe, meta_train_noisy_labels, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The transfer evaluation's options."""
    add = parser.add_argument
    add(
        "--conditions",
        nargs="+",
        default=["digits:2", "digits:10", "synthetic:100"],
        help="SOURCE:CLASSES, a held-out table or synthetic (default: %(default)s)",
    )
    add("--noise", type=fraction, default=0.4, help="symmetric noise (default: 0.4)")
    add(
        "--optimizers",
        nargs="+",
        choices=["sgd", "adam"],
        default=["sgd", "adam"],
        help="the user's optimizers, each evaluated (default: %(default)s)",
    )
    add("--steps", type=positive_int, default=100, help="training steps per model (default: 100)")
    add("--n-tasks", type=positive_int, default=8, help="evaluation tasks (default: 8)")
    add("--n-inits", type=positive_int, default=1, help="model inits per task (default: 1)")
    add("--tune-tasks", type=positive_int, default=6, help="lr-tuning tasks (default: 6)")
    add(
        "--model",
        choices=["mlp", "cnn"],
        default="mlp",
        help="the model each task trains (default: %(default)s)",
    )


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Run the transfer evaluation, print its tables, return one result per (condition,
    optimizer) with the per-seed accuracies."""
    results = transfer(
        losses,
        conditions=args.conditions,
        noise=args.noise,
        optimizers=args.optimizers,
        seeds=args.seeds,
        steps=args.steps,
        n_tasks=args.n_tasks,
        n_inits=args.n_inits,
        tune_tasks=args.tune_tasks,
        model=args.model,
    )
    print(summary(results))
    return results
