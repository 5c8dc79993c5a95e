"""The model-based RL parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train reacher ...``: meta-train a loss for optimizing reacher policies
  through a learned dynamics model (MuJoCo's ``Reacher-v5`` is the real system). Such runs
  cannot be resumed (the registry marks the family not resumable).
- ``learnedloss evaluate reacher LOSS [LOSS ...]``: final distances in MuJoCo against the
  task loss at the same and at its tuned lr.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from learnedloss.cli.common import (
    add_hidden_argument,
    add_meta_gradient_arguments,
    add_schedule_arguments,
    echo,
    non_negative_float,
    non_negative_int,
    over_seeds,
    positive_int,
    run_recipe,
)
from learnedloss.families.reacher.recipe import (
    ReacherRecipe,
    evaluate_reacher,
    meta_train_reacher,
    summarize_reaching,
)
from learnedloss.families.recipe import recipe_from_metadata
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ReacherRecipe` options, with its values as defaults."""
    defaults = ReacherRecipe()
    add = parser.add_argument
    add(
        "--random-episodes",
        type=positive_int,
        default=defaults.random_episodes,
        help="random-action episodes the first dynamics model is fitted on (default: %(default)s)",
    )
    add(
        "--refit-every",
        type=non_negative_int,
        default=defaults.refit_every,
        help="outer steps between refits of the dynamics model (0: never; default: %(default)s)",
    )
    add(
        "--refit-episodes",
        type=positive_int,
        default=defaults.refit_episodes,
        help="policy roll-outs in MuJoCo added at each refit (default: %(default)s)",
    )
    add(
        "--fit-steps",
        type=positive_int,
        default=defaults.fit_steps,
        help="Adam steps per dynamics-model fit (default: %(default)s)",
    )
    add_hidden_argument(parser, defaults.hidden)
    add(
        "--inner-optimizer",
        choices=["adam", "sgd"],
        default=defaults.inner_optimizer,
        help="the optimizer each policy is trained with (default: %(default)s)",
    )
    add(
        "--collapse-floor",
        type=non_negative_float,
        default=defaults.collapse_floor,
        help="warn that the loss is collapsing when its gradient on fresh policies falls "
        "below this fraction of the task loss's (default: %(default)s)",
    )
    add_meta_gradient_arguments(parser, defaults)
    add_schedule_arguments(parser, defaults)


def _train(recipe: ReacherRecipe, *, run_dir, resume, device, max_seconds):
    # `resume` is refused before this runs (the family is not resumable); `device`: CPU only.
    loss, trainer, _ = meta_train_reacher(recipe, run_dir=run_dir, max_seconds=max_seconds)
    return loss, trainer


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, ReacherRecipe, _train, max_seconds)


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


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """For each seed, fit a dynamics model, train policies through it with ``losses`` and
    the task loss, and run them in MuJoCo (`evaluate_reacher`, with the first loss's recipe);
    prints the distances, returns one result dict per seed."""
    recipe = recipe_from_metadata(next(iter(losses.values())), ReacherRecipe)
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
