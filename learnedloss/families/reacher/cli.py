"""The model-based RL parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train reacher ...``: meta-train a loss for optimizing reacher policies
  through a learned dynamics model (MuJoCo's ``Reacher-v5`` is the real system).
- ``learnedloss evaluate-reacher LOSS [LOSS ...]``: final distances in MuJoCo against the
  task loss at the same and at its tuned lr.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from learnedloss.cli.common import (
    add_meta_gradient_arguments,
    add_schedule_arguments,
    named_losses,
    run_recipe,
)
from learnedloss.families.reacher.recipe import (
    ReacherRecipe,
    evaluate_reacher,
    meta_train_reacher,
    summarize_reaching,
)
from learnedloss.families.recipe import recipe_from_metadata


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ReacherRecipe()
    add = parser.add_argument
    add("--random-episodes", type=int, default=defaults.random_episodes)
    add("--refit-every", type=int, default=defaults.refit_every, help="outer steps (0: never)")
    add("--refit-episodes", type=int, default=defaults.refit_episodes)
    add("--fit-steps", type=int, default=defaults.fit_steps, help="Adam steps per model fit")
    add("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    add("--inner-optimizer", choices=["adam", "sgd"], default=defaults.inner_optimizer)
    add("--collapse-floor", type=float, default=defaults.collapse_floor)
    add_meta_gradient_arguments(parser, defaults)
    add_schedule_arguments(parser, defaults)


def _train(recipe: ReacherRecipe, *, run_dir, resume, device, max_seconds):
    if resume:
        raise SystemExit(
            "learnedloss: error: reacher runs cannot be resumed (the dynamics model and its "
            "data are not checkpointed)"
        )
    loss, trainer, _ = meta_train_reacher(recipe, run_dir=run_dir, max_seconds=max_seconds)
    return loss, trainer


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, ReacherRecipe, _train, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("losses", nargs="+", help="NAME=PATH_OR_NAME pairs, or plain paths/bundled names")
    add("--seeds", type=int, default=5, help="evaluation seeds (dynamics model, goals, policies)")
    add("--n-goals", type=int, default=32, help="held-out goals per seed")
    add("--tune-goals", type=int, default=16, help="goals the task loss's lr is tuned on")
    add("--json", help="write the results to this JSON file")
    add("--threads", type=int, default=1)


def run_evaluate(args: argparse.Namespace) -> int:
    losses = named_losses(args.losses)
    recipe = recipe_from_metadata(next(iter(losses.values())), ReacherRecipe)
    per_seed = []
    for seed in range(args.seeds):
        scores = evaluate_reacher(
            losses, recipe, seed=seed, n_goals=args.n_goals, tune_goals=args.tune_goals
        )
        per_seed.append(scores)
        finals = ", ".join(f"{name} {s.final_distance:.4f}" for name, s in scores.items())
        print(f"seed {seed}: final distance in MuJoCo: {finals}")
    print(summarize_reaching(per_seed))
    if args.json:
        results = [{name: asdict(score) for name, score in s.items()} for s in per_seed]
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
