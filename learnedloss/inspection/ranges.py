"""The range of data a loss was meta-trained on (`learnedloss.functional.ranges`, where
`learnedloss.LearnedLoss.to_grid` reads it too)."""

from learnedloss.functional.ranges import Range, recorded_ranges, training_ranges

__all__ = ["Range", "recorded_ranges", "training_ranges"]
