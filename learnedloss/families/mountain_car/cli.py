"""The mountain-car parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train mountain-car [--unshaped] ...``: meta-train a mountain-car loss.
- ``learnedloss evaluate mountain-car LOSS [LOSS ...]``: success rates against the task cost,
  and a plot of the trajectories.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from learnedloss.cli.common import (
    add_meta_gradient_arguments,
    add_plot_argument,
    add_schedule_arguments,
    add_shaping_arguments,
    echo,
    over_seeds,
    positive_float,
    positive_int,
    run_recipe,
)
from learnedloss.evaluation.protocol import EVALUATION_SEED_OFFSET
from learnedloss.families.mountain_car.recipe import (
    MountainCarRecipe,
    compare_driving,
    driving_table,
    meta_train_mountain_car,
)
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `MountainCarRecipe` options, with its values as defaults."""
    defaults = MountainCarRecipe()
    add_shaping_arguments(
        parser, defaults, unshaped="the task cost instead of the waypoint, then the goal"
    )
    parser.add_argument(
        "--inner-optimizer",
        choices=["adam", "sgd"],
        default=defaults.inner_optimizer,
        help="the optimizer each policy is trained with (default: %(default)s)",
    )
    add_schedule_arguments(parser, defaults)
    add_meta_gradient_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, MountainCarRecipe, meta_train_mountain_car, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``learnedloss evaluate mountain-car``, with the recipe's driving
    settings as defaults."""
    defaults = MountainCarRecipe()
    add = parser.add_argument
    add(
        "--lr",
        type=positive_float,
        default=defaults.inner_lr,
        help="policy lr for the learned losses (default: the recipe's, %(default)s)",
    )
    add(
        "--optimizer",
        choices=["adam", "sgd"],
        default=defaults.inner_optimizer,
        help="the policies' optimizer (default: %(default)s)",
    )
    add(
        "--steps",
        type=positive_int,
        default=defaults.inner_steps,
        help="policy updates (default: %(default)s)",
    )
    add(
        "--n-random",
        type=positive_int,
        default=20,
        help="random starts (and policies per start) (default: %(default)s)",
    )
    add_plot_argument(
        parser, "write the trajectories of seed 0 from the reference start to this PNG"
    )


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Train policies with ``losses`` and the task cost for each seed (`compare_driving`);
    prints the success tables, returns one result dict per seed."""
    results = []
    for seed in over_seeds(args):
        scores, trajectories = compare_driving(
            losses,
            lr=args.lr,
            steps=args.steps,
            n_random=args.n_random,
            seed=EVALUATION_SEED_OFFSET + seed,
            optimizer=args.optimizer,
        )
        echo(f"seed {seed}: policies trained {args.steps} steps, then rolled out")
        echo(driving_table(scores))
        results.append({s: {n: asdict(r) for n, r in rows.items()} for s, rows in scores.items()})
        if args.plot and seed == 0:
            from learnedloss.families.mountain_car.plots import plot_trajectories

            echo(f"wrote {plot_trajectories(trajectories, args.plot)}")
    return results
