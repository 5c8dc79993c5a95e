"""Few-shot classification of scikit-learn's bundled digits: a drop-in for nn.CrossEntropyLoss."""

from learnedloss.families.digits.recipe import (
    DigitsRecipe,
    evaluate_classification,
)
from learnedloss.families.digits.tasks import DigitsTasks, SmallCNN, digit_pools

__all__ = [
    "DigitsRecipe",
    "DigitsTasks",
    "SmallCNN",
    "digit_pools",
    "evaluate_classification",
]
