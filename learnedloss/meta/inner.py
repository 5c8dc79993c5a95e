"""The differentiable inner loop: train one model per task with a loss, through torchopt.

Each task's model is trained functionally: its parameters are a dict of tensors passed to
``torch.func.functional_call``; its gradient comes from ``torch.func.grad``; the update from
a torchopt functional optimizer (``update(..., inplace=False)`` and ``apply_updates``). The
result stays a differentiable function of the loss's parameters, so the meta-objective can be
backpropagated through the inner steps into the loss (second order; a first-order
approximation would give the loss no gradient at all).

Two paths run a meta-batch of tasks:

- ``"vmap"``: one ``torch.func.vmap`` over the task dimension. Fast.
- ``"loop"``: a Python loop over tasks, for models vmap cannot take (BatchNorm updating its
  running statistics, data-dependent control flow).

Both compute the same values and meta-gradients (a test checks it). Memory knobs: truncation
(backpropagate only through the last ``k`` of ``K`` steps) and activation checkpointing of
each inner step (recompute instead of store).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchopt
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.checkpoint import checkpoint
from torchopt import pytree

from learnedloss.config import PROGRESS_INPUT
from learnedloss.errors import TaskModelError
from learnedloss.loss import finite_check_disabled
from learnedloss.progress import progress_for_calls, progress_schedule
from learnedloss.tasks.base import TaskBatch, default_loss_arguments

Params = dict[str, torch.Tensor]
LossArguments = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]],
]
"""``loss_arguments(prediction, target, x) -> (input, target, side_inputs)``: what a loss is
called with, given one task's model output, targets and model input (see
`TaskFamily.loss_arguments`)."""
LossApply = Callable[[Params, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
"""``loss_apply(loss_params, input, target, side_inputs) -> scalar``: the loss the inner loop
uses; ``side_inputs`` are what the task offers (e.g. ``x``, the model's input), of which a
learned loss takes those it declares."""
Objective = Callable[[Params, torch.Tensor, torch.Tensor, dict], torch.Tensor]
"""``objective(params, prediction, target, extra) -> scalar``: how one trained model is
scored (see `TaskFamily.meta_objective`)."""

INNER_OPTIMIZERS = ("sgd", "adam")
"""The string shorthands for inner optimizers (see `make_inner_optimizer`)."""

InnerOptimizer = str | torchopt.base.GradientTransformation
"""An inner optimizer: a torchopt ``GradientTransformation`` (carrying its own learning
rate), or one of the shorthands in `INNER_OPTIMIZERS` (given a learning rate)."""


def make_inner_optimizer(
    optimizer: InnerOptimizer, lr: float | None = None
) -> torchopt.base.GradientTransformation:
    """A torchopt functional optimizer for the inner loop.

    A ``GradientTransformation`` (e.g. ``torchopt.adam(1e-2, eps_root=1e-8)``, or any
    ``torchopt.chain``) carries its own learning rate and is returned as it is: giving
    ``lr`` as well is an error. The shorthands need ``lr``: ``"sgd"`` is
    ``torchopt.sgd(lr)`` and ``"adam"`` is ``torchopt.adam(lr, eps_root=1e-8)``.

    Adam gets ``eps_root=1e-8``: without it, differentiating through Adam's square root gives
    NaN meta-gradients wherever a gradient is exactly zero. Give a custom Adam the same.

    Examples:
        >>> import torchopt
        >>> sgd = make_inner_optimizer("sgd", 0.1)
        >>> adam = make_inner_optimizer(torchopt.adam(1e-2, eps_root=1e-8))
    """
    if isinstance(optimizer, torchopt.base.GradientTransformation):
        if lr is not None:
            raise ValueError(
                "a torchopt GradientTransformation carries its own learning rate, so "
                f"inner_lr must not be given with it (got inner_lr={lr!r}); build it with "
                "the lr (e.g. torchopt.sgd(0.1)), or pass 'sgd' or 'adam' with inner_lr"
            )
        return optimizer
    if optimizer not in INNER_OPTIMIZERS:
        raise ValueError(
            f"inner optimizer must be one of {list(INNER_OPTIMIZERS)} or a torchopt "
            f"GradientTransformation (e.g. torchopt.adam(1e-2, eps_root=1e-8)), got "
            f"{optimizer!r}"
        )
    if lr is None:
        raise ValueError(f"the inner optimizer {optimizer!r} needs a learning rate (lr)")
    if optimizer == "sgd":
        return torchopt.sgd(lr)
    return torchopt.adam(lr, eps_root=1e-8)


def learned_loss_apply(loss: nn.Module) -> LossApply:
    """Call ``loss`` (an ``nn.Module``) with explicit parameters, for the inner loop.

    A loss that reads training progress reads the step's, which the inner loop offers under
    `learnedloss.config.PROGRESS_INPUT` (`learnedloss.loss.progress_for_calls`). A loss that
    declares side inputs is given them from what the task offers (see
    `TaskFamily.loss_arguments`); one the task does not offer is a clear error.
    """
    side = tuple(getattr(getattr(loss, "config", None), "side_inputs", ()))

    def apply(loss_params: Params, input, target, offered):
        side_inputs = _side_inputs(side, offered)
        with finite_check_disabled(loss), progress_for_calls(loss, offered.get(PROGRESS_INPUT)):
            return functional_call(loss, loss_params, (input, target), side_inputs)

    return apply


def plain_loss_apply(loss_fn: Callable[..., torch.Tensor]) -> LossApply:
    """Wrap a parameter-free loss such as ``nn.MSELoss()`` for the inner loop.

    It sees (input, target), plus by keyword the side inputs named in its ``side_inputs``
    attribute, if it has one (e.g. `learnedloss.evaluation.baselines.reinforce_from_returns`).
    A frozen learned loss that reads training progress (in ``loss_fn`` or among its
    submodules) reads the step's, as in `learned_loss_apply`."""
    side = tuple(getattr(loss_fn, "side_inputs", ()))

    def apply(loss_params: Params, input, target, offered):
        with progress_for_calls(loss_fn, offered.get(PROGRESS_INPUT)):
            return loss_fn(input, target, **_side_inputs(side, offered))

    return apply


def _side_inputs(names: tuple[str, ...], offered: dict[str, torch.Tensor]):
    """The side inputs ``names`` from those the task ``offered``; a clear error for one it
    does not offer."""
    missing = sorted(set(names) - set(offered))
    if missing:
        raise ValueError(
            f"this loss reads the side inputs {missing}, but the tasks offer only "
            f"{sorted(offered)} (see TaskFamily.loss_arguments)"
        )
    return {name: offered[name] for name in names}


def plain_objective(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Objective:
    """Score trained models by ``fn(prediction, target)`` alone (e.g. a task's objective)."""

    def objective(params: Params, prediction, target, extra):
        return fn(prediction, target)

    return objective


def initial_params(
    make_model: Callable[[], nn.Module], n_tasks: int, generator: torch.Generator
) -> tuple[nn.Module, Params]:
    """Fresh models for ``n_tasks`` tasks, stacked: ``(template, {name: (T, ...)})``.

    The models are initialized from a seed drawn from ``generator``, so the same generator
    state gives the same initializations; the global RNG is left untouched.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = [make_model() for _ in range(n_tasks)]
    named = [dict(m.named_parameters()) for m in models]
    stacked = {name: torch.stack([p[name].detach() for p in named]) for name in named[0]}
    return models[0], stacked


def frozen_parameters(model: nn.Module) -> frozenset[str]:
    """The names of ``model``'s frozen parameters (``requires_grad=False``), which the inner
    loop leaves as they are. A `TaskModelError` when the model has no parameters or all are
    frozen: the inner loop would train nothing, and no meta-gradient would reach the loss."""
    named = dict(model.named_parameters())
    name = type(model).__name__
    if not named:
        raise TaskModelError(
            f"the task model {name} has no parameters: the inner loop has nothing to train "
            "with the loss. Give the tasks' make_model() a model with trainable parameters"
        )
    frozen = frozenset(k for k, p in named.items() if not p.requires_grad)
    if len(frozen) == len(named):
        raise TaskModelError(
            f"every parameter of the task model {name} is frozen (requires_grad=False): "
            "the inner loop would train nothing, so the loss would get no meta-gradient. "
            "Leave at least one parameter trainable (frozen ones stay frozen)"
        )
    return frozen


@dataclass
class InnerLoop:
    """Trains a meta-batch of models with a loss and scores them with the task objective.

    Args:
        model: a template module; its parameters are replaced per task.
        loss_apply: the loss the models are trained with (see `learned_loss_apply`).
        objective: scores one trained model, ``(params, prediction, target, extra) ->
            scalar`` (see `plain_objective` and `TaskFamily.meta_objective`).
        optimizer: a torchopt ``GradientTransformation`` (see `make_inner_optimizer`).
        path: ``"vmap"`` or ``"loop"``.
        loss_arguments: what the loss is called with (see `TaskFamily.loss_arguments`).
    """

    model: nn.Module
    loss_apply: LossApply
    objective: Objective
    optimizer: torchopt.base.GradientTransformation
    path: str = "vmap"
    loss_arguments: LossArguments = default_loss_arguments

    def __post_init__(self) -> None:
        if self.path not in ("vmap", "loop"):
            raise ValueError(f"path must be 'vmap' or 'loop', got {self.path!r}")
        self._buffers = {k: b.detach() for k, b in self.model.named_buffers()}
        self._frozen = frozen_parameters(self.model)

    # -- one task -----------------------------------------------------------------

    # The state carried through the steps is (optimizer state, buffers): each task's model
    # has its own buffers (e.g. BatchNorm running statistics), passed in explicitly because
    # torch.func.grad forbids mutating tensors a function captures.

    def _predict(self, params: Params, buffers: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (params, buffers), (x,))

    def _train_loss(self, params, loss_params, buffers, x, y, progress):
        input, target, offered = self.loss_arguments(self._predict(params, buffers, x), y, x)
        offered = {**offered, PROGRESS_INPUT: progress}
        return self.loss_apply(loss_params, input, target, offered)

    def _step(self, params, state, loss_params, x, y, progress):
        state, buffers = state
        grads = grad(self._train_loss)(params, loss_params, buffers, x, y, progress)
        with warnings.catch_warnings():
            # torchopt's Adam calls addcmul_, which vmap runs through a slower fallback.
            warnings.filterwarnings("ignore", message="There is a performance drop")
            updates, state = self.optimizer.update(grads, state, params=params, inplace=False)
        if self._frozen:  # frozen parameters (requires_grad=False) stay as they are
            updates = {
                k: torch.zeros_like(u) if k in self._frozen else u for k, u in updates.items()
            }
        return torchopt.apply_updates(params, updates, inplace=False), (state, buffers)

    def _score(self, params, state, x, y, extra):
        return self.objective(params, self._predict(params, state[1], x), y, extra)

    # -- a meta-batch ---------------------------------------------------------------

    def _batched(self, fn, in_dims):
        if self.path == "vmap":
            return vmap(fn, in_dims=in_dims)

        def loop(*args):
            outputs = []
            for i in range(_task_count(args, in_dims)):
                task_args = [
                    arg if dim is None else pytree.tree_map(lambda t, i=i: t[i], arg)
                    for arg, dim in zip(args, in_dims, strict=True)
                ]
                outputs.append(fn(*task_args))
            return pytree.tree_map(lambda *xs: torch.stack(xs), *outputs)

        return loop

    def init_state(self, params: Params):
        """The optimizer state and a copy of the buffers for every task's model."""
        n_tasks = next(iter(params.values())).shape[0]
        buffers = {k: b.expand(n_tasks, *b.shape).clone() for k, b in self._buffers.items()}
        return self._batched(self.optimizer.init, (0,))(params), buffers

    def steps(
        self,
        params,
        state,
        loss_params,
        x,
        y,
        n_steps: int,
        checkpointed: bool = False,
        *,
        first: int = 0,
        total: int | None = None,
    ):
        """Run ``n_steps`` inner steps on every task; returns (params, state).

        The steps are ``first, first + 1, ...`` of a run of ``total`` (default ``first +
        n_steps``) steps: a loss that reads progress sees ``step / total`` at each."""
        step = self._batched(self._step, (0, 0, None, 0, 0, None))
        if checkpointed:
            step = _checkpointed(step)
        total = first + n_steps if total is None else total
        schedule = progress_schedule(first, n_steps, total, x)
        for index in range(n_steps):
            params, state = step(params, state, loss_params, x, y, schedule[index])
        return params, state

    def score(self, params: Params, state, x, y, extra: dict | None = None) -> torch.Tensor:
        """The objective of every task's model: shape ``(T,)``."""
        return self._batched(self._score, (0, 0, 0, 0, 0))(params, state, x, y, extra or {})

    def run(
        self,
        params: Params,
        loss_params: Params,
        batch: TaskBatch,
        n_steps: int,
        score_on: str = "query",
        truncate: int | None = None,
        checkpointed: bool = False,
    ) -> torch.Tensor:
        """Train every task's model for ``n_steps`` and return their objectives ``(T,)``.

        With ``truncate=k``, only the last ``k`` steps are differentiated: the first
        ``n_steps - k`` run without building a graph (the loss still shapes them, but the
        meta-gradient ignores that). ``checkpointed`` recomputes each differentiated step's
        activations in the backward pass instead of storing them.
        """
        differentiated = n_steps if truncate is None else min(truncate, n_steps)
        state = self.init_state(params)
        if differentiated < n_steps:
            frozen = {k: v.detach() for k, v in loss_params.items()}
            with torch.no_grad():
                params, state = self.steps(
                    params,
                    state,
                    frozen,
                    batch.x_train,
                    batch.y_train,
                    n_steps - differentiated,
                    total=n_steps,
                )
            params, state = pytree.tree_map(torch.Tensor.detach, (params, state))
        params, state = self.steps(
            params,
            state,
            loss_params,
            batch.x_train,
            batch.y_train,
            differentiated,
            checkpointed,
            first=n_steps - differentiated,
            total=n_steps,
        )
        return self.score(params, state, *batch.scored(score_on), batch.extra)

    def curves(
        self,
        params: Params,
        loss_params: Params,
        batch: TaskBatch,
        n_steps: int,
        score_on: str = "query",
        every: int = 1,
    ) -> torch.Tensor:
        """Train without building a graph; the objective every ``every`` steps, ``(S, T)``."""
        if n_steps % every:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of every ({every})")
        with torch.no_grad():
            state = self.init_state(params)
            x, y = batch.scored(score_on)
            scores = [self.score(params, state, x, y, batch.extra)]
            for block in range(n_steps // every):
                params, state = self.steps(
                    params,
                    state,
                    loss_params,
                    batch.x_train,
                    batch.y_train,
                    every,
                    first=block * every,
                    total=n_steps,
                )
                scores.append(self.score(params, state, x, y, batch.extra))
            return torch.stack(scores)


def _checkpointed(step):
    """Wrap a batched step so its activations are recomputed in the backward pass.

    ``torch.func.grad`` refuses the saved-tensor hooks of non-reentrant checkpointing, so
    this uses reentrant checkpointing, which passes gradients only to tensors given as
    positional arguments: the pytrees are flattened into them. Reentrant checkpointing
    supports ``.backward()``, not ``torch.autograd.grad``.
    """

    def run(params, state, loss_params, x, y, progress):
        leaves, spec = pytree.tree_flatten((params, state))
        loss_leaves, loss_spec = pytree.tree_flatten(loss_params)
        n = len(leaves)

        def flat_step(*tensors):
            p, s = pytree.tree_unflatten(spec, tensors[:n])
            lp = pytree.tree_unflatten(loss_spec, tensors[n:])
            new_leaves, new_spec = pytree.tree_flatten(step(p, s, lp, x, y, progress))
            out_spec.append(new_spec)
            return tuple(new_leaves)

        out_spec: list = []
        out = checkpoint(flat_step, *leaves, *loss_leaves, use_reentrant=True)
        return pytree.tree_unflatten(out_spec[0], out)

    return run


def _task_count(args, in_dims) -> int:
    for arg, dim in zip(args, in_dims, strict=True):
        if dim is not None:
            return pytree.tree_leaves(arg)[0].shape[0]
    raise ValueError("no batched argument")
