"""The batched inner loop: ``T`` models trained as one, differentiably or with no graph.

All tasks' parameters live in one flat ``(T, P)`` tensor; the layers read views of it. A
step runs the stacked forward pass (`learnedloss.meta.engine.models`), every task's loss at
once (`learnedloss.meta.engine.losses`), the gradient of the tasks' summed losses (tasks are
independent, so that is every task's own gradient: for an MLP, autograd through the loss
alone and the model's chain rule written out, `StackedModel.backward`; autograd otherwise),
and one fused update of the flat tensor (`learnedloss.meta.engine.optimizers`). No Python
runs per task and nothing is vmapped, except the final scoring, one ``vmap`` of the task
objective, and a batch-dependent loss, one ``vmap`` over the tasks per step (so that each
task's batch statistics are its own).

Two modes, chosen by the caller's grad mode, as the vmap path does:

- **backprop** (grad enabled): updates are out of place and the objectives are a
  differentiable function of the loss's parameters; ``truncate`` and ``checkpointed`` work as
  in `learnedloss.meta.inner.InnerLoop.run`.
- **no graph** (inside ``torch.no_grad()``, for evolution strategies and population search):
  each step takes its gradient on detached parameters and updates them in place; nothing is
  kept from one step to the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import vmap
from torch.utils.checkpoint import checkpoint

from learnedloss.config import PROGRESS_INPUT
from learnedloss.meta.engine.errors import EngineUnsupported
from learnedloss.meta.engine.losses import check_loss_arguments, stacked_loss_apply
from learnedloss.meta.engine.models import StackedModel, compile_model
from learnedloss.meta.engine.optimizers import StackedOptimizer, stacked_optimizer
from learnedloss.progress import progress_schedule
from learnedloss.tasks.base import TaskBatch, default_loss_arguments

Params = dict[str, torch.Tensor]
Objective = Callable[[Params, torch.Tensor, torch.Tensor, dict], torch.Tensor]


def minibatch_indices(
    n_tasks: int, n_rows: int, batch_size: int, n_steps: int, generator: torch.Generator
) -> torch.Tensor:
    """Every task's own minibatch stream, as a shuffling data loader draws it.

    Each task walks through its rows in a fresh random order every epoch, ``batch_size`` at a
    time (a last batch smaller than ``batch_size`` is dropped), independently of the others.

    Returns:
        ``(n_steps, n_tasks, batch_size)`` row indices (int64, on the CPU).
    """
    if not 1 <= batch_size <= n_rows:
        raise ValueError(f"batch_size must be in [1, {n_rows}], got {batch_size}")
    per_epoch = n_rows // batch_size
    epochs = math.ceil(n_steps / per_epoch)
    orders = torch.rand(epochs, n_tasks, n_rows, generator=generator).argsort(dim=-1)
    batches = orders[..., : per_epoch * batch_size].reshape(epochs, n_tasks, per_epoch, -1)
    return batches.transpose(1, 2).reshape(-1, n_tasks, batch_size)[:n_steps]


def _take_rows(data: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``data[t, rows[t]]`` for every task ``t``: ``data`` ``(T, N, ...)``, ``rows`` ``(T, B)``."""
    index = rows.view(*rows.shape, *[1] * (data.dim() - 2))
    return torch.take_along_dim(data, index, dim=1)


