"""A loss evaluated for every task at once: ``(T, N, ...)`` predictions in, ``(T,)`` out.

The loss runs once on all tasks' rows laid end to end, with ``reduction='none'``, and each
task's values are averaged. That equals calling it task by task exactly when an element's
loss does not depend on the other elements of the call, so batch-dependent losses (the
``"weight"`` residual form of `learnedloss.LearnedLoss`) are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from learnedloss.loss import finite_check_disabled
from learnedloss.meta.engine.errors import EngineUnsupported
from learnedloss.tasks.base import TaskFamily, default_loss_arguments

Params = dict[str, torch.Tensor]
StackedLossApply = Callable[[Params, torch.Tensor, torch.Tensor, dict], torch.Tensor]
"""``apply(loss_params, input (T, N, ...), target (T, N, ...), offered) -> (T,)``: every
task's mean loss; ``offered`` holds the side inputs the tasks offer, stacked like ``input``."""


def stacked_loss_apply(loss: nn.Module) -> StackedLossApply:
    """Every task's loss at once, for a loss module with a ``reduction`` setting (a
    `learnedloss.LearnedLoss` or a standard loss such as ``nn.MSELoss()``).

    Raises:
        EngineUnsupported: the loss is batch-dependent or has no ``reduction``.
    """
    if not isinstance(loss, nn.Module) or not hasattr(loss, "reduction"):
        raise EngineUnsupported(f"the loss {type(loss).__name__} has no reduction setting")
    if getattr(loss, "batch_dependent", False):
        raise EngineUnsupported(
            "the loss is batch-dependent (the 'weight' form or a batch statistic such as "
            "scaled_residual): one call over all tasks' rows would mix the tasks"
        )
    side = tuple(getattr(loss, "side_inputs", ()))

    def apply(loss_params: Params, input, target, offered) -> torch.Tensor:
        missing = sorted(set(side) - set(offered))
        if missing:
            raise ValueError(f"this loss reads the side inputs {missing}, not offered")
        tasks = input.shape[0]
        flat_side = {name: offered[name].flatten(0, 1) for name in side}
        with unreduced(loss), finite_check_disabled(loss):
            values = functional_call(
                loss, loss_params, (input.flatten(0, 1), target.flatten(0, 1)), flat_side
            )
        values = values.reshape(tasks, -1)
        ignore = getattr(loss, "ignore_index", None)
        if ignore is None or target.is_floating_point():
            return values.mean(dim=1)
        kept = (target != ignore).reshape(tasks, -1).sum(dim=1)
        return values.sum(dim=1) / kept

    return apply


@contextlib.contextmanager
def unreduced(loss: nn.Module) -> Iterator[None]:
    """Set ``loss.reduction`` to ``'none'`` for a block."""
    previous = loss.reduction
    loss.reduction = "none"
    try:
        yield
    finally:
        loss.reduction = previous


def check_loss_arguments(loss_arguments: Callable) -> None:
    """Refuse a task's `TaskFamily.loss_arguments` other than the default, which the engine
    cannot run on stacked tasks (it is written for one task)."""
    default = (default_loss_arguments, TaskFamily.loss_arguments)
    if getattr(loss_arguments, "__func__", loss_arguments) not in default:
        raise EngineUnsupported("the tasks override TaskFamily.loss_arguments")
