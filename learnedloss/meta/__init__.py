"""Meta-training: the differentiable inner loop and the outer-loop trainer.

The meta-gradient estimators are importable from here: ``Backprop()`` (exact, the default)
and ``EvolutionStrategies(pairs=16, sigma=0.05)``, for ``MetaTrainer(meta_gradient=...)``;
so is ``Distributed(timeout=...)``, for ``MetaTrainer(distributed=...)`` under ``torchrun``
(`learnedloss.meta.distributed`).
"""

from learnedloss.meta.distributed import Distributed, DistributedError
from learnedloss.meta.gradients import (
    Backprop,
    EvolutionStrategies,
    MetaGradient,
    meta_gradient_from,
)

__all__ = [
    "Backprop",
    "Distributed",
    "DistributedError",
    "EvolutionStrategies",
    "MetaGradient",
    "meta_gradient_from",
]
