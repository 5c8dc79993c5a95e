"""The classification parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train digits ...``: meta-train a drop-in for ``nn.CrossEntropyLoss`` on
  few-shot tasks of scikit-learn's bundled digits, optionally with noisy training labels.
- ``learnedloss evaluate LOSS`` of a classification loss: held-out digits tasks against
  cross-entropy and its baselines (``evaluate`` dispatches here by the loss's kind).
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    add_schedule_arguments,
    evaluate_at_tuned_lrs,
    run_recipe,
)
from learnedloss.families.digits.recipe import (
    META_OBJECTIVES,
    DigitsRecipe,
    evaluate_classification,
    meta_train_digits,
    recipe_of,
)
from learnedloss.families.digits.tasks import MODELS
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DigitsRecipe()
    add = parser.add_argument
    add(
        "--label-noise",
        type=float,
        default=defaults.label_noise,
        help="fraction of training labels flipped to another class (query labels stay clean)",
    )
    add("--n-way", type=int, default=defaults.n_way, help="classes per task")
    add("--n-shot", type=int, default=defaults.n_shot, help="training images per class")
    add("--n-query", type=int, default=defaults.n_query, help="query images per class")
    add("--model", choices=MODELS, default=defaults.model, help="the model each task trains")
    add(
        "--meta-objective",
        choices=META_OBJECTIVES,
        default=defaults.meta_objective,
        help="how a trained model is scored on its clean query set",
    )
    add("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    add(
        "--inputs",
        nargs="+",
        default=list(defaults.inputs),
        choices=["log_prob", "prob", "target"],
        help="per-class features the loss network reads",
    )
    add_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, DigitsRecipe, meta_train_digits, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``learnedloss evaluate`` that apply to classification losses only."""
    group = parser.add_argument_group(
        "classification losses (default: the settings the loss was meta-trained with)"
    )
    add = group.add_argument
    add("--label-noise", type=float, help="fraction of flipped training labels")
    add("--n-way", type=int, help="classes per task (any count: the loss is per class)")
    add("--n-shot", type=int, help="training images per class")
    add("--model", choices=MODELS, help="the model each task trains (cnn: unseen architecture)")


def run_evaluate(args: argparse.Namespace, loss: LearnedLoss) -> list[dict]:
    """Evaluate a classification loss on meta-test digits tasks (see `evaluate_classification`);
    prints the tables and returns one result dict per seed."""
    recipe = recipe_of(loss)
    changes = {
        name: getattr(args, name)
        for name in ("label_noise", "n_way", "n_shot", "model")
        if getattr(args, name) is not None
    }
    tasks = recipe.test_tasks(**changes)
    return evaluate_at_tuned_lrs(
        args,
        evaluate_classification,
        loss,
        tasks,
        steps=args.steps if args.steps is not None else recipe.inner_steps,
        default_lr_range=(0.05, 3.2),
        tuned_label=f"{tasks.summary()}, each loss at its lr tuned for query error",
        plot_title=f"held-out digits tasks: {tasks.summary()}",
    )
