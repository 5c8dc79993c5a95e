"""How `MetaTrainer` runs the inner loops of an outer step: the `TaskObjectives` interface
and `InnerExecution`, its implementation on `learnedloss.meta.inner.InnerLoop`.

The trainer never runs an inner loop itself. It holds one object per task family (the
training tasks and the meta-validation tasks) that satisfies `TaskObjectives`: given a task
batch, the models' initial parameters and the loss's parameters, it returns every task's
objective after the inner loop. The settings of the inner loop (family, loss, optimizer,
steps, truncation, ...) are fixed when the object is made. A faster engine replaces
`InnerExecution` by implementing the same protocol.
"""

from __future__ import annotations

import warnings
from typing import Protocol, runtime_checkable

import torch
import torchopt

from learnedloss.meta.inner import InnerLoop, Params, learned_loss_apply
from learnedloss.tasks.base import TaskBatch, TaskFamily, template_model

PATHS = ("auto", "vmap", "loop")
"""The paths `InnerExecution` runs on: ``"auto"`` is vmap until the model fails under it."""


@runtime_checkable
class TaskObjectives(Protocol):
    """Runs a meta-batch of inner loops and scores them: what `MetaTrainer` calls.

    Contract:

    - ``objectives(batch, params, loss_params)`` trains one model per task of ``batch``
      (``T`` tasks, stacked on dimension 0 of every tensor), starting from ``params``
      (``{name: (T, ...)}``, from `learnedloss.meta.inner.initial_params`), with the loss
      called with the weights ``loss_params`` (``{name: tensor}``, as in
      ``loss.named_parameters()``; possibly perturbed ones, for evolution strategies) for
      the configured number of inner steps. It returns the task objective of each trained
      model, a tensor of shape ``(T,)``. An execution that can train each task at its own
      learning rate (the engine's `learnedloss.meta.engine.EngineExecution`) also takes
      ``lr=`` ``(T,)`` by keyword; `MetaTrainer` passes it only with ``inner_lr_range``,
      which it allows on such an execution alone.
    - Under ``torch.is_grad_enabled()`` the result is differentiable in ``loss_params``
      (second order, through the inner steps; only the last ``truncate`` steps where
      truncation is configured). Under ``torch.no_grad()`` no graph is built.
    - It draws no random numbers and leaves the global RNG as it was, so that a seeded run
      is reproducible.
    - ``path`` and ``path_reason`` say how it runs, for checkpoints and messages:
      ``path`` is a short JSON-ready string (`InnerExecution`: ``"auto"`` until the first
      call, then ``"vmap"`` or ``"loop"``), ``path_reason`` why it fell back (``""``
      otherwise). ``use_path(path, reason)`` restores what a checkpoint recorded, so that a
      resumed run runs as the run it continues.
    """

    path: str
    path_reason: str

    def objectives(self, batch: TaskBatch, params: Params, loss_params: Params) -> torch.Tensor:
        """Each task's objective after its inner loop, shape ``(T,)``."""
        ...

    def use_path(self, path: str, reason: str = "") -> None:
        """Run on ``path`` from now on (a value `path` took before), recording ``reason``."""
        ...


class InnerExecution:
    """`TaskObjectives` on `InnerLoop`: ``torch.func.vmap`` over the tasks, or a loop.

    With ``path="auto"``, the first call runs under vmap; if the model cannot run under it
    (a `RuntimeError`), it warns, switches to the loop over tasks (slower, same result) for
    good, and records the first line of the error as ``path_reason``.

    Args:
        family: the tasks' family: its ``make_model`` (a template, whose weights are never
            used), ``meta_objective`` and ``loss_arguments``.
        loss: the loss module the models are trained with (called with explicit weights).
        optimizer: the inner optimizer, a torchopt ``GradientTransformation``.
        inner_steps: inner steps per task (>= 1).
        device: where the models run.
        score_on: ``"query"`` or ``"train"``: which points score a trained model.
        truncate: differentiate only the last ``truncate`` inner steps (``None``: all).
        checkpoint_inner: recompute each differentiated step's activations in the backward
            pass (only while gradients are enabled).
        path: ``"auto"``, ``"vmap"`` or ``"loop"``.

    Examples:
        >>> import torch, torchopt
        >>> from learnedloss import LearnedLoss, LossConfig
        >>> from learnedloss.meta.inner import initial_params
        >>> from learnedloss.families.sine import SineTasks
        >>> tasks, loss = SineTasks(), LearnedLoss(LossConfig())
        >>> execution = InnerExecution(
        ...     tasks, loss, torchopt.sgd(1e-3), inner_steps=1, device=torch.device("cpu")
        ... )
        >>> generator = torch.Generator().manual_seed(0)
        >>> batch = tasks.sample(3, generator)
        >>> _, params = initial_params(tasks.make_model, 3, generator)
        >>> execution.objectives(batch, params, dict(loss.named_parameters())).shape
        torch.Size([3])
        >>> execution.path
        'vmap'
    """

    def __init__(
        self,
        family: TaskFamily,
        loss: torch.nn.Module,
        optimizer: torchopt.base.GradientTransformation,
        *,
        inner_steps: int,
        device: torch.device,
        score_on: str = "query",
        truncate: int | None = None,
        checkpoint_inner: bool = False,
        path: str = "auto",
    ) -> None:
        if path not in PATHS:
            raise ValueError(f"path must be 'auto', 'vmap' or 'loop', got {path!r}")
        template = template_model(family, device)
        self.inner_steps = inner_steps
        self.score_on = score_on
        self.truncate = truncate
        self.checkpoint_inner = checkpoint_inner
        self._loop = InnerLoop(
            template,
            learned_loss_apply(loss),
            family.meta_objective,
            optimizer,
            path="loop" if path == "loop" else "vmap",
            loss_arguments=family.loss_arguments,
        )
        self.path, self.path_reason = path, ""

    def use_path(self, path: str, reason: str = "") -> None:
        """Run on ``path`` (``"auto"``, ``"vmap"`` or ``"loop"``) with ``reason`` recorded."""
        self.path, self.path_reason = path, reason
        self._loop.path = "loop" if path == "loop" else "vmap"

    def objectives(self, batch: TaskBatch, params: Params, loss_params: Params) -> torch.Tensor:
        """Each task's objective after its inner loop, shape ``(T,)`` (`TaskObjectives`)."""
        if self.path != "auto":
            return self._run(batch, params, loss_params)
        try:
            result = self._run(batch, params, loss_params)
            self.use_path("vmap")
            return result
        except RuntimeError as err:
            self.use_path("loop", str(err).splitlines()[0])
            warnings.warn(
                f"the model cannot run under torch.func.vmap ({self.path_reason}); "
                "meta-training loops over tasks instead (slower, same result)",
                stacklevel=3,
            )
            return self._run(batch, params, loss_params)

    def _run(self, batch: TaskBatch, params: Params, loss_params: Params) -> torch.Tensor:
        return self._loop.run(
            params,
            loss_params,
            batch,
            self.inner_steps,
            score_on=self.score_on,
            truncate=self.truncate,
            checkpointed=self.checkpoint_inner and torch.is_grad_enabled(),
        )
