"""The bundled-digits classification family (see `learnedloss.families.registry`).

- ``learnedloss meta-train digits ...``: meta-train a drop-in for ``nn.CrossEntropyLoss`` on
  few-shot tasks of scikit-learn's bundled digits, optionally with noisy training labels.
- ``learnedloss evaluate digits LOSS [LOSS ...]``: held-out digits tasks against
  cross-entropy and its baselines.
"""

from __future__ import annotations

import argparse

from learnedloss.families.digits.recipe import DigitsRecipe, evaluate_classification
from learnedloss.families.digits.tasks import MODELS
from learnedloss.families.evaluating import (
    add_plot_argument,
    add_tuned_lr_arguments,
    evaluate_at_tuned_lrs,
)
from learnedloss.families.parts import FamilyParts
from learnedloss.loss import LearnedLoss
from learnedloss.validators import fraction, positive_int


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The protocol of ``learnedloss evaluate digits`` and the tasks' settings (default: the
    ones the first loss was meta-trained with)."""
    add_tuned_lr_arguments(
        parser,
        steps_help="optimizer steps per model (default: the meta-training horizon)",
        lr_range_help="the tuning grid's bounds (default: 0.05 3.2)",
        reference="cross-entropy",
    )
    add_plot_argument(parser, "write the held-out curves of seed 0 to this PNG")
    group = parser.add_argument_group(
        "tasks (default: the settings the first loss was meta-trained with)"
    )
    add = group.add_argument
    add("--label-noise", type=fraction, help="fraction of flipped training labels")
    add(
        "--n-way",
        type=positive_int,
        help="classes per task (any count: the loss is per class)",
    )
    add("--n-shot", type=positive_int, help="training images per class")
    add("--model", choices=MODELS, help="the model each task trains (cnn: unseen architecture)")


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Evaluate classification losses on meta-test digits tasks (see
    `evaluate_classification`) built from the first loss's recipe; prints the tables and
    returns one result dict per seed."""
    recipe = DigitsRecipe.from_loss(next(iter(losses.values())))
    changes = {
        name: getattr(args, name)
        for name in ("label_noise", "n_way", "n_shot", "model")
        if getattr(args, name) is not None
    }
    tasks = recipe.test_tasks(**changes)
    return evaluate_at_tuned_lrs(
        args,
        evaluate_classification,
        losses,
        tasks,
        steps=args.steps if args.steps is not None else recipe.inner_steps,
        default_lr_range=(0.05, 3.2),
        tuned_label=f"{tasks.summary()}, each loss at its lr tuned for query error",
        plot_title=f"held-out digits tasks: {tasks.summary()}",
    )


PARTS = FamilyParts(DigitsRecipe, add_evaluate_arguments, evaluate)