@dataclass
class _Run:
    """What one call trains with: the data, the rows of every step, the learning rate, and
    the parameters' shapes for one task (those given, which may differ from the template's
    widths: a family may draw a width per meta-batch)."""

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor | None
    lr: float | torch.Tensor
    shapes: dict[str, torch.Size]
    schedule: torch.Tensor
    """Each step's training progress (`learnedloss.progress.progress_schedule`)."""

    def data(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.indices is None:
            return self.x, self.y
        rows = self.indices[step]
        return _take_rows(self.x, rows), _take_rows(self.y, rows)


@dataclass
class BatchedInnerLoop:
    """Trains a meta-batch of small models as one and scores them with the task objective.

    The same job as `learnedloss.meta.inner.InnerLoop` (same parameter layout, same
    ``run``), for the models `learnedloss.meta.engine.models.compile_model` takes.

    Args:
        model: a template module (its weights are not used).
        loss: the loss module the models train with (see `stacked_loss_apply`).
        objective: scores one trained model, ``(params, prediction, target, extra) ->
            scalar`` (`TaskFamily.meta_objective`), vmapped over the tasks once per run.
        optimizer: ``"sgd"`` or ``"adam"`` (with ``lr``), or a `StackedSGD`/`StackedAdam`.
        lr: the learning rate of a string ``optimizer``.
        loss_arguments: the tasks' `TaskFamily.loss_arguments`; only the default is taken.

    Raises:
        EngineUnsupported: the loss, optimizer or task is not one the engine runs (the model
            is checked at the first call, once the input shape is known).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from learnedloss.tasks.base import mse_objective
        >>> from learnedloss.meta.inner import initial_params, plain_objective
        >>> from learnedloss.families.sine import SineTasks
        >>> tasks = SineTasks(n_train=20, n_query=20, hidden=(16,))
        >>> generator = torch.Generator().manual_seed(0)
        >>> batch = tasks.sample(4, generator)
        >>> template, params = initial_params(tasks.make_model, 4, generator)
        >>> engine = BatchedInnerLoop(template, nn.MSELoss(), plain_objective(mse_objective),
        ...                           "adam", lr=1e-2)
        >>> engine.run(params, {}, batch, n_steps=5).shape
        torch.Size([4])
    """

    model: nn.Module
    loss: nn.Module
    objective: Objective
    optimizer: str | StackedOptimizer
    lr: float | None = None
    loss_arguments: Callable = default_loss_arguments
    _plans: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.optimizer = stacked_optimizer(self.optimizer, self.lr)
        self._loss_apply = stacked_loss_apply(self.loss)
        check_loss_arguments(self.loss_arguments)

    def plan(self, in_shape: tuple[int, ...]) -> StackedModel:
        """The stacked model for inputs of per-row shape ``in_shape`` (compiled once)."""
        key = tuple(in_shape)
        if key not in self._plans:
            self._plans[key] = compile_model(self.model, key)
        return self._plans[key]

    def check(self, batch: TaskBatch) -> None:
        """Raise `EngineUnsupported` now if the engine cannot train the model on ``batch``."""
        self.plan(batch.x_train.shape[2:])

    # -- the public calls --------------------------------------------------------------

    def run(
        self,
        params: Params,
        loss_params: Params,
        batch: TaskBatch,
        n_steps: int,
        score_on: str = "query",
        truncate: int | None = None,
        checkpointed: bool = False,
        *,
        lr: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Train every task's model for ``n_steps`` and return their objectives ``(T,)``.

        Args:
            params: the initial models, stacked ``{name: (T, ...)}`` (not modified).
            loss_params: the loss's parameters (perturbed ones for ES), by name; or a
                population, a list of ``C`` of them, with no graph: the tasks are ``C``
                equal consecutive blocks, block ``c`` trained with ``loss_params[c]`` (the
                models train as one stacked call; the loss, one call vmapped over the blocks).
            batch: the tasks.
            n_steps: inner steps.
            score_on: ``"query"`` or ``"train"``.
            truncate: differentiate only the last ``truncate`` steps.
            checkpointed: recompute each differentiated step's activations in the backward
                pass (reentrant checkpointing: use ``.backward()``, not ``autograd.grad``).
            lr: a learning rate per task, ``(T,)``, instead of the optimizer's.
            indices: ``(n_steps, T, B)`` rows of ``batch.x_train`` each task trains on at
                each step (`minibatch_indices`); ``None`` trains on all rows every step.
        """
        trained = self.train(
            params, loss_params, batch, n_steps, truncate, checkpointed, lr=lr, indices=indices
        )
        return self.score(trained, *batch.scored(score_on), batch.extra)

    def train(
        self,
        params: Params,
        loss_params: Params,
        batch: TaskBatch,
        n_steps: int,
        truncate: int | None = None,
        checkpointed: bool = False,
        *,
        lr: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> Params:
        """Train every task's model for ``n_steps``; the trained parameters, stacked."""
        plan = self.plan(batch.x_train.shape[2:])
        run = self._prepare(batch, params, plan, n_steps, lr, indices)
        flat = torch.cat([params[name].flatten(1) for name in run.shapes], dim=1)
        state = self.optimizer.init(flat)
        differentiated = n_steps if truncate is None else min(truncate, n_steps)
        if not torch.is_grad_enabled():
            differentiated = 0
        if differentiated < n_steps:
            frozen = _detached(loss_params)
            flat, state = flat.detach().clone(), tuple(s.detach() for s in state)
            with torch.no_grad():
                for step in range(n_steps - differentiated):
                    flat, state = self._step(plan, run, step, flat, state, frozen, inplace=True)
        for step in range(n_steps - differentiated, n_steps):
            if checkpointed:
                flat, state = self._checkpointed_step(plan, run, step, flat, state, loss_params)
            else:
                flat, state = self._step(plan, run, step, flat, state, loss_params)
        return _unflatten(flat, run.shapes)

    def score(self, params: Params, x: torch.Tensor, y: torch.Tensor, extra: dict | None = None):
        """The objective of every task's model: shape ``(T,)``."""
        prediction = self.plan(x.shape[2:]).forward(params, x)
        return vmap(self.objective)(params, prediction, y, extra or {})

    def curves(
        self,
        params: Params,
        loss_params: Params,
        batch: TaskBatch,
        n_steps: int,
        score_on: str = "query",
        every: int = 1,
        *,
        lr: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Train with no graph; the objective every ``every`` steps, ``(n_steps // every + 1,
        T)``, the first row before training."""
        if n_steps % every:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of every ({every})")
        plan = self.plan(batch.x_train.shape[2:])
        run = self._prepare(batch, params, plan, n_steps, lr, indices)
        x, y = batch.scored(score_on)
        with torch.no_grad():
            frozen = _detached(loss_params)
            flat = torch.cat([params[name].flatten(1) for name in run.shapes], dim=1).clone()
            state = self.optimizer.init(flat)
            scores = [self.score(_unflatten(flat, run.shapes), x, y, batch.extra)]
            for step in range(n_steps):
                flat, state = self._step(plan, run, step, flat, state, frozen, inplace=True)
                if (step + 1) % every == 0:
                    scores.append(self.score(_unflatten(flat, run.shapes), x, y, batch.extra))
            return torch.stack(scores)

    # -- one step ----------------------------------------------------------------------

    def _prepare(self, batch: TaskBatch, params, plan, n_steps: int, lr, indices) -> _Run:
        tasks = len(batch)
        if set(params) != set(plan.shapes):
            raise ValueError(f"params must be {sorted(plan.shapes)}, got {sorted(params)}")
        shapes = {name: params[name].shape[1:] for name in plan.shapes}
        if indices is not None and (indices.dim() != 3 or indices.shape[:2] != (n_steps, tasks)):
            raise ValueError(
                f"indices must be (n_steps, tasks, batch) = ({n_steps}, {tasks}, B), got "
                f"{tuple(indices.shape)}"
            )
        if indices is not None:
            indices = indices.to(batch.x_train.device)
        rate = self.optimizer.lr
        if lr is not None:
            if lr.shape != (tasks,):
                raise ValueError(f"lr must be one per task, ({tasks},), got {tuple(lr.shape)}")
            rate = lr.to(batch.x_train.device, batch.x_train.dtype).view(tasks, 1)
        x, y = batch.x_train.contiguous(), batch.y_train.contiguous()
        schedule = progress_schedule(0, n_steps, n_steps, x)
        return _Run(x, y, indices, rate, shapes, schedule)

    def _step(self, plan, run: _Run, step, flat, state, loss_params, inplace: bool = False):
        """One inner step of every task; builds a graph through it iff grad mode is on."""
        differentiable = torch.is_grad_enabled()
        x, y = run.data(step)
        progress = run.schedule[step]
        with torch.enable_grad():
            source = flat if differentiable and flat.requires_grad else flat.detach()
            if plan.has_manual_backward:
                params = _unflatten(source, run.shapes)
                grads = self._written_out_gradient(
                    plan, params, loss_params, x, y, progress, differentiable
                )
            else:
                source = source.requires_grad_() if not source.requires_grad else source
                params = _unflatten(source, run.shapes)
                losses = self._losses(loss_params, plan.forward(params, x), x, y, progress)
                grads = torch.autograd.grad(
                    losses.sum(), list(params.values()), create_graph=differentiable
                )
        grad = torch.cat([g.flatten(1) for g in grads], dim=1)
        return self.optimizer.update(flat, grad, state, step + 1, run.lr, inplace)

    def _losses(self, loss_params, prediction, x, y, progress) -> torch.Tensor:
        """Every task's mean loss ``(T,)`` at the step's ``progress``; for a population (a
        list of ``C`` weight dicts), block ``c`` of the tasks with weights ``c``, all blocks in
        one ``vmap`` over the candidates (one loss call per step, not ``C``: a loss's
        per-call cost dominates at small sizes)."""
        if isinstance(loss_params, list) and loss_params[0]:
            blocks = len(loss_params)
            stacked = {
                name: torch.stack([own[name] for own in loss_params]) for name in loss_params[0]
            }

            def block(own, prediction, x, y):
                return self._losses(own, prediction, x, y, progress)

            split = [t.unflatten(0, (blocks, -1)) for t in (prediction, x, y)]
            return vmap(block)(stacked, *split).flatten()
        if isinstance(loss_params, list):  # a population of weightless losses: the same loss
            loss_params = loss_params[0]
        input, target, offered = default_loss_arguments(prediction, y, x)
        offered[PROGRESS_INPUT] = progress
        return self._loss_apply(loss_params, input, target, offered)

    def _written_out_gradient(
        self, plan, params, loss_params, x, y, progress, differentiable: bool
    ):
        """The parameter gradients of an MLP: autograd for the loss's gradient in the
        prediction alone, the model's chain rule written out (`StackedModel.backward`)."""
        with torch.set_grad_enabled(differentiable):
            prediction, kept = plan.forward_kept(params, x)
        if not prediction.requires_grad:  # no graph, or the first step from fixed weights
            prediction = prediction.requires_grad_()
        losses = self._losses(loss_params, prediction, x, y, progress)
        (grad_output,) = torch.autograd.grad(losses.sum(), prediction, create_graph=differentiable)
        with torch.set_grad_enabled(differentiable):
            return plan.backward(params, kept, grad_output)

    def _checkpointed_step(self, plan, run, step, flat, state, loss_params):
        """`_step` with its activations recomputed in the backward pass (reentrant
        checkpointing passes gradients only to positional tensors: the state is flattened)."""
        names = list(loss_params)

        def flat_step(flat, *tensors):
            step_state = tuple(tensors[: len(state)])
            step_loss = dict(zip(names, tensors[len(state) :], strict=True))
            new_flat, new_state = self._step(plan, run, step, flat, step_state, step_loss)
            return (new_flat, *new_state)

        out = checkpoint(flat_step, flat, *state, *loss_params.values(), use_reentrant=True)
        return out[0], tuple(out[1:])


def _detached(loss_params: Params | list[Params]) -> Params | list[Params]:
    """The loss's parameters (or a population's, a list of them) cut from any graph."""
    if isinstance(loss_params, list):
        return [_detached(own) for own in loss_params]
    return {k: v.detach() for k, v in loss_params.items()}


def _unflatten(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> Params:
    """Views of the ``(T, P)`` tensor ``flat`` as stacked parameters ``{name: (T, ...)}``."""
    params, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        params[name] = flat[:, offset : offset + size].view(flat.shape[0], *shape)
        offset += size
    return params


def engine_refusal(model: nn.Module, loss: nn.Module, optimizer, lr, loss_arguments, batch):
    """Why the engine cannot run this set-up, in one line, or ``None`` when it can."""
    try:
        engine = BatchedInnerLoop(model, loss, lambda *a: a[1], optimizer, lr, loss_arguments)
        engine.check(batch)
    except EngineUnsupported as err:
        return str(err)
    return None
