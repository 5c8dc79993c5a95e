"""Evaluation runs on the batched engine: many (loss, learning rate) runs trained as one.

`learnedloss.evaluate` trains every loss at every learning rate of its grid on the tuning
tasks, then every loss at its chosen rate on the held-out tasks. With ``path="engine"`` each
of those stages is one stacked call of `learnedloss.meta.engine.BatchedInnerLoop` (or a few,
of at most ``max_models`` models each): the draw's tasks and initial models are repeated once
per run, each copy gets its run's learning rate (the engine's per-task rate), and each block
of copies its run's loss (`TaskBlocksLoss`). The runs are independent, so every copy trains
as it would alone, and the results match the vmap path within float tolerance.

A run whose loss the engine cannot train (`loss_refusal`: a loss whose parameters train with
each model, one that fails on stacked tasks) or a family whose models or loss arguments it
cannot run (`family_refusal`) is left to the caller, which trains it on the vmap path and
records the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import vmap

from learnedloss.config import PROGRESS_INPUT
from learnedloss.evaluation.baselines import LossLike
from learnedloss.meta.engine import BatchedInnerLoop, engine_refusal, stacked_loss_apply
from learnedloss.meta.engine.execution import tile_batch
from learnedloss.tasks.base import TaskBatch, TaskFamily

ENGINE_MAX_MODELS = 2048
"""The most models one engine call trains; more runs are split into several calls (whole
runs each), which bounds the memory of the stacked activations."""

TaskLoss = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]
"""``apply(input (t, N, ...), target (t, N, ...), side_inputs) -> (t,)``: each task's loss."""


@dataclass(frozen=True)
class EngineRun:
    """One training run of an evaluation: every task of a draw trained with ``loss`` at
    ``lr``."""

    loss: LossLike
    lr: float


def trained_with_model(loss) -> bool:
    """Whether ``loss`` has parameters to train with each model (its class says
    ``trained_with_model = True``, as `AdaptiveRobustLoss` does)."""
    return bool(getattr(loss, "trained_with_model", False)) and isinstance(loss, nn.Module)


def task_loss(loss: LossLike) -> TaskLoss:
    """Each task's loss from stacked predictions, for a loss as `learnedloss.evaluate` takes it.

    A module with a ``reduction`` setting (a `learnedloss.LearnedLoss`, ``nn.MSELoss()``)
    runs through the engine's `stacked_loss_apply` with its own (detached) parameters; any
    other callable ``(prediction, target) -> scalar`` runs once per task under one
    ``torch.func.vmap``, as on the vmap path.
    """
    if isinstance(loss, nn.Module) and hasattr(loss, "reduction"):
        apply = stacked_loss_apply(loss)
        params = {name: p.detach() for name, p in loss.named_parameters()}
        return lambda input, target, side: apply(params, input, target, side)
    names = tuple(getattr(loss, "side_inputs", ()))

    def one_task(input, target, side):
        return loss(input, target, **side)

    def apply(input, target, side):  # the side inputs it reads (not the step's progress)
        return vmap(one_task)(input, target, {name: side[name] for name in names})

    return apply


def side_inputs_of(loss: LossLike) -> tuple[str, ...]:
    """The side inputs ``loss`` reads by keyword (its ``side_inputs`` attribute)."""
    return tuple(getattr(loss, "side_inputs", ()))


class TaskBlocksLoss(nn.Module):
    """Consecutive blocks of stacked tasks, each block trained with a loss of its own.

    The engine calls a loss once on all tasks' rows laid end to end; this module cuts them
    back into tasks, gives each block its own loss (`task_loss`) and returns every task's
    loss ``(T,)``, which the engine then averages per task (a mean over one value). Its
    ``reduction`` exists for the engine and is ignored.

    Args:
        blocks: ``[(loss, number of tasks)]`` in the order of the stacked tasks.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> loss = TaskBlocksLoss([(nn.MSELoss(), 2), (nn.L1Loss(), 1)])
        >>> prediction, target = torch.full((3, 4, 1), 2.0), torch.zeros(3, 4, 1)
        >>> loss(prediction.flatten(0, 1), target.flatten(0, 1))  # MSE, MSE, L1
        tensor([4., 4., 2.])
    """

    batch_dependent = False
    takes_progress = True
    """The engine gives it each step's training progress (keyword `PROGRESS_INPUT`), which it
    hands to every block's loss, so that a loss that reads progress is scheduled."""

    def __init__(self, blocks: Sequence[tuple[LossLike, int]]) -> None:
        super().__init__()
        self.reduction = "mean"
        self.side_inputs = tuple(sorted({n for loss, _ in blocks for n in side_inputs_of(loss)}))
        self._applies = [task_loss(loss) for loss, _ in blocks]  # a list: no submodules
        self._sizes = [count for _, count in blocks]

    def forward(self, input: torch.Tensor, target: torch.Tensor, **side: torch.Tensor):
        tasks = sum(self._sizes)
        progress = side.pop(PROGRESS_INPUT, None)
        input, target = _per_task(input, tasks), _per_task(target, tasks)
        side = {name: _per_task(value, tasks) for name, value in side.items()}
        scheduled = {} if progress is None else {PROGRESS_INPUT: progress}
        pieces = zip(
            self._applies,
            input.split(self._sizes),
            target.split(self._sizes),
            _split_dict(side, self._sizes),
            strict=True,
        )
        return torch.cat([apply(i, t, {**s, **scheduled}) for apply, i, t, s in pieces])


