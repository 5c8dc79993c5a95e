"""SGD and Adam written on one flat ``(tasks, parameters)`` tensor.

Every task's parameters live side by side in one row of a ``(T, P)`` tensor, so an update of
all tasks is a handful of elementwise operations, whatever the model's depth. Adam follows
torchopt's ``adam(lr, b1, b2, eps, eps_root)`` step for step: bias-corrected moments and
``m̂ / (sqrt(v̂ + eps_root) + eps)``, where ``eps_root > 0`` keeps the square root
differentiable at a zero gradient.

Two forms of each update: out of place (differentiable: the meta-gradient flows through it)
and in place (no graph, for evolution strategies and population search).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learnedloss.meta.engine.errors import EngineUnsupported

LearningRate = float | torch.Tensor
"""A learning rate for every task (a float) or one per task (a ``(T, 1)`` tensor)."""


@dataclass(frozen=True)
class StackedSGD:
    """Plain SGD, ``θ ← θ - lr · g``, on stacked parameters (as ``torchopt.sgd(lr)``).

    Args:
        lr: the learning rate (a per-task rate given to the engine's ``run`` overrides it).
    """

    lr: float

    def init(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The optimizer state for parameters ``flat`` ``(T, P)``: none."""
        return ()

    def update(self, flat, grad, state, step: int, lr: LearningRate, inplace: bool):
        """``(new flat parameters, new state)`` after step number ``step`` (from 1)."""
        if not inplace:
            return flat - lr * grad, ()
        if isinstance(lr, torch.Tensor):
            return flat.sub_(grad * lr), ()
        return flat.sub_(grad, alpha=lr), ()


@dataclass(frozen=True)
class StackedAdam:
    """Adam on stacked parameters, matching ``torchopt.adam(lr, betas, eps, eps_root=...)``.

    Args:
        lr: the learning rate (a per-task rate given to the engine's ``run`` overrides it).
        b1, b2: the moments' decay rates.
        eps: added to the root of the second moment.
        eps_root: added under the root (``> 0`` for finite meta-gradients).
    """

    lr: float
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    eps_root: float = 1e-8

    def init(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The first and second moments for parameters ``flat`` ``(T, P)``, zero."""
        return torch.zeros_like(flat), torch.zeros_like(flat)

    def update(self, flat, grad, state, step: int, lr: LearningRate, inplace: bool):
        """``(new flat parameters, new state)`` after step number ``step`` (from 1)."""
        mu, nu = state
        first, second = 1 - self.b1**step, 1 - self.b2**step
        if inplace:
            mu.mul_(self.b1).add_(grad, alpha=1 - self.b1)
            nu.mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
            denominator = (nu / second).add_(self.eps_root).sqrt_().add_(self.eps)
            direction = mu / denominator
            if isinstance(lr, torch.Tensor):
                return flat.sub_(direction.mul_(lr), alpha=1 / first), (mu, nu)
            return flat.sub_(direction, alpha=lr / first), (mu, nu)
        mu = mu.mul(self.b1).add(grad, alpha=1 - self.b1)
        nu = nu.mul(self.b2).addcmul(grad, grad, value=1 - self.b2)
        direction = (mu / first) / ((nu / second).add(self.eps_root).sqrt().add(self.eps))
        return flat - lr * direction, (mu, nu)


StackedOptimizer = StackedSGD | StackedAdam


def stacked_optimizer(optimizer: str | StackedOptimizer, lr: float | None = None):
    """The engine's optimizer for an inner-optimizer setting.

    ``"sgd"`` and ``"adam"`` with ``lr`` are the shorthands of
    `learnedloss.meta.inner.make_inner_optimizer` (Adam with ``eps_root=1e-8``); a
    `StackedSGD` or `StackedAdam` is returned as it is. Anything else (a torchopt
    ``GradientTransformation``, whose steps the engine cannot read) raises
    `EngineUnsupported`.

    Examples:
        >>> stacked_optimizer("adam", 1e-2)
        StackedAdam(lr=0.01, b1=0.9, b2=0.999, eps=1e-08, eps_root=1e-08)
    """
    if isinstance(optimizer, StackedSGD | StackedAdam):
        return optimizer
    if optimizer == "sgd" and lr is not None:
        return StackedSGD(lr)
    if optimizer == "adam" and lr is not None:
        return StackedAdam(lr)
    raise EngineUnsupported(
        f"the engine runs 'sgd' or 'adam' with a learning rate, or StackedSGD/StackedAdam; "
        f"got {type(optimizer).__name__} {optimizer!r:.60} with lr={lr!r}"
    )
