"""Meta-training: the differentiable inner loop and the outer-loop trainer.

The meta-gradient estimators are importable from here: ``Backprop()`` (exact, the default)
and ``EvolutionStrategies(pairs=16, sigma=0.05)``, for ``MetaTrainer(meta_gradient=...)``.
"""

from learnedloss.meta.gradients import (
    Backprop,
    EvolutionStrategies,
    MetaGradient,
    meta_gradient_from,
)

__all__ = ["Backprop", "EvolutionStrategies", "MetaGradient", "meta_gradient_from"]
