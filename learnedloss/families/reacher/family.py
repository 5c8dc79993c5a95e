"""The model-based RL family (see `learnedloss.families.registry`).

- ``learnedloss meta-train reacher ...``: meta-train a loss for optimizing reacher policies
  through a learned dynamics model (MuJoCo's ``Reacher-v5`` is the real system). Such runs
  cannot be resumed (the registry marks the family not resumable).
- ``learnedloss evaluate reacher LOSS [LOSS ...]``: final distances in MuJoCo against the
  task loss at the same and at its tuned lr.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from learnedloss.families.evaluating import echo, over_seeds
from learnedloss.families.parts import FamilyParts
from learnedloss.families.reacher.recipe import (
    ReacherRecipe,
    evaluate_reacher,
    meta_train_reacher,
    summarize_reaching,
)
from learnedloss.loss import LearnedLoss
from learnedloss.validators import positive_int


def meta_train(recipe: ReacherRecipe, **options) -> tuple:
    """`meta_train_reacher` without the tasks it returns (``resume`` is refused before
    this runs: the family is not resumable)."""
    loss, trainer, _ = meta_train_reacher(recipe, **options)
    return loss, trainer


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``learnedloss evaluate reacher`` (``--seeds`` defaults to 5)."""
    parser.set_defaults(seeds=5)
    add = parser.add_argument
    add(
        "--n-goals",
        type=positive_int,
        default=32,
        help="held-out goals per seed (default: %(default)s)",
    )
    add(
        "--tune-goals",
        type=positive_int,
        default=16,
        help="goals the task loss's lr is tuned on (default: %(default)s)",
    )


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """For each seed, fit a dynamics model, train policies through it with ``losses`` and
    the task loss, and run them in MuJoCo (`evaluate_reacher`, with the first loss's recipe);
    prints the distances, returns one result dict per seed."""
    recipe = ReacherRecipe.from_loss(next(iter(losses.values())))
    per_seed = []
    for seed in over_seeds(args):
        scores = evaluate_reacher(
            losses, recipe, seed=seed, n_goals=args.n_goals, tune_goals=args.tune_goals
        )
        per_seed.append(scores)
        finals = ", ".join(f"{name} {s.final_distance:.4f}" for name, s in scores.items())
        echo(f"seed {seed}: final distance in MuJoCo: {finals}")
    echo(summarize_reaching(per_seed))
    return [{name: asdict(score) for name, score in s.items()} for s in per_seed]


PARTS = FamilyParts(ReacherRecipe, add_evaluate_arguments, evaluate, meta_train=meta_train)