def _per_task(rows: torch.Tensor, tasks: int) -> torch.Tensor:
    """Rows ``(T * N, ...)`` laid end to end, as ``(T, N, ...)``."""
    return rows.reshape(tasks, -1, *rows.shape[1:])


def _split_dict(values: dict[str, torch.Tensor], sizes: list[int]) -> list[dict]:
    parts = {name: value.split(sizes) for name, value in values.items()}
    return [{name: part[i] for name, part in parts.items()} for i in range(len(sizes))]


def family_refusal(
    tasks: TaskFamily, template: nn.Module, batch: TaskBatch, optimizer: str
) -> str | None:
    """Why the engine cannot train this family's models with ``optimizer``, in one line, or
    ``None`` when it can (`learnedloss.meta.engine.engine_refusal`, and no frozen
    parameters, which the vmap path keeps frozen and the engine would train)."""
    if any(not p.requires_grad for p in template.parameters()):
        return f"{type(template).__name__} has frozen parameters"
    return engine_refusal(template, nn.MSELoss(), optimizer, 1.0, tasks.loss_arguments, batch)


def loss_refusal(loss: LossLike, template: nn.Module, batch: TaskBatch) -> str | None:
    """Why the engine cannot train with ``loss``, in one line, or ``None`` when it can.

    A loss whose parameters train with each model is refused; any other is tried on the
    first task of ``batch`` (its value and its gradient), and refused if that fails."""
    if trained_with_model(loss):
        return (
            f"{type(loss).__name__} trains its own parameters with each model "
            "(JointInnerLoop), which the engine does not run"
        )
    device = next(template.parameters()).device
    x, y = batch.x_train[:1].to(device), batch.y_train[:1].to(device)
    try:
        with torch.enable_grad():
            prediction = template(x[0]).detach().unsqueeze(0).requires_grad_()
            rows = (prediction.flatten(0, 1), y.flatten(0, 1))
            value = TaskBlocksLoss([(loss, 1)])(*rows, x=x.flatten(0, 1))
            torch.autograd.grad(value.sum(), prediction)
    except Exception as err:  # any failure means: train it on the vmap path
        message = str(err).splitlines()[0] if str(err) else ""
        return f"the loss fails on stacked tasks: {type(err).__name__}: {message}"[:200]
    if value.shape != (1,):
        return f"the loss gives shape {tuple(value.shape)} per task, not a scalar"
    return None


def engine_curves(
    runs: Sequence[EngineRun],
    tasks: TaskFamily,
    template: nn.Module,
    batch: TaskBatch,
    params: dict[str, torch.Tensor],
    *,
    steps: int,
    optimizer: str,
    objective: Callable,
    score_on: str = "query",
    every: int = 1,
    device: str | torch.device = "cpu",
    max_models: int = ENGINE_MAX_MODELS,
) -> list[torch.Tensor]:
    """Train every run on all tasks of the draw ``(batch, params)`` as few engine calls.

    Args:
        runs: the (loss, lr) runs; the losses must pass `loss_refusal`.
        tasks: the family (its ``loss_arguments``).
        template, batch, params: the draw (`learnedloss.evaluation.held_out_draw`).
        steps: optimizer steps per model.
        optimizer: ``"sgd"`` or ``"adam"``.
        objective: scores one trained model, ``(params, prediction, target, extra)``.
        score_on: ``"query"`` or ``"train"``.
        every: record the objective every this many steps.
        device: where the models train.
        max_models: the most models one call trains (whole runs per call).

    Returns:
        One ``(steps // every + 1, len(batch), ...)`` tensor of objectives per run, on the
        CPU, as `learnedloss.evaluation.train_curves` returns for it.
    """
    per_call = max(1, max_models // len(batch))
    batch = batch.to(device)
    params = {name: value.to(device) for name, value in params.items()}
    template = template.to(device)
    curves: list[torch.Tensor] = []
    for start in range(0, len(runs), per_call):
        chunk = runs[start : start + per_call]
        engine = BatchedInnerLoop(
            template,
            TaskBlocksLoss(_blocks(chunk, len(batch))),
            objective,
            optimizer,
            chunk[0].lr,
            loss_arguments=tasks.loss_arguments,
        )
        lrs = torch.tensor([run.lr for run in chunk], dtype=torch.float64)
        stacked = engine.curves(
            {name: _tile(value, len(chunk)) for name, value in params.items()},
            {},
            tile_batch(batch, len(chunk)),
            steps,
            score_on=score_on,
            every=every,
            lr=lrs.repeat_interleave(len(batch)).to(device),
        )
        curves += list(stacked.cpu().split(len(batch), dim=1))
    return curves


def _blocks(runs: Sequence[EngineRun], per_run: int) -> list[tuple[LossLike, int]]:
    """Consecutive runs of one loss merged into one block of tasks."""
    blocks: list[tuple[LossLike, int]] = []
    for run in runs:
        if blocks and blocks[-1][0] is run.loss:
            blocks[-1] = (run.loss, blocks[-1][1] + per_run)
        else:
            blocks.append((run.loss, per_run))
    return blocks


def _tile(tensor: torch.Tensor, count: int) -> torch.Tensor:
    return tensor.repeat(count, *[1] * (tensor.dim() - 1))
