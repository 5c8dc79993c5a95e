"""The robust-regression parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train robust-regression ...``: meta-train a scale-free drop-in for
  ``nn.MSELoss`` on the broad family (`RobustRegressionRecipe`).
- ``learnedloss evaluate robust-regression LOSS [LOSS ...]``: the transfer evaluation on
  held-out tables (`learnedloss.families.robust_regression.transfer`).
"""

from __future__ import annotations

import argparse

from learnedloss.cli.common import (
    fraction,
    positive_int,
    run_recipe,
)
from learnedloss.families.robust_regression.recipe import (
    RobustRegressionRecipe,
    meta_train_robust_regression,
)
from learnedloss.families.robust_regression.tasks import CORRUPTIONS, HELD_OUT_TABLES, TABLES
from learnedloss.families.robust_regression.transfer import run_evaluate  # noqa: F401  (the registry hook)
from learnedloss.families.transfer_common import (
    add_model_and_schedule_arguments,
    add_sources_argument,
    add_transfer_arguments,
)


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `RobustRegressionRecipe` options, with its values as defaults."""
    defaults = RobustRegressionRecipe()
    add = parser.add_argument
    add_sources_argument(parser, defaults.sources, TABLES, HELD_OUT_TABLES)
    add(
        "--outlier-fraction",
        type=fraction,
        nargs=2,
        default=list(defaults.outlier_fraction),
        metavar=("LOW", "HIGH"),
        help="range of each task's corrupted fraction (default: %(default)s)",
    )
    add_model_and_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, RobustRegressionRecipe, meta_train_robust_regression, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The transfer evaluation's options."""
    add = parser.add_argument
    add(
        "--tables",
        nargs="+",
        default=list(HELD_OUT_TABLES[:2]),
        choices=list(TABLES),
        help="the real tables to evaluate on (default: %(default)s, held out of meta-training)",
    )
    add("--outliers", type=fraction, default=0.2, help="corrupted fraction (default: 0.2)")
    add(
        "--corruption",
        choices=CORRUPTIONS,
        default="uniform",
        help="how training targets are corrupted (default: %(default)s)",
    )
    add_transfer_arguments(parser, steps=150, n_inits=2)
    add("--width", type=positive_int, default=64, help="the models' width (default: 64)")
    add("--depth", type=positive_int, default=2, help="the models' depth (default: 2)")
    add(
        "--activation",
        choices=["relu", "tanh", "elu"],
        default="relu",
        help="the models' activation (default: %(default)s)",
    )
