"""`MetaTrainer`: the ML3 outer loop that fits a `LearnedLoss` to a family of tasks."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import numbers
import operator
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchopt
from tqdm.auto import tqdm

from learnedloss.errors import MetaTrainingStalled, RunDirectoryError
from learnedloss.kinds import loss_kind
from learnedloss.loss import LearnedLoss
from learnedloss.meta import state as checkpoints
from learnedloss.meta.distributed import Distributed, Ranks, distributed_from, local_device
from learnedloss.meta.gradients import Backprop, MetaGradient, meta_gradient_from
from learnedloss.meta.graphs import StaticMetaStep, flatten_inputs, unflatten_inputs
from learnedloss.meta.inner import (
    InnerLoop,
    InnerOptimizer,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
)
from learnedloss.tasks.base import TaskBatch, TaskFamily

Callback = Callable[["MetaTrainer", dict], Any]

CUSTOM_INNER_OPTIMIZER = "torchopt.GradientTransformation"
"""What `MetaTrainer.describe` records as the inner optimizer for a ``GradientTransformation``
(whose settings it cannot read back); its ``inner_lr`` is then ``None``."""
DEFAULT_INNER_LR = 1e-3
"""The inner learning rate of the ``"sgd"``/``"adam"`` shorthands when none is given."""


class MetaTrainingDiverged(RuntimeError):
    """The meta-gradient was not finite for too many consecutive outer steps, or for every
    outer step of a run (whose loss is then the untrained one)."""


class MetaTrainer:
    """Meta-train a `LearnedLoss` on a family of tasks (ML3's bi-level loop).

    Each outer step samples ``meta_batch_size`` tasks and fresh models, trains every model
    for ``inner_steps`` with the loss through a differentiable torchopt optimizer, scores the
    trained models with the task objective, and updates the loss by backpropagating that
    score through the inner steps (second order, `learnedloss.meta.Backprop`). With
    ``meta_gradient=EvolutionStrategies(...)`` it estimates the meta-gradient from forward
    runs alone instead, for inner loops too chaotic to backpropagate through.

    Args:
        loss: the loss to meta-train (updated in place; unfrozen for the run).
        tasks: the task family to meta-train on.
        inner_steps: inner-loop steps K (an integer >= 1).
        inner_lr: the learning rate of the ``"sgd"``/``"adam"`` shorthands (default 1e-3;
            a finite number > 0). Not with a ``GradientTransformation``, which carries its
            own.
        inner_optimizer: a torchopt ``GradientTransformation``, e.g.
            ``torchopt.adam(1e-2, eps_root=1e-8)`` or any ``torchopt.chain(...)``, built with
            its learning rate; or the shorthand ``"sgd"`` (``torchopt.sgd(inner_lr)``) or
            ``"adam"`` (``torchopt.adam(inner_lr, eps_root=1e-8)``). Adam inside a
            differentiated loop needs ``eps_root > 0``. A transformation's settings cannot be
            read back: the metadata records it as ``"torchopt.GradientTransformation"``, and
            a resumed run must be given the same one.
        meta_optimizer: ``params -> torch.optim.Optimizer``; default Adam at ``meta_lr``.
        meta_lr: the outer learning rate of the default meta-optimizer (finite, > 0).
        meta_batch_size: tasks per outer step (>= 1).
        truncate: backpropagate only through the last ``truncate`` inner steps (memory).
        checkpoint_inner: recompute inner-step activations in the backward pass (memory).
        score_on: ``"query"`` (held-out points, default) or ``"train"`` (the inner-loop data,
            as ML3's reference code does).
        aggregate: how task objectives combine into the meta-objective: ``"mean"`` (ML3) or
            ``"log-mean"``, the mean of their logarithms, which is what the geometric-mean
            score of `learnedloss.evaluate` measures. The arithmetic mean lets a few
            high-error tasks (large sine amplitudes) dominate.
        validation_tasks: the family meta-validation tasks come from (default: ``tasks``);
            a fixed set of ``validation_size`` (>= 1) tasks is drawn once from seed
            ``seed + 1``. A checkpoint records a fingerprint of that set, and a run resumed
            with another one is refused (its best score was measured on other tasks).
        validate_every: meta-validate every this many outer steps (0: never).
        keep: what `fit` returns: ``"best"``, the loss with the best meta-validation score,
            or ``"last"``, the loss after the last outer step. Prefer ``"last"`` when
            meta-validation is too noisy to rank losses (picking the best of noisy scores
            picks a lucky one); it does not change the run itself.
        run_dir: where checkpoints go; ``None`` writes none. A fresh run (not
            ``fit(resume=True)``) needs an empty or new directory, unless
            ``fit(overwrite=True)`` (docs/meta-training.md, "Run directories").
        checkpoint_every: write a checkpoint every this many outer steps (>= 1).
        callbacks: called as ``callback(trainer, record)`` after every outer step.
        max_skips: stop with `MetaTrainingDiverged` after this many (>= 1) consecutive outer
            steps whose meta-gradient was not finite (each is skipped with a warning).
        meta_parameters: the names (as in ``loss.named_parameters()``) of the weights that
            meta-training updates; the others keep their values (e.g. ``("network.values",)``
            for a grid loss whose knot slopes stay 0, so that it is flat at its knots and
            constant beyond the grid). ``None`` (the default): all of them.
        clip_meta_grad: rescale each finite meta-gradient to at most this norm (over all
            loss parameters) before the meta-optimizer's step; ``None`` (the default) does
            not clip. Backpropagating through a long inner loop can give rare huge
            meta-gradients, which overflow Adam's second moment to infinity.
        meta_gradient: how the meta-gradient is estimated (`learnedloss.meta.gradients`):
            ``Backprop()`` (the default; exact, through the inner loop) or
            ``EvolutionStrategies(pairs=16, sigma=0.05)``: the antithetic evolution-strategies
            estimate of the gradient of the meta-objective smoothed over Gaussian
            perturbations of the loss's weights, all on the outer step's tasks. ES costs
            ``2 * pairs`` inner loops per outer step but no graph, and it survives inner
            loops whose exact meta-gradient explodes (docs/sine.md). The strings
            ``"backprop"`` and ``"es"`` are shorthands for the defaults of each.
        es_pairs: deprecated, use ``EvolutionStrategies(pairs=...)``: with
            ``meta_gradient="es"``, the antithetic pairs per outer step.
        es_sigma: deprecated, use ``EvolutionStrategies(sigma=...)``: with
            ``meta_gradient="es"``, the perturbation scale.
        path: ``"auto"`` (vmap, falling back to a loop over tasks when vmap cannot run the
            model), ``"vmap"`` or ``"loop"``.
        seed: seeds task sampling and model initialization.
        device: where the inner loop runs. Under ``torchrun``, ``"cuda"`` without an index
            is each rank's own GPU, ``cuda:(LOCAL_RANK mod the GPU count)``.
        progress: show a tqdm progress bar with the live meta-objective (on rank 0 only).
        distributed: data-parallel meta-training over ``torch.distributed`` ranks
            (docs/distributed.md): ``"auto"`` (the default, ``Distributed()``) joins the
            job ``torchrun`` started, or the process group already initialized, and runs as
            one process outside any; ``False`` always runs as one process; or a
            `learnedloss.meta.distributed.Distributed` with its ``timeout`` (seconds every
            collective waits for the other ranks, 600 by default) and ``backend``. R ranks
            compute the meta-gradient one process computes, up to rounding: they split the
            meta-batch (or, for evolution strategies, the pairs) and sum their gradients.
        cuda_graph: record the backpropagated meta-step as a CUDA graph once and replay it
            at every outer step, so that a small meta-step is not bound by kernel launches
            (`learnedloss.meta.graphs`). Needs ``Backprop``, the vmap path, tasks of the same
            shapes at every step and no ``checkpoint_inner``. On the CPU the same
            static-buffer step runs eagerly (the eager result, bit for bit).

    Attributes:
        history: one dict per outer step: ``step``, ``meta_train``, ``skipped`` and, on
            validation steps, ``meta_val``.
        path: the inner-loop path in use; ``path_reason`` says why when it fell back.
        best_score, best_step: the best meta-validation score and when it was reached.

    Raises:
        ValueError: a setting is out of range (a count below 1, a learning rate that is not
            a finite positive number, ...) or the loss's kind is not the one the tasks
            train (`TaskFamily.loss_kind`); raised here, before any work.

    Example:
        >>> from learnedloss import LearnedLoss, LossConfig, MetaTrainer
        >>> from learnedloss.tasks import SineTasks
        >>> loss = LearnedLoss(LossConfig(residual=True, output_activation="square", bias=True))
        >>> trainer = MetaTrainer(loss, SineTasks(), inner_steps=5, progress=False)
        >>> best = trainer.fit(steps=3)

        Any torchopt optimizer inside, evolution strategies outside:

        >>> import torchopt
        >>> from learnedloss.meta import EvolutionStrategies
        >>> trainer = MetaTrainer(
        ...     loss,
        ...     SineTasks(),
        ...     inner_optimizer=torchopt.adam(1e-2, eps_root=1e-8),
        ...     meta_gradient=EvolutionStrategies(pairs=4, sigma=0.05),
        ...     progress=False,
        ... )
    """

    def __init__(
        self,
        loss: LearnedLoss,
        tasks: TaskFamily,
        *,
        inner_steps: int = 1,
        inner_lr: float | None = None,
        inner_optimizer: InnerOptimizer = "sgd",
        meta_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
        | None = None,
        meta_lr: float = 1e-3,
        meta_batch_size: int = 8,
        truncate: int | None = None,
        checkpoint_inner: bool = False,
        score_on: str = "query",
        aggregate: str = "mean",
        validation_tasks: TaskFamily | None = None,
        validation_size: int = 32,
        validate_every: int = 50,
        run_dir: str | Path | None = None,
        checkpoint_every: int = 100,
        callbacks: Sequence[Callback] = (),
        max_skips: int = 10,
        meta_parameters: Sequence[str] | None = None,
        clip_meta_grad: float | None = None,
        keep: str = "best",
        meta_gradient: str | MetaGradient = "backprop",
        es_pairs: int | None = None,
        es_sigma: float | None = None,
        path: str = "auto",
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
        distributed: str | bool | Distributed = "auto",
        cuda_graph: bool = False,
    ) -> None:
        if score_on not in ("query", "train"):
            raise ValueError(f"score_on must be 'query' or 'train', got {score_on!r}")
        if aggregate not in ("mean", "log-mean"):
            raise ValueError(f"aggregate must be 'mean' or 'log-mean', got {aggregate!r}")
        if path not in ("auto", "vmap", "loop"):
            raise ValueError(f"path must be 'auto', 'vmap' or 'loop', got {path!r}")
        if keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
        for name, value, least in (
            ("inner_steps", inner_steps, 1),
            ("meta_batch_size", meta_batch_size, 1),
            ("validation_size", validation_size, 1),
            ("validate_every", validate_every, 0),
            ("checkpoint_every", checkpoint_every, 1),
            ("max_skips", max_skips, 1),
        ):
            _check_count(name, value, least)
        _check_count("seed", seed, None)
        _check_rate("meta_lr", meta_lr)
        if clip_meta_grad is not None:
            _check_rate("clip_meta_grad", clip_meta_grad)
        if inner_lr is not None:
            _check_rate("inner_lr", inner_lr)
        for family in (tasks, validation_tasks):
            _check_kind(loss, family)
        self.meta_gradient = _meta_gradient(meta_gradient, es_pairs, es_sigma)
        if inner_lr is None and not isinstance(
            inner_optimizer, torchopt.base.GradientTransformation
        ):
            inner_lr = DEFAULT_INNER_LR
        self._inner_optimizer = make_inner_optimizer(inner_optimizer, inner_lr)
        if truncate is not None and truncate < 1:
            raise ValueError(f"truncate must be a positive number of steps, got {truncate}")
        if cuda_graph:
            _check_cuda_graph(self.meta_gradient, path, checkpoint_inner)
        setting = distributed_from(distributed)
        requested = torch.device(device)
        self._ranks = setting.ranks(requested) if setting is not None else Ranks()
        if self._ranks.active:
            requested = local_device(requested)
            count = (
                self.meta_gradient.pairs
                if self.meta_gradient.splits == "pairs"
                else meta_batch_size
            )
            what = (
                "EvolutionStrategies(pairs=...)"
                if self.meta_gradient.splits == "pairs"
                else ("meta_batch_size")
            )
            self._ranks.check_divisible(count, what)
        self.loss = loss
        self.tasks = tasks
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.inner_optimizer = inner_optimizer
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.truncate = truncate
        self.checkpoint_inner = checkpoint_inner
        self.score_on = score_on
        self.aggregate = aggregate
        self.validate_every = validate_every
        self.validation_size = validation_size
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.callbacks = callbacks
        self.max_skips = max_skips
        self.clip_meta_grad = clip_meta_grad
        self.keep = keep
        self.seed = seed
        self.device = requested
        self.progress = progress
        self.cuda_graph = cuda_graph
        self.path, self.path_reason = path, ""

        self.meta_parameters = _check_meta_parameters(loss, meta_parameters)
        self.loss.to(self.device).unfreeze()
        if self.meta_parameters is not None:  # the others keep their values
            for name, weight in self.loss.named_parameters():
                weight.requires_grad_(name in self.meta_parameters)
        make_meta = meta_optimizer or (lambda ps: torch.optim.Adam(ps, lr=meta_lr))
        self.meta_optimizer = make_meta(list(self._meta_weights().values()))
        self._generator = torch.Generator().manual_seed(seed)
        validation_family = validation_tasks or tasks
        self._validation = self._fixed_tasks(validation_family, validation_size, seed + 1)
        self._inner = self._make_inner(tasks)
        self._validation_inner = self._make_inner(validation_family)
        self.history: list[dict] = []
        self.step = 0
        self.best_score, self.best_step = math.inf, -1
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._skips = 0
        self._static_step: StaticMetaStep | None = None
        self._validation_family = validation_family
        self._validation_print: dict | None = None  # its fingerprint, computed when needed
        self._claimed = False  # whether this trainer may write in run_dir
        self._start_weights: dict[str, torch.Tensor] | None = None  # the untrained loss
        self._moved = False  # whether the loss has changed since then
        if self._ranks.active:  # every rank runs the same configuration from rank 0's weights
            self._ranks.check_same(self._identity(), "MetaTrainer settings")
            self._ranks.broadcast_module(self.loss)

    @property
    def rank(self) -> int:
        """This process's rank in a data-parallel job (0 when there is none)."""
        return self._ranks.rank

    @property
    def world_size(self) -> int:
        """The number of ranks meta-training together (1 for one process)."""
        return self._ranks.world_size

    # ------------------------------------------------------------------ public

    def fit(
        self,
        steps: int,
        resume: bool = False,
        max_seconds: float | None = None,
        overwrite: bool = False,
    ) -> LearnedLoss:
        """Run outer steps until ``steps`` have been done in total.

        Args:
            steps: the total number of outer steps, >= 1 (a resumed run counts the earlier
                ones; one that has done them already runs none).
            resume: continue from the newest checkpoint in ``run_dir``, which must have
                been made with the same settings, meta-optimizer settings and
                meta-validation set.
            max_seconds: a wall-clock budget (>= 0): stop after the outer step that
                exceeds it (and write a checkpoint, with ``run_dir``, so ``resume`` can
                continue).
            overwrite: start afresh in a ``run_dir`` that holds files: remove the
                checkpoints there (``step-*``, ``latest``; every other file stays). Without
                it, a fresh run in a directory that holds anything is refused.

        Returns:
            A frozen copy of the loss with the best meta-validation score (the final loss
            when validation is off, or with ``keep="last"``), with its meta-training
            recorded in its metadata.

        Raises:
            RunDirectoryError: a fresh run in a ``run_dir`` that is not empty (without
                ``overwrite``), or a checkpoint this trainer cannot continue; raised before
                any outer step.
            MetaTrainingDiverged: the meta-gradient was not finite for ``max_skips``
                consecutive outer steps, or for every outer step of the run.
            MetaTrainingStalled: the run ended with the loss it started with (its
                meta-gradient was zero at every step).
        """
        _check_count("steps", steps, 1)
        if max_seconds is not None and not (_is_real(max_seconds) and max_seconds >= 0):
            raise ValueError(f"max_seconds must be a number >= 0 or None, got {max_seconds!r}")
        if resume and overwrite:
            raise ValueError(
                "resume=True continues the run in run_dir and overwrite=True replaces it: "
                "pass one of them"
            )
        if overwrite and self.run_dir is None:
            raise ValueError("overwrite=True needs run_dir (there is nothing to overwrite)")
        if resume:
            self._restore()
        else:
            self._claim_run_dir(overwrite)
        if self._start_weights is None:
            self._start_weights = self._weights()
        first = self.step
        deadline = math.inf if max_seconds is None else time.monotonic() + max_seconds
        main = self._ranks.is_main
        with tqdm(
            total=steps,
            initial=self.step,
            disable=not (self.progress and main),
            desc="meta-train",
        ) as bar:
            while self.step < steps:
                record = self._outer_step()
                bar.update(1)
                bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in record.items() if k in ("meta_train", "meta_val")}
                )
                for callback in self.callbacks:
                    callback(self, record)
                out_of_time = time.monotonic() > deadline
                if max_seconds is not None and self._ranks.active:  # rank 0's clock decides
                    out_of_time = self._ranks.broadcast(out_of_time, "agreeing to stop")
                if self.run_dir is not None and (
                    self.step % self.checkpoint_every == 0 or out_of_time
                ):
                    self.save_checkpoint()
                if out_of_time:
                    break
        if self.step > first:
            self._check_trained()
        return self.best_loss() if self.keep == "best" else self.last_loss()

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.loss.state_dict().items()}

    def _has_moved(self) -> bool:
        """Whether the loss differs from the one the run started with."""
        if not self._moved and self._start_weights is not None:
            now = self.loss.state_dict()
            self._moved = any(not torch.equal(now[k], v) for k, v in self._start_weights.items())
        return self._moved

    def _check_trained(self) -> None:
        """Fail a run that trained nothing, instead of returning the untrained loss."""
        if self.history and all(r["skipped"] for r in self.history):
            raise MetaTrainingDiverged(
                f"none of the {len(self.history)} outer steps updated the loss: every "
                f"meta-gradient was not finite (last meta-objective "
                f"{self.history[-1]['meta_train']:.4g}). The inner loop diverges: lower the "
                f"inner learning rate ({self._inner_lr_text()}) or use fewer inner_steps "
                f"({self.inner_steps}). The loss is the untrained one."
            )
        if not self._has_moved():
            raise MetaTrainingStalled(
                f"meta-training did not change the loss in {self.step} outer steps: its "
                f"meta-gradient was zero at every step, so the loss does not affect the "
                f"meta-objective. Check that the loss's kind ({self.loss.config.kind!r}) is "
                f"the one {type(self.tasks).__name__} trains, and that the inner loop moves "
                f"the models ({self._inner_lr_text()}, inner_steps={self.inner_steps})."
            )

    def best_loss(self) -> LearnedLoss:
        """A frozen copy of the best loss so far (the current one without validation)."""
        return self._frozen_copy(self._best_weights)

    def last_loss(self) -> LearnedLoss:
        """A frozen copy of the loss as it is now, after the last outer step."""
        return self._frozen_copy(None)

    def _frozen_copy(self, weights: dict[str, torch.Tensor] | None) -> LearnedLoss:
        copied = copy.deepcopy(self.loss)
        if weights is not None:
            copied.load_state_dict(weights)
        training = self.describe()
        if weights is None and self._best_weights is not None:
            training["kept"] = "last"
        copied.metadata = {**self.loss.metadata, "training": training}
        return copied.freeze()

    def describe(self) -> dict:
        """How the loss is being meta-trained, JSON-ready (goes into configs and cards)."""
        return {
            "method": "ML3 meta-training (learnedloss.MetaTrainer)",
            "tasks": self.tasks.describe(),
            "inner_steps": self.inner_steps,
            "inner_optimizer": self.inner_optimizer
            if isinstance(self.inner_optimizer, str)
            else CUSTOM_INNER_OPTIMIZER,
            "inner_lr": self.inner_lr,
            "truncate": self.truncate,
            "meta_optimizer": type(self.meta_optimizer).__name__,
            "meta_lr": self.meta_lr,
            "meta_batch_size": self.meta_batch_size,
            "score_on": self.score_on,
            "aggregate": self.aggregate,
            # ES writes its settings; backprop writes nothing, so checkpoints of backprop
            # runs resume across releases
            **self.meta_gradient.describe(),
            # written only when set, so that older checkpoints resume
            **({"clip_meta_grad": self.clip_meta_grad} if self.clip_meta_grad else {}),
            **({"meta_parameters": list(self.meta_parameters)} if self.meta_parameters else {}),
            "outer_steps": self.step,
            "seed": self.seed,
            "best_step": self.best_step,
            "best_meta_val": None if math.isinf(self.best_score) else self.best_score,
        }

    def meta_objective(
        self,
        batch: TaskBatch,
        params: dict[str, torch.Tensor],
        loss_params: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The aggregated task objective after the inner loop; differentiable in the loss.

        ``loss_params`` replaces the loss's own weights (e.g. perturbed ones, for ES)."""
        return self._aggregate(self._task_objectives(batch, params, loss_params))

    def _task_objectives(self, batch, params, loss_params) -> torch.Tensor:
        """Each task's objective after the inner loop, with ``loss_params`` (default: the
        loss's own weights)."""
        if loss_params is None:
            loss_params = self._meta_weights()
        objectives = self._inner.run(
            params,
            loss_params,
            batch,
            self.inner_steps,
            score_on=self.score_on,
            truncate=self.truncate,
            checkpointed=self.checkpoint_inner and torch.is_grad_enabled(),
        )
        return objectives

    def _aggregate(self, objectives: torch.Tensor) -> torch.Tensor:
        return objectives.log().mean() if self.aggregate == "log-mean" else objectives.mean()

    def _aggregate_share(self, objectives: torch.Tensor, total: int) -> torch.Tensor:
        """This rank's share of the aggregated objective of ``total`` tasks: its tasks' sum
        divided by ``total``, so that the ranks' shares sum to `_aggregate` of them all."""
        terms = objectives.log() if self.aggregate == "log-mean" else objectives
        return terms.sum() / total

    def _share_objective(self, batch, params, loss_params, total: int) -> torch.Tensor:
        objectives = self._task_objectives(batch, params, loss_params)
        return self._aggregate_share(objectives, total)

    def validate(self) -> float:
        """The aggregated task objective on the fixed meta-validation tasks."""
        batch, params = self._validation
        with torch.no_grad():
            loss_params = {k: v.detach() for k, v in self._meta_weights().items()}
            objectives = self._validation_inner.run(
                params, loss_params, batch, self.inner_steps, score_on=self.score_on
            )
        return float(self._aggregate(objectives))

    # ------------------------------------------------------------------ internals

    def _fixed_tasks(self, family: TaskFamily, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        batch = family.sample(n, generator).to(self.device)
        _, params = initial_params(family.make_model, n, generator)
        return batch, {k: v.to(self.device) for k, v in params.items()}

    def _make_inner(self, family: TaskFamily) -> InnerLoop:
        with torch.random.fork_rng(devices=[]):  # the template's weights are never used
            template = family.make_model().to(self.device)
        return InnerLoop(
            template,
            learned_loss_apply(self.loss),
            family.meta_objective,
            self._inner_optimizer,
            path="loop" if self.path == "loop" else "vmap",
            loss_arguments=family.loss_arguments,
        )

    def _use_path(self, path: str) -> None:
        self.path = path
        self._inner.path = self._validation_inner.path = "loop" if path == "loop" else "vmap"

    def _meta_objective_with_fallback(
        self, batch, params, loss_params=None, total: int | None = None
    ) -> torch.Tensor:
        """The meta-objective (``total`` given: this rank's share of ``total`` tasks)."""

        def objective():
            if total is None:
                return self.meta_objective(batch, params, loss_params)
            return self._share_objective(batch, params, loss_params, total)

        if self.path != "auto":
            return objective()
        try:
            result = objective()
            self._use_path("vmap")
            return result
        except RuntimeError as err:
            self._use_path("loop")
            self.path_reason = str(err).splitlines()[0]
            warnings.warn(
                f"the model cannot run under torch.func.vmap ({self.path_reason}); "
                "meta-training loops over tasks instead (slower, same result)",
                stacklevel=3,
            )
            return objective()

    def _outer_step(self) -> dict:
        batch = self.tasks.sample(self.meta_batch_size, self._generator).to(self.device)
        _, params = initial_params(self.tasks.make_model, self.meta_batch_size, self._generator)
        params = {k: v.to(self.device) for k, v in params.items()}
        ranks = self._ranks
        ranks.step = self.step + 1
        total = None
        if ranks.active and self.meta_gradient.splits == "tasks":
            # every rank drew the whole meta-batch from the same generator; it keeps its share
            share, total = ranks.share(self.meta_batch_size), self.meta_batch_size
            batch = _slice_batch(batch, share)
            params = {k: v[share] for k, v in params.items()}
        weights = self._meta_weights()

        self.meta_optimizer.zero_grad(set_to_none=True)
        if self.cuda_graph:
            objective = self._graphed_step(batch, params, total)
            if ranks.active:
                objective = ranks.sum_gradients(weights, objective)
        else:

            def meta_objective(loss_params):
                return self._meta_objective_with_fallback(batch, params, loss_params, total)

            if ranks.active:
                objective = self.meta_gradient.backward_distributed(
                    meta_objective, weights, self._generator, ranks
                )
            else:
                objective = self.meta_gradient.backward(meta_objective, weights, self._generator)
        grads = [p.grad for p in weights.values()]
        # A parameter with no gradient (e.g. an output bias, which shifts the loss but not
        # its gradient, so the inner loop never feels it) simply is not updated.
        present = [g for g in grads if g is not None]
        finite = math.isfinite(objective) and (
            not present or bool(torch.stack([torch.isfinite(g).all() for g in present]).all())
        )
        self.step += 1
        record: dict[str, Any] = {"step": self.step, "meta_train": objective}
        if finite:
            if self.clip_meta_grad is not None:
                torch.nn.utils.clip_grad_norm_(list(weights.values()), self.clip_meta_grad)
            self.meta_optimizer.step()
            self._skips = 0
        else:
            self._skips += 1
            warnings.warn(
                f"outer step {self.step}: non-finite meta-gradient (meta-objective "
                f"{objective:.4g}); update skipped ({self._skips} in a row)",
                stacklevel=3,
            )
            if self._skips >= self.max_skips:
                raise MetaTrainingDiverged(
                    f"the meta-gradient was not finite for {self._skips} consecutive outer "
                    f"steps (last meta-objective {objective:.4g}, at step {self.step}). "
                    f"The inner loop diverges: lower the inner learning rate "
                    f"({self._inner_lr_text()}) or meta_lr ({self.meta_lr}), or use fewer "
                    f"inner_steps "
                    f"({self.inner_steps}). The loss keeps its last finite weights."
                )
        record["skipped"] = not finite
        if self.validate_every and self.step % self.validate_every == 0:
            # rank 0 validates; every rank gets its score, so all keep the same best weights
            score = self.validate() if ranks.is_main else math.nan
            score = ranks.broadcast(score, "broadcasting the meta-validation score")
            record["meta_val"] = score
            if math.isfinite(score) and score < self.best_score:
                self.best_score, self.best_step = score, self.step
                self._best_weights = {
                    k: v.detach().clone() for k, v in self.loss.state_dict().items()
                }
        self.history.append(record)
        return record

    def _graphed_step(self, batch, params, total: int | None) -> float:
        """The backpropagated meta-step through `StaticMetaStep` (a CUDA graph on CUDA)."""
        if self._static_step is None:
            template = batch

            def objective(flat):
                step_batch, step_params = unflatten_inputs(template, flat)
                return self._meta_objective_with_fallback(step_batch, step_params, None, total)

            self._static_step = StaticMetaStep(
                objective,
                self._meta_weights(),
                capture=self.device.type == "cuda",
            )
        return self._static_step(flatten_inputs(batch, params))

    def _inner_lr_text(self) -> str:
        if self.inner_lr is None:
            return "set in the GradientTransformation given as inner_optimizer"
        return f"inner_lr={self.inner_lr}"

    # ------------------------------------------------------------------ checkpoints

    def _meta_weights(self) -> dict[str, torch.Tensor]:
        """The loss's weights that meta-training updates, by name."""
        weights = dict(self.loss.named_parameters())
        if self.meta_parameters is None:
            return weights
        return {name: weights[name] for name in self.meta_parameters}

    def _identity(self) -> dict:
        """Settings a resumed run must share with the run it continues."""
        settings = {
            k: v
            for k, v in self.describe().items()
            if k not in ("outer_steps", "best_step", "best_meta_val")
        }
        return {**settings, "loss": self.loss.config.to_dict()}

    def save_checkpoint(self) -> Path:
        """Write the full trainer state to ``run_dir`` (atomically); returns its directory.

        In a data-parallel job only rank 0 writes (every rank holds the same state); the
        others return the directory rank 0 writes."""
        if self.run_dir is None:
            raise ValueError("save_checkpoint needs run_dir")
        if not self._ranks.is_main:
            return self.run_dir / f"step-{self.step:07d}"
        if not self._claimed:  # saved before any fit: the directory must be free too
            self._check_run_dir(checkpoints.may_overwrite(self.run_dir))
            self._claimed = True
        state = {
            "identity": self._identity(),
            "step": self.step,
            "skips": self._skips,
            "path": self.path,
            "path_reason": self.path_reason,
            "history": self.history,
            "best": {
                "score": None if math.isinf(self.best_score) else self.best_score,
                "step": self.best_step,
                "weights": self._best_weights,
            },
            "loss": dict(self.loss.state_dict()),
            "meta_optimizer": self.meta_optimizer.state_dict(),
            "generator": self._generator.get_state(),
            "validation": self._validation_fingerprint(),
            "moved": self._has_moved(),
        }
        return checkpoints.write_state(self.run_dir, self.step, state)

    def _validation_fingerprint(self) -> dict:
        """What identifies the meta-validation set: its family's settings, its size and a
        SHA-256 of its tasks and initial models."""
        if self._validation_print is None:
            batch, params = self._validation
            tensors = {
                "x_train": batch.x_train,
                "y_train": batch.y_train,
                "x_query": batch.x_query,
                "y_query": batch.y_query,
                **{f"extra.{k}": v for k, v in sorted(batch.extra.items())},
                **{f"params.{k}": v for k, v in sorted(params.items())},
            }
            digest = hashlib.sha256()
            for name, tensor in tensors.items():
                flat = tensor.detach().cpu().contiguous().reshape(-1)
                digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
                digest.update(flat.view(torch.uint8).numpy().tobytes())
            described = json.loads(json.dumps(self._validation_family.describe(), default=str))
            self._validation_print = {
                "tasks": described,
                "size": self.validation_size,
                "sha256": digest.hexdigest(),
            }
        return self._validation_print

    def _claim_run_dir(self, overwrite: bool) -> None:
        """Before a fresh run writes in ``run_dir``: refuse one that holds files, or with
        ``overwrite`` remove the checkpoints there. Rank 0 looks (and removes); every rank
        gets its verdict, so all raise or none does."""
        if self.run_dir is None or self._claimed:
            return
        overwrite = overwrite or checkpoints.may_overwrite(self.run_dir)
        problem: RunDirectoryError | None = None
        if self._ranks.is_main:
            try:
                self._check_run_dir(overwrite)
            except RunDirectoryError as err:  # re-raised on every rank below
                problem = err
        if self._ranks.active:
            problem = self._ranks.broadcast(problem, "checking the run directory on rank 0")
        if problem is not None:
            raise problem
        self._claimed = True

    def _check_run_dir(self, overwrite: bool) -> None:
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirectoryError(f"run_dir {str(run_dir)!r} is a file, not a directory")
        entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
        if not entries:
            return
        if overwrite:
            checkpoints.clear_trainer_files(run_dir)
            return
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        held = (
            f"the checkpoints of another run (latest: {(run_dir / 'latest').read_text().strip()})"
            if checkpoints.has_checkpoint(run_dir)
            else f"files ({shown})"
        )
        raise RunDirectoryError(
            f"run_dir {str(run_dir)!r} is not empty: it holds {held}. A fresh run there would "
            "replace or mix with them: continue that run with fit(..., resume=True), replace "
            "its checkpoints with fit(..., overwrite=True) (other files stay), or choose an "
            "empty run_dir"
        )

    def _restore(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume=True needs run_dir")
        state = self._read_state()
        if state["identity"] != self._identity():
            raise RunDirectoryError(
                f"cannot resume: the checkpoint in {self.run_dir} was made with "
                f"{state['identity']}, this trainer has {self._identity()}"
            )
        optimizer_state = state["meta_optimizer"]
        changed = _optimizer_changes(
            optimizer_state["param_groups"], self.meta_optimizer.state_dict()["param_groups"]
        )
        if changed:
            raise RunDirectoryError(
                f"cannot resume: the meta-optimizer's settings differ from those of the "
                f"checkpoint in {self.run_dir} ({changed}). A resumed run continues with the "
                "settings it was checkpointed with: give the same meta_optimizer (and meta_lr), "
                "or start a fresh run (another run_dir, or fit(..., overwrite=True))"
            )
        saved_validation = state.get("validation")  # checkpoints before 0.x have none
        if saved_validation is not None and saved_validation != self._validation_fingerprint():
            raise RunDirectoryError(
                f"cannot resume: the meta-validation set differs from the one the checkpoint "
                f"in {self.run_dir} was scored on "
                f"({_validation_changes(saved_validation, self._validation_fingerprint())}), so "
                "its best score would be compared with scores on other tasks. Resume with the "
                "same validation_tasks, validation_size and seed, or start a fresh run "
                "(another run_dir, or fit(..., overwrite=True))"
            )
        self.loss.load_state_dict(state["loss"])
        optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
        self.meta_optimizer.load_state_dict(optimizer_state)
        self._generator.set_state(state["generator"])
        self.step, self._skips = state["step"], state["skips"]
        self._use_path(state["path"])
        self.path_reason = state["path_reason"]
        self.history = state["history"]
        best = state["best"]
        self.best_score = math.inf if best["score"] is None else best["score"]
        self.best_step, self._best_weights = best["step"], best["weights"]
        self._start_weights, self._moved = self._weights(), state.get("moved", True)
        self._claimed = True

    def _read_state(self) -> dict:
        """The newest checkpoint; in a data-parallel job rank 0 reads it and broadcasts it
        (or the error it met), so every rank resumes from the same state."""
        if not self._ranks.active:
            return checkpoints.read_state(self.run_dir)
        try:
            state: Any = checkpoints.read_state(self.run_dir) if self._ranks.is_main else None
        except Exception as err:  # re-raised on every rank below
            state = err
        state = self._ranks.broadcast(state, "broadcasting the checkpoint from rank 0")
        if isinstance(state, Exception):
            raise state
        return state


def _slice_batch(batch: TaskBatch, share: slice) -> TaskBatch:
    """The tasks ``share`` of a batch (a batch of the same type)."""
    return dataclasses.replace(
        batch,
        x_train=batch.x_train[share],
        y_train=batch.y_train[share],
        x_query=batch.x_query[share],
        y_query=batch.y_query[share],
        extra={k: v[share] for k, v in batch.extra.items()},
    )


def _check_cuda_graph(meta_gradient: MetaGradient, path: str, checkpoint_inner: bool) -> None:
    """Refuse ``cuda_graph=True`` where a step cannot be captured as a graph."""
    problems = []
    if not isinstance(meta_gradient, Backprop):
        problems.append(f"it captures a backpropagated step, not {meta_gradient!r}")
    if path == "loop":
        problems.append("it captures the vmap path, not path='loop'")
    if checkpoint_inner:
        problems.append("activation checkpointing (checkpoint_inner) cannot be captured")
    if problems:
        raise ValueError("cuda_graph=True cannot be used here: " + "; ".join(problems))


def _meta_gradient(
    meta_gradient: str | MetaGradient, es_pairs: int | None, es_sigma: float | None
) -> MetaGradient:
    """The estimator for `MetaTrainer`'s arguments; ``es_pairs``/``es_sigma`` are the
    deprecated spelling of ``EvolutionStrategies(pairs=..., sigma=...)``."""
    legacy = {k: v for k, v in (("es_pairs", es_pairs), ("es_sigma", es_sigma)) if v is not None}
    if legacy and isinstance(meta_gradient, MetaGradient):
        raise ValueError(
            f"{' and '.join(legacy)} cannot be combined with meta_gradient={meta_gradient!r}; "
            "give the settings to the estimator, e.g. EvolutionStrategies(pairs=16, sigma=0.05)"
        )
    estimator = meta_gradient_from(meta_gradient, es_pairs, es_sigma)
    if legacy:
        what = (
            "use meta_gradient=EvolutionStrategies(pairs=..., sigma=...) "
            "(from learnedloss.meta) instead"
            if meta_gradient == "es"
            else f"they do nothing with meta_gradient={meta_gradient!r}; drop them"
        )
        warnings.warn(
            f"MetaTrainer's {' and '.join(legacy)} are deprecated and will be removed in the "
            f"next release: {what}",
            DeprecationWarning,
            stacklevel=3,
        )
    return estimator


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(name: str, value: Any, least: int | None) -> None:
    """Refuse a count that is not an integer, or is below ``least``."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if least is not None and number < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        meaning = " (0: never)" if name == "validate_every" else ""
        raise ValueError(f"{name} must be {what}{meaning}, got {value!r}")


def _check_meta_parameters(
    loss: LearnedLoss, names: Sequence[str] | None
) -> tuple[str, ...] | None:
    """``meta_parameters`` as a tuple, after checking that it names some of the loss's
    weights (frozen or not)."""
    if names is None:
        return None
    names = (names,) if isinstance(names, str) else tuple(names)
    available = list(loss.weights())
    if not names or any(name not in available for name in names):
        raise ValueError(
            f"meta_parameters must name some of the loss's weights {available}, got {list(names)}"
        )
    return names


def _check_rate(name: str, value: Any) -> None:
    """Refuse a learning rate that is not a finite number > 0."""
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_kind(loss: Any, family: TaskFamily | None) -> None:
    """Refuse a loss of another kind than the one ``family`` trains (`TaskFamily.loss_kind`;
    a kind registered as a subclass of it counts as it)."""
    declared = getattr(family, "loss_kind", None)
    config = getattr(loss, "config", None)
    if declared is None or config is None:
        return
    if not isinstance(config.loss_kind, type(loss_kind(declared))):
        raise ValueError(
            f"a {config.kind} loss cannot be meta-trained on {type(family).__name__}, whose "
            f"tasks train {declared} losses (its loss_kind): build the loss with "
            f"LossConfig(kind={declared!r}, ...), or meta-train it on a family of its kind"
        )


def _plain(value: Any) -> Any:
    """An optimizer setting as JSON writes it (tensors and tuples as lists)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _optimizer_changes(saved: list[dict], current: list[dict]) -> str:
    """How an optimizer's param-group settings differ from a checkpoint's ('' if they do
    not); settings only one side has (another torch release) are not compared."""
    if len(saved) != len(current):
        return f"{len(saved)} parameter groups in the checkpoint, {len(current)} now"
    changes = []
    for index, (old, new) in enumerate(zip(saved, current, strict=True)):
        where = f"group {index} " if len(saved) > 1 else ""
        for key in sorted(set(old) & set(new) - {"params"}):
            if _plain(old[key]) != _plain(new[key]):
                changes.append(
                    f"{where}{key}={_plain(old[key])!r} in the checkpoint, {_plain(new[key])!r} now"
                )
    return "; ".join(changes)


def _validation_changes(saved: dict, current: dict) -> str:
    """How two validation-set fingerprints differ, in words."""
    old, new = saved.get("tasks"), current.get("tasks")
    if isinstance(old, dict) and isinstance(new, dict):
        pairs = [(f"tasks' {k}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new))]
    else:
        pairs = [("tasks", old, new)]
    pairs.append(("size", saved.get("size"), current.get("size")))
    changes = [f"{what} {a!r} in the checkpoint, {b!r} now" for what, a, b in pairs if a != b]
    return "; ".join(changes) or "the same settings and size, but other tasks were drawn"
