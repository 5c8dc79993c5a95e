"""learnedloss: learned loss functions (ML3) as drop-in replacements for PyTorch losses.

Examples:
    >>> from learnedloss import LearnedLoss
    >>> loss_fn = LearnedLoss.from_pretrained("mse-fit")  # where nn.MSELoss() stood
"""

from learnedloss._version import __version__
from learnedloss.bundled import bundled_names
from learnedloss.config import LossConfig
from learnedloss.errors import (
    CardWarning,
    CheckpointError,
    ConfigError,
    LossInputError,
    LossNotFoundError,
    MetaTrainingStalled,
    RunDirectoryError,
    ScheduleError,
    TaskModelError,
)
from learnedloss.evaluation.plots import plot
from learnedloss.evaluation.protocol import evaluate
from learnedloss.loss import LearnedLoss
from learnedloss.meta.gradients import Backprop, EvolutionStrategies
from learnedloss.meta.trainer import MetaTrainer, MetaTrainingDiverged

__all__ = [
    "Backprop",
    "CardWarning",
    "CheckpointError",
    "ConfigError",
    "EvolutionStrategies",
    "LearnedLoss",
    "LossConfig",
    "LossInputError",
    "LossNotFoundError",
    "MetaTrainer",
    "MetaTrainingDiverged",
    "MetaTrainingStalled",
    "RunDirectoryError",
    "ScheduleError",
    "TaskModelError",
    "__version__",
    "bundled_names",
    "evaluate",
    "plot",
]
