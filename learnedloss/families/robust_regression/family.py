"""The robust-regression family (see `learnedloss.families.registry`).

- ``learnedloss meta-train robust-regression ...``: meta-train a scale-free drop-in for
  ``nn.MSELoss`` on the broad family (`RobustRegressionRecipe`).
- ``learnedloss evaluate robust-regression LOSS [LOSS ...]``: the transfer evaluation on
  held-out tables (`learnedloss.families.robust_regression.transfer`).
- ``learnedloss demo``: the bundled loss on scikit-learn's diabetes data
  (`learnedloss.families.robust_regression.demo`).
"""

from __future__ import annotations

import argparse

from learnedloss.families.parts import FamilyParts
from learnedloss.families.robust_regression.demo import diabetes_demo
from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
from learnedloss.families.robust_regression.tasks import CORRUPTIONS, HELD_OUT_TABLES, TABLES
from learnedloss.families.robust_regression.transfer import run_evaluate
from learnedloss.families.transfer_common import add_transfer_arguments
from learnedloss.validators import fraction, positive_int


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


PARTS = FamilyParts(
    RobustRegressionRecipe, add_evaluate_arguments, run_evaluate, demo=diabetes_demo
)
