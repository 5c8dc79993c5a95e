"""A loss evaluated for every task at once: ``(T, N, ...)`` predictions in, ``(T,)`` out.

Each task's values come with ``reduction='none'`` and are averaged per task. A loss whose
element's value depends only on that element runs once on all tasks' rows laid end to end
(the fastest way). A batch-dependent loss (`learnedloss.LearnedLoss.batch_dependent`: the
``"weight"`` residual form, or a batch statistic such as ``scaled_residual`` or
``log_relative_ce``) would mix the tasks' statistics in one such call, so it runs as one
``torch.func.vmap`` over the task dimension instead: every call's statistics are then one
task's own, exactly as on the vmap path (`learnedloss.meta.inner.InnerLoop`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, vmap

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

    A batch-dependent loss is called once per task, as one ``vmap`` over the tasks
    (`per_task_values`); any other once over all tasks' rows (`one_call_values`).

    Raises:
        EngineUnsupported: the loss has no ``reduction``.
    """
    if not isinstance(loss, nn.Module) or not hasattr(loss, "reduction"):
        raise EngineUnsupported(f"the loss {type(loss).__name__} has no reduction setting")
    side = tuple(getattr(loss, "side_inputs", ()))
    values_of = per_task_values if getattr(loss, "batch_dependent", False) else one_call_values

    def apply(loss_params: Params, input, target, offered) -> torch.Tensor:
        missing = sorted(set(side) - set(offered))
        if missing:
            raise ValueError(f"this loss reads the side inputs {missing}, not offered")
        tasks = input.shape[0]
        side_inputs = {name: offered[name] for name in side}
        with unreduced(loss), finite_check_disabled(loss):
            values = values_of(loss, loss_params, input, target, side_inputs)
        values = values.reshape(tasks, -1)
        ignore = getattr(loss, "ignore_index", None)
        if ignore is None or target.is_floating_point():
            return values.mean(dim=1)
        kept = (target != ignore).reshape(tasks, -1).sum(dim=1)
        return values.sum(dim=1) / kept

    return apply


def one_call_values(
    loss: nn.Module, loss_params: Params, input, target, side_inputs: dict
) -> torch.Tensor:
    """The loss's values for all tasks' rows ``(T, N, ...)`` laid end to end, from one call:
    right only for a loss whose element's value depends on that element alone.

    Shape: ``(T * N, ...)``, the loss's unreduced output for the ``T * N`` rows."""
    flat_side = {name: value.flatten(0, 1) for name, value in side_inputs.items()}
    return functional_call(
        loss, loss_params, (input.flatten(0, 1), target.flatten(0, 1)), flat_side
    )


def per_task_values(
    loss: nn.Module, loss_params: Params, input, target, side_inputs: dict
) -> torch.Tensor:
    """The loss's values for every task's rows ``(T, N, ...)``, each task in a call of its own
    (one ``vmap`` over the tasks): a batch statistic is then each task's own.

    Shape: ``(T, N, ...)``, each task's unreduced output."""

    def one_task(input, target, side_inputs):
        return functional_call(loss, loss_params, (input, target), side_inputs)

    return vmap(one_task)(input, target, side_inputs)


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
