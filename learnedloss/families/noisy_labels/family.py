"""The noisy-labels family (see `learnedloss.families.registry`).

- ``learnedloss meta-train noisy-labels ...``: meta-train a class-count-free drop-in for
  ``nn.CrossEntropyLoss`` on the broad family (`NoisyLabelsRecipe`).
- ``learnedloss evaluate noisy-labels LOSS [LOSS ...]``: the transfer evaluation on held-out
  data (`learnedloss.families.noisy_labels.transfer`).
"""

from __future__ import annotations

import argparse

from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe
from learnedloss.families.noisy_labels.transfer import run_evaluate
from learnedloss.families.parts import FamilyParts
from learnedloss.families.transfer_common import add_transfer_arguments
from learnedloss.validators import fraction


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


PARTS = FamilyParts(NoisyLabelsRecipe, add_evaluate_arguments, run_evaluate)
