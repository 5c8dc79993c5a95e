"""Meta-training: the differentiable inner loop and the outer-loop trainer.

The meta-gradient estimators are importable from here: ``Backprop()`` (exact, the default),
``EvolutionStrategies(pairs=16, sigma=0.05)`` and ``CMAES(population=16, sigma=0.1)``, for
``MetaTrainer(meta_gradient=...)``;
so is ``Distributed(timeout=...)``, for ``MetaTrainer(distributed=...)`` under ``torchrun``
(`learnedloss.meta.distributed`). ``RunDirectory`` holds the rules of a run directory
(claim, overwrite, resume), and ``TaskObjectives`` is the interface of the inner-loop
execution that `MetaTrainer` calls (`learnedloss.meta.execution`).
"""

from learnedloss.meta.distributed import Distributed, DistributedError
from learnedloss.meta.execution import TaskObjectives
from learnedloss.meta.gradients import (
    CMAES,
    Backprop,
    EvolutionStrategies,
    MetaGradient,
    meta_gradient_from,
)
from learnedloss.meta.run_directory import RunDirectory

__all__ = [
    "CMAES",
    "Backprop",
    "Distributed",
    "DistributedError",
    "EvolutionStrategies",
    "MetaGradient",
    "RunDirectory",
    "TaskObjectives",
    "meta_gradient_from",
]
