"""The noisy-labels parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train noisy-labels ...``: meta-train a class-count-free drop-in for
  ``nn.CrossEntropyLoss`` on the broad family (`NoisyLabelsRecipe`).
- ``learnedloss evaluate noisy-labels LOSS [LOSS ...]``: the transfer evaluation on held-out
  data (`learnedloss.families.noisy_labels.transfer`).
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    fraction,
    positive_int,
    run_recipe,
)
from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe, meta_train_noisy_labels
from learnedloss.families.noisy_labels.tasks import HELD_OUT_TABLES, SYNTHETIC_SOURCES, TABLES
from learnedloss.families.noisy_labels.transfer import run_evaluate  # noqa: F401  (the registry hook)
from learnedloss.families.transfer_common import (
    add_model_and_schedule_arguments,
    add_sources_argument,
    add_transfer_arguments,
)


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `NoisyLabelsRecipe` options, with its values as defaults."""
    defaults = NoisyLabelsRecipe()
    add = parser.add_argument
    add_sources_argument(parser, defaults.sources, TABLES, HELD_OUT_TABLES, SYNTHETIC_SOURCES)
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
    add_model_and_schedule_arguments(parser, defaults)


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
    add_transfer_arguments(parser, steps=100, n_inits=1)
    add(
        "--model",
        choices=["mlp", "cnn"],
        default="mlp",
        help="the model each task trains (default: %(default)s)",
    )
