"""The mountain-car family (see `learnedloss.families.registry`).

- ``learnedloss meta-train mountain-car [--unshaped] ...``: meta-train a mountain-car loss.
- ``learnedloss evaluate mountain-car LOSS [LOSS ...]``: success rates against the task cost,
  and a plot of the trajectories.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from learnedloss.evaluation.protocol import EVALUATION_SEED_OFFSET
from learnedloss.families.evaluating import add_plot_argument, echo, over_seeds
from learnedloss.families.mountain_car.recipe import (
    MOUNTAIN_CAR,
    MountainCarRecipe,
    compare_driving,
    driving_table,
)
from learnedloss.families.parts import FamilyParts
from learnedloss.loss import LearnedLoss
from learnedloss.validators import positive_float, positive_int


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``learnedloss evaluate mountain-car``, with the recipe's driving
    settings as defaults."""
    defaults = MOUNTAIN_CAR
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


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
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


PARTS = FamilyParts(MountainCarRecipe, add_evaluate_arguments, evaluate)
