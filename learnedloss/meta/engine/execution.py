"""`EngineExecution`: the `learnedloss.meta.execution.TaskObjectives` of `MetaTrainer` on the
batched engine (`BatchedInnerLoop`), chosen by ``MetaTrainer(path="engine")``.

Besides the protocol's ``objectives``, it scores a whole population of loss weights at once
(`EngineExecution.population_objectives`): the ``C`` candidates' copies of the meta-batch's
``T`` tasks are stacked into one ``C * T``-task training run, which is how evolution
strategies and CMA-ES evaluate a generation.
"""

from __future__ import annotations

import dataclasses

import torch

from learnedloss.meta.engine.loop import BatchedInnerLoop, Params
from learnedloss.tasks.base import TaskBatch, TaskFamily, template_model

ENGINE_PATH = "engine"
"""The ``path`` an `EngineExecution` reports."""


class EngineExecution:
    """Runs a meta-batch's inner loops on `BatchedInnerLoop` (`TaskObjectives`).

    Args:
        family: the tasks' family (its ``make_model`` template, ``meta_objective`` and
            ``loss_arguments``).
        loss: the loss module the models are trained with.
        optimizer: ``"sgd"`` or ``"adam"`` (the engine runs no torchopt transformation).
        lr: the inner learning rate.
        inner_steps: inner steps per task.
        device: where the models run.
        score_on: ``"query"`` or ``"train"``.
        truncate: differentiate only the last ``truncate`` inner steps (``None``: all).
        checkpoint_inner: recompute differentiated steps' activations in the backward pass.

    Raises:
        EngineUnsupported: the loss or optimizer is not one the engine runs (the model is
            checked by `learnedloss.meta.engine.engine_refusal` before one is made).
    """

    def __init__(
        self,
        family: TaskFamily,
        loss: torch.nn.Module,
        optimizer: str,
        lr: float,
        *,
        inner_steps: int,
        device: torch.device,
        score_on: str = "query",
        truncate: int | None = None,
        checkpoint_inner: bool = False,
    ) -> None:
        template = template_model(family, device)
        self.inner_steps = inner_steps
        self.score_on = score_on
        self.truncate = truncate
        self.checkpoint_inner = checkpoint_inner
        self.engine = BatchedInnerLoop(
            template,
            loss,
            family.meta_objective,
            optimizer,
            lr,
            loss_arguments=family.loss_arguments,
        )
        self.path, self.path_reason = ENGINE_PATH, ""

    def use_path(self, path: str, reason: str = "") -> None:
        """Only ``"engine"``: a checkpoint of an engine run resumes on the engine."""
        if path != ENGINE_PATH:
            raise ValueError(f"an engine execution runs on path 'engine', not {path!r}")
        self.path_reason = reason

    def objectives(
        self,
        batch: TaskBatch,
        params: Params,
        loss_params: Params,
        *,
        lr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Each task's objective after its inner loop, shape ``(T,)`` (`TaskObjectives`);
        ``lr``, ``(T,)``, trains each task at its own learning rate."""
        return self.engine.run(
            params,
            loss_params,
            batch,
            self.inner_steps,
            score_on=self.score_on,
            truncate=self.truncate,
            checkpointed=self.checkpoint_inner and torch.is_grad_enabled(),
            lr=lr,
        )

    def population_objectives(
        self,
        batch: TaskBatch,
        params: Params,
        population: list[Params],
        *,
        lr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every candidate's task objectives, ``(C, T)``, from one stacked training run of
        ``C * T`` models with no graph (one loss call per step, vmapped over the candidates).

        Every candidate trains on the same tasks from the same initial models, at the same
        per-task learning rates ``lr`` if given (common random numbers), as evaluating the
        candidates one by one would.
        """
        count = len(population)
        with torch.no_grad():
            tiled = {k: _tile(v, count) for k, v in params.items()}
            values = self.engine.run(
                tiled,
                [{k: v.detach() for k, v in own.items()} for own in population],
                tile_batch(batch, count),
                self.inner_steps,
                score_on=self.score_on,
                lr=None if lr is None else _tile(lr, count),
            )
        return values.view(count, len(batch))


def _tile(tensor: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` copies of ``tensor`` one after the other along dimension 0."""
    return tensor.repeat(count, *[1] * (tensor.dim() - 1))


def tile_batch(batch: TaskBatch, count: int) -> TaskBatch:
    """The batch's tasks ``count`` times over, copy after copy (a batch of the same type)."""
    return dataclasses.replace(
        batch,
        x_train=_tile(batch.x_train, count),
        y_train=_tile(batch.y_train, count),
        x_query=_tile(batch.x_query, count),
        y_query=_tile(batch.y_query, count),
        extra={k: _tile(v, count) for k, v in batch.extra.items()},
    )
