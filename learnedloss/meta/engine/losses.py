"""A loss evaluated for every task at once: ``(T, N, ...)`` predictions in, ``(T,)`` out.

Each task's values come unreduced from the functional core, `learnedloss.functional`, and
are averaged per task: a `learnedloss.LearnedLoss` through
`learnedloss.functional.learned_loss` with ``reduction='none'`` and the weights given (the
loss module is read, never changed); any other loss with a ``reduction`` setting (such as
``nn.MSELoss()``) through `learnedloss.functional.unreduced`, or, with weights, a copy of it
set to ``reduction='none'``. A loss whose element's value depends only on that element runs
once on all tasks' rows laid end to end (the fastest way). A batch-dependent loss
(`learnedloss.LearnedLoss.batch_dependent`: the ``"weight"`` residual form, or a batch
statistic such as ``scaled_residual`` or ``log_relative_ce``) would mix the tasks'
statistics in one such call, so it runs as one ``torch.func.vmap`` over the task dimension
instead: every call's statistics are then one task's own, exactly as on the vmap path
(`learnedloss.meta.inner.InnerLoop`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from learnedloss.config import PROGRESS_INPUT
from learnedloss.functional import learned_loss, unreduced
from learnedloss.loss import LearnedLoss
from learnedloss.meta.engine.errors import EngineUnsupported
from learnedloss.progress import progress_for_calls
from learnedloss.tasks.base import TaskFamily, default_loss_arguments

Params = dict[str, torch.Tensor]
StackedLossApply = Callable[[Params, torch.Tensor, torch.Tensor, dict], torch.Tensor]
"""``apply(loss_params, input (T, N, ...), target (T, N, ...), offered) -> (T,)``: every
task's mean loss; ``offered`` holds the side inputs the tasks offer, stacked like ``input``."""
UnreducedValues = Callable[..., torch.Tensor]
"""``values(loss_params, input, target, side_inputs, progress=None)``: a loss's unreduced
values for one call, computed with the weights ``loss_params`` (by name, as in
``named_parameters()``), at training ``progress`` (read only by a loss over ``"progress"``)."""
NETWORK = "network."
"""The prefix of a `learnedloss.LearnedLoss`'s weights' names (its ``network``'s)."""


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
    call = unreduced_values(loss)

    def apply(loss_params: Params, input, target, offered) -> torch.Tensor:
        missing = sorted(set(side) - set(offered))
        if missing:
            raise ValueError(f"this loss reads the side inputs {missing}, not offered")
        tasks = input.shape[0]
        side_inputs = {name: offered[name] for name in side}
        progress = offered.get(PROGRESS_INPUT)
        values = values_of(call, loss_params, input, target, side_inputs, progress)
        values = values.reshape(tasks, -1)
        ignore = getattr(loss, "ignore_index", None)
        if ignore is None or target.is_floating_point():
            return values.mean(dim=1)
        kept = (target != ignore).reshape(tasks, -1).sum(dim=1)
        return values.sum(dim=1) / kept

    return apply


def unreduced_values(loss: nn.Module) -> UnreducedValues:
    """A loss's unreduced values with given weights, computed by the functional core; the
    loss module itself is never changed (its ``reduction`` and ``check_finite`` stay).

    - a `learnedloss.LearnedLoss`: `learnedloss.functional.learned_loss` with
      ``reduction='none'``, no strict finite check, and the weights given (a frozen loss,
      given none, computes by its fast plan where it has one, as its own call does);
    - another loss: `learnedloss.functional.unreduced` when no weights are given; with
      weights, a shallow copy of it set to ``reduction='none'``, called with them. Learned
      losses among its submodules that read progress read the step's
      (`learnedloss.progress.progress_for_calls`); a loss whose ``takes_progress`` attribute
      is true (a module that holds learned losses, such
      as `learnedloss.evaluation.batched.TaskBlocksLoss`) gets the step's progress as the
      keyword `learnedloss.config.PROGRESS_INPUT`.

    Examples:
        >>> import torch
        >>> values = unreduced_values(torch.nn.MSELoss())
        >>> values({}, torch.zeros(3), torch.ones(3), {})
        tensor([1., 1., 1.])
    """
    if isinstance(loss, LearnedLoss):
        return _learned_loss_values(loss)
    unreducing = copy.copy(loss)
    unreducing.reduction = "none"
    takes_progress = bool(getattr(loss, "takes_progress", False))

    def values(loss_params: Params, input, target, side_inputs: dict, progress=None):
        if takes_progress and progress is not None:
            side_inputs = {**side_inputs, PROGRESS_INPUT: progress}
        with progress_for_calls(loss, progress):  # learned losses it holds as submodules
            if not loss_params:
                return unreduced(loss, input, target, **side_inputs)
            return functional_call(unreducing, loss_params, (input, target), side_inputs)

    return values


def _learned_loss_values(loss: LearnedLoss) -> UnreducedValues:
    """`unreduced_values` of a `learnedloss.LearnedLoss`: its network's weights are the
    ``network.``-prefixed ones given (the others stay its own)."""
    foreign = sorted(name for name, _ in loss.named_parameters() if not name.startswith(NETWORK))
    if foreign:
        raise EngineUnsupported(f"the loss has weights outside its network: {foreign}")

    def values(loss_params: Params, input, target, side_inputs: dict, progress=None):
        parameters = {name[len(NETWORK) :]: value for name, value in loss_params.items()}
        return learned_loss(
            loss.config,
            loss.network,
            input,
            target,
            side_inputs,
            reduction="none",
            ignore_index=loss.ignore_index,
            parameters=parameters or None,
            frozen=loss.frozen,
            progress=progress,
        )

    return values


def one_call_values(
    values: UnreducedValues, loss_params: Params, input, target, side_inputs: dict, progress=None
) -> torch.Tensor:
    """The loss's values for all tasks' rows ``(T, N, ...)`` laid end to end, from one call:
    right only for a loss whose element's value depends on that element alone.

    Shape: ``(T * N, ...)``, the loss's unreduced output for the ``T * N`` rows."""
    flat_side = {name: value.flatten(0, 1) for name, value in side_inputs.items()}
    return values(loss_params, input.flatten(0, 1), target.flatten(0, 1), flat_side, progress)


def per_task_values(
    values: UnreducedValues, loss_params: Params, input, target, side_inputs: dict, progress=None
) -> torch.Tensor:
    """The loss's values for every task's rows ``(T, N, ...)``, each task in a call of its own
    (one ``vmap`` over the tasks): a batch statistic is then each task's own.

    Shape: ``(T, N, ...)``, each task's unreduced output."""

    def one_task(input, target, side_inputs):
        return values(loss_params, input, target, side_inputs, progress)

    return vmap(one_task)(input, target, side_inputs)


def check_loss_arguments(loss_arguments: Callable) -> None:
    """Refuse a task's `TaskFamily.loss_arguments` other than the default, which the engine
    cannot run on stacked tasks (it is written for one task)."""
    default = (default_loss_arguments, TaskFamily.loss_arguments)
    if getattr(loss_arguments, "__func__", loss_arguments) not in default:
        raise EngineUnsupported("the tasks override TaskFamily.loss_arguments")
