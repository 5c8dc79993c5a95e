"""The mountain-car parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train mountain-car [--unshaped] ...``: meta-train a mountain-car loss.
- ``learnedloss evaluate-mountain-car LOSS [LOSS ...]``: success rates against the task cost,
  and a plot of the trajectories.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from learnedloss.cli.common import (
    add_comparison_arguments,
    add_meta_gradient_arguments,
    add_schedule_arguments,
    add_shaping_arguments,
    named_losses,
    run_recipe,
)
from learnedloss.families.mountain_car.recipe import (
    MountainCarRecipe,
    compare_driving,
    driving_table,
    meta_train_mountain_car,
)


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = MountainCarRecipe()
    add = parser.add_argument
    add_shaping_arguments(
        parser, defaults, unshaped="the task cost instead of the waypoint, then the goal"
    )
    add("--inner-optimizer", choices=["adam", "sgd"], default=defaults.inner_optimizer)
    add_schedule_arguments(parser, defaults)
    add_meta_gradient_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, MountainCarRecipe, meta_train_mountain_car, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = MountainCarRecipe()
    add_comparison_arguments(
        parser,
        f"policy lr for the learned losses (default: the recipe's, {defaults.inner_lr:g})",
        "write the trajectories from the reference start to this PNG",
    )
    parser.set_defaults(lr=defaults.inner_lr)
    add = parser.add_argument
    add("--optimizer", choices=["adam", "sgd"], default=defaults.inner_optimizer)
    add("--steps", type=int, default=defaults.inner_steps, help="policy updates")
    add("--n-random", type=int, default=20, help="random starts (and policies per start)")


def run_evaluate(args: argparse.Namespace) -> int:
    losses = named_losses(args.losses)
    results = []
    for seed in range(args.seeds):
        scores, trajectories = compare_driving(
            losses,
            lr=args.lr,
            steps=args.steps,
            n_random=args.n_random,
            seed=10000 + seed,
            optimizer=args.optimizer,
        )
        print(f"seed {seed}: policies trained {args.steps} steps, then rolled out")
        print(driving_table(scores))
        results.append({s: {n: asdict(r) for n, r in rows.items()} for s, rows in scores.items()})
        if args.plot and seed == 0:
            from learnedloss.evaluation.plots import plot_trajectories

            print(f"wrote {plot_trajectories(trajectories, args.plot)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
