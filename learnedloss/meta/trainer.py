"""`MetaTrainer`: the ML3 outer loop that fits a `LearnedLoss` to a family of tasks.

The trainer orchestrates; each part has its own object: `learnedloss.meta.arguments` checks
the settings, `learnedloss.meta.execution.InnerExecution` runs the inner loops,
`learnedloss.meta.gradients` estimates the meta-gradient, `learnedloss.meta.distributed.Ranks`
splits the work over a data-parallel job, `learnedloss.meta.graphs.StaticMetaStep` captures a
step as a CUDA graph, `learnedloss.meta.validation.ValidationSet` holds the meta-validation
tasks, and `learnedloss.meta.run_directory.RunDirectory` keeps the checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchopt
from tqdm.auto import tqdm

from learnedloss.errors import ConfigError, MetaTrainingDiverged, MetaTrainingStalled
from learnedloss.loss import LearnedLoss
from learnedloss.meta.arguments import (
    check_choices,
    check_counts,
    check_cuda_graph,
    check_fit,
    check_kind,
    check_meta_parameters,
    check_rates,
    check_truncate,
)
from learnedloss.meta.distributed import Distributed, join
from learnedloss.meta.engine import ENGINE_PATH, EngineExecution, engine_refusal
from learnedloss.meta.execution import InnerExecution, TaskObjectives
from learnedloss.meta.gradients import MetaGradient, meta_gradient_from
from learnedloss.meta.graphs import StaticMetaStep, flatten_inputs, unflatten_inputs
from learnedloss.meta.inner import InnerOptimizer, initial_params, make_inner_optimizer
from learnedloss.meta.population import PopulationObjective
from learnedloss.meta.rates import VALIDATION_STEP, check_inner_lr_range, step_rates
from learnedloss.meta.run_directory import RunDirectory
from learnedloss.meta.validation import ValidationSet
from learnedloss.tasks.base import TaskBatch, TaskFamily

__all__ = ["MetaTrainer", "MetaTrainingDiverged"]

Callback = Callable[["MetaTrainer", dict], Any]

CUSTOM_INNER_OPTIMIZER = "torchopt.GradientTransformation"
"""What `MetaTrainer.describe` records as the inner optimizer for a ``GradientTransformation``
(whose settings it cannot read back); its ``inner_lr`` is then ``None``."""
DEFAULT_INNER_LR = 1e-3
"""The inner learning rate of the ``"sgd"``/``"adam"`` shorthands when none is given."""


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
        inner_lr_range: ``(low, high)``: each task of each meta-batch trains at its own
            learning rate, drawn log-uniformly from the range anew at every outer step
            (seeded by ``seed`` and the step, so a resumed run draws the same ones; the
            meta-validation tasks keep one fixed draw); ``inner_lr`` is then unused. Only
            ``path="engine"`` with ``"sgd"``/``"adam"`` runs it (`learnedloss.meta.rates`).
            ``None`` (the default): every task trains at ``inner_lr``.
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
        path: ``"auto"`` (vmap, falling back to a loop over tasks when vmap cannot run the
            model), ``"vmap"``, ``"loop"``, or ``"engine"``: the batched inner-loop engine
            (`learnedloss.meta.engine`; MLPs and the digits CNN with ``"sgd"``/``"adam"``),
            which also scores all of an ES step's pairs or a CMA-ES generation in one
            stacked run; a set-up it cannot run falls back to vmap, with the reason in
            ``path_reason``.
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

    Examples:
        >>> from learnedloss import LearnedLoss, LossConfig, MetaTrainer
        >>> from learnedloss.families.sine import SineTasks
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
        inner_lr_range: tuple[float, float] | None = None,
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
        path: str = "auto",
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
        distributed: str | bool | Distributed = "auto",
        cuda_graph: bool = False,
    ) -> None:
        check_choices(score_on=score_on, aggregate=aggregate, path=path, keep=keep)
        check_counts(
            inner_steps=inner_steps,
            meta_batch_size=meta_batch_size,
            validation_size=validation_size,
            validate_every=validate_every,
            checkpoint_every=checkpoint_every,
            max_skips=max_skips,
            seed=seed,
        )
        check_rates(meta_lr=meta_lr, clip_meta_grad=clip_meta_grad, inner_lr=inner_lr)
        for family in (tasks, validation_tasks):
            check_kind(loss, family)
        self.meta_gradient = meta_gradient_from(meta_gradient)
        if hasattr(self.meta_gradient, "fresh"):  # estimator state is this trainer's own
            self.meta_gradient = self.meta_gradient.fresh()
        if inner_lr is None and not isinstance(
            inner_optimizer, torchopt.base.GradientTransformation
        ):
            inner_lr = DEFAULT_INNER_LR
        self._inner_optimizer = make_inner_optimizer(inner_optimizer, inner_lr)
        check_truncate(truncate)
        if cuda_graph:
            check_cuda_graph(self.meta_gradient, path, checkpoint_inner)
        self._ranks, self.device = join(distributed, device)
        self._check_split(meta_batch_size)
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
        self.progress = progress
        self.cuda_graph = cuda_graph
        self.meta_parameters = check_meta_parameters(loss, meta_parameters)
        self.inner_lr_range = check_inner_lr_range(inner_lr_range, path, inner_optimizer)
        self._build(meta_optimizer, validation_tasks or tasks, path)
        if self._ranks.active:  # every rank runs the same configuration from rank 0's weights
            self._ranks.check_same(self._identity(), "MetaTrainer settings")
            self._ranks.broadcast_module(self.loss)

    def _build(
        self,
        meta_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None,
        validation_family: TaskFamily,
        path: str,
    ) -> None:
        """Make the parts the settings describe, and the state of a run that has not begun."""
        self.loss.to(self.device).unfreeze()
        if self.meta_parameters is not None:  # the others keep their values
            for name, weight in self.loss.named_parameters():
                weight.requires_grad_(name in self.meta_parameters)
        make_meta = meta_optimizer or (lambda ps: torch.optim.Adam(ps, lr=self.meta_lr))
        self.meta_optimizer = make_meta(list(self._meta_weights().values()))
        self._generator = torch.Generator().manual_seed(self.seed)
        self._validation = ValidationSet(
            validation_family, self.validation_size, self.seed + 1, self.device
        )
        self._execution = self._execution_for(self.tasks, path, training=True)
        self._validation_execution = self._execution_for(validation_family, path, training=False)
        self._run_directory = (
            RunDirectory(self.run_dir, self._ranks) if self.run_dir is not None else None
        )
        self.history: list[dict] = []
        self.step = 0
        self.best_score, self.best_step = math.inf, -1
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._skips = 0
        self._static_step: StaticMetaStep | None = None
        self._start_weights: dict[str, torch.Tensor] | None = None  # the untrained loss
        self._moved = False  # whether the loss has changed since then

    def _execution_for(self, family: TaskFamily, path: str, training: bool) -> TaskObjectives:
        """The inner-loop execution of ``family``: the training tasks' (with ``truncate``
        and ``checkpoint_inner``) or the meta-validation tasks' (scored without a graph).

        ``path="engine"`` runs on the batched engine where it can run the set-up, and on
        the vmap path otherwise, with the engine's one-line refusal as ``path_reason``."""
        settings = {
            "inner_steps": self.inner_steps,
            "device": self.device,
            "score_on": self.score_on,
            "truncate": self.truncate if training else None,
            "checkpoint_inner": self.checkpoint_inner and training,
        }
        reason = ""
        if path == ENGINE_PATH:
            reason = self._engine_refusal(family)
            if not reason:
                return EngineExecution(
                    family, self.loss, self.inner_optimizer, self.inner_lr, **settings
                )
            if self.inner_lr_range is not None:
                raise ConfigError(
                    f"inner_lr_range needs the batched engine, which cannot run "
                    f"{type(family).__name__}'s inner loops: {reason}"
                )
        execution = InnerExecution(
            family,
            self.loss,
            self._inner_optimizer,
            path="vmap" if path == ENGINE_PATH else path,
            **settings,
        )
        if reason:
            execution.use_path("vmap", f"the engine cannot run this: {reason}")
        return execution

    def _engine_refusal(self, family: TaskFamily) -> str:
        """Why the batched engine cannot run ``family``'s inner loops ("" if it can)."""
        with torch.random.fork_rng(devices=[]):  # draws nothing from the run's generators
            sample = family.sample(1, torch.Generator().manual_seed(0))
            template = family.make_model()
        refusal = engine_refusal(
            template,
            self.loss,
            self.inner_optimizer,
            self.inner_lr,
            family.loss_arguments,
            sample,
        )
        return refusal or ""

    def _check_split(self, meta_batch_size: int) -> None:
        """Refuse a data-parallel job whose ranks cannot split the work evenly."""
        if not self._ranks.active:
            return
        if self.meta_gradient.splits == "pairs":
            self._ranks.check_divisible(self.meta_gradient.pairs, "EvolutionStrategies(pairs=...)")
        else:
            self._ranks.check_divisible(meta_batch_size, "meta_batch_size")

    @property
    def rank(self) -> int:
        """This process's rank in a data-parallel job (0 when there is none)."""
        return self._ranks.rank

    @property
    def world_size(self) -> int:
        """The number of ranks meta-training together (1 for one process)."""
        return self._ranks.world_size

    @property
    def path(self) -> str:
        """The inner-loop path in use: ``"vmap"``, ``"loop"`` or ``"engine"`` (``"auto"``
        before the first outer step decides)."""
        return self._execution.path

    @property
    def path_reason(self) -> str:
        """Why the inner loop fell back (from vmap to the loop over tasks, or from the
        engine to vmap; ``""`` if it did not)."""
        return self._execution.path_reason

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
        check_fit(steps, max_seconds, resume, overwrite, self.run_dir is not None)
        try:  # the run holds its directory (one run at a time) until it stops writing
            if resume:
                self._restore()
            elif self._run_directory is not None:
                self._run_directory.claim(overwrite)
            if self._start_weights is None:
                self._start_weights = self._weights()
            first = self.step
            self._run_until(steps, max_seconds)
        finally:
            if self._run_directory is not None:
                self._run_directory.release()
        if self.step > first:
            self._check_trained()
        return self.best_loss() if self.keep == "best" else self.last_loss()

    def _run_until(self, steps: int, max_seconds: float | None) -> None:
        """Outer steps (with callbacks, the progress bar and checkpoints) until ``steps`` are
        done or the time is up."""
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
            **({"inner_lr_range": list(self.inner_lr_range)} if self.inner_lr_range else {}),
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
        return self._objective(batch, params, loss_params, None)

    def validate(self) -> float:
        """The aggregated task objective on the fixed meta-validation tasks."""
        if self._validation_execution.path != ENGINE_PATH:
            self._validation_execution.use_path("loop" if self.path == "loop" else "vmap")
        with torch.no_grad():
            loss_params = {k: v.detach() for k, v in self._meta_weights().items()}
            objectives = self._validation_execution.objectives(
                self._validation.batch,
                self._validation.params,
                loss_params,
                **self._rates(VALIDATION_STEP, self.validation_size),
            )
        return float(self._aggregate(objectives))

    def save_checkpoint(self) -> Path:
        """Write the full trainer state to ``run_dir`` (atomically); returns its directory.

        In a data-parallel job only rank 0 writes (every rank holds the same state); the
        others return the directory rank 0 writes."""
        if self._run_directory is None:
            raise ValueError("save_checkpoint needs run_dir")
        return self._run_directory.write(self.step, self._checkpoint_state)

    # ------------------------------------------------------------------ one outer step

    def _objective(
        self, batch, params, loss_params, total: int | None, rates: dict | None = None
    ) -> torch.Tensor:
        """The meta-objective with ``loss_params`` (default: the loss's own weights); with
        ``total``, this rank's share of ``total`` tasks: its tasks' sum divided by
        ``total``, so that the ranks' shares sum to `_aggregate` of them all. ``rates``:
        the tasks' own learning rates, as `_rates` gives them."""
        if loss_params is None:
            loss_params = self._meta_weights()
        objectives = self._execution.objectives(batch, params, loss_params, **(rates or {}))
        return self._aggregate(objectives, total)

    def _aggregate(self, objectives: torch.Tensor, total: int | None = None) -> torch.Tensor:
        """The meta-objective of task objectives ``(..., T)`` (``aggregate``: their mean, or
        the mean of their logarithms); with ``total``, this rank's share: the sum over its
        tasks divided by ``total``."""
        terms = objectives.log() if self.aggregate == "log-mean" else objectives
        return terms.mean(dim=-1) if total is None else terms.sum(dim=-1) / total

    def _outer_step(self) -> dict:
        batch, params, total = self._step_tasks()
        rates = self._step_rates()
        weights = self._meta_weights()
        self.meta_optimizer.zero_grad(set_to_none=True)
        objective = self._meta_gradient_step(batch, params, weights, total, rates)
        # A parameter with no gradient (e.g. an output bias, which shifts the loss but not
        # its gradient, so the inner loop never feels it) simply is not updated.
        finite = _is_finite(objective, weights)
        self.step += 1
        record: dict[str, Any] = {"step": self.step, "meta_train": objective}
        if finite:
            self._update(weights)
        else:
            self._skip(objective)
        record["skipped"] = not finite
        if self.validate_every and self.step % self.validate_every == 0:
            record["meta_val"] = self._validate_and_keep_best()
        self.history.append(record)
        return record

    def _step_tasks(self) -> tuple[TaskBatch, dict[str, torch.Tensor], int | None]:
        """The outer step's tasks and initial models (in a data-parallel job split over
        tasks, this rank's share of them, and the meta-batch size)."""
        batch = self.tasks.sample(self.meta_batch_size, self._generator).to(self.device)
        _, params = initial_params(self.tasks.make_model, self.meta_batch_size, self._generator)
        params = {k: v.to(self.device) for k, v in params.items()}
        ranks = self._ranks
        ranks.step = self.step + 1
        if not self._splits_tasks():
            return batch, params, None
        # every rank drew the whole meta-batch from the same generator; it keeps its share
        share = ranks.share(self.meta_batch_size)
        return (
            _slice_batch(batch, share),
            {k: v[share] for k, v in params.items()},
            (self.meta_batch_size),
        )

    def _splits_tasks(self) -> bool:
        """Whether the ranks of a data-parallel job split each meta-batch's tasks."""
        return self._ranks.active and self.meta_gradient.splits == "tasks"

    def _step_rates(self) -> dict[str, torch.Tensor]:
        """The next outer step's tasks' own learning rates (`_rates`; this rank's share of
        them in a job that splits the tasks)."""
        rates = self._rates(self.step + 1, self.meta_batch_size)
        if not self._splits_tasks():
            return rates
        share = self._ranks.share(self.meta_batch_size)
        return {k: v[share] for k, v in rates.items()}

    def _rates(self, step: int, count: int) -> dict[str, torch.Tensor]:
        """``{"lr": (count,)}``, the tasks' own learning rates at outer step ``step`` (see
        `learnedloss.meta.rates`), or ``{}`` without ``inner_lr_range``."""
        rates = step_rates(self.inner_lr_range, self.seed, step, count)
        return {} if rates is None else {"lr": rates.to(self.device)}

    def _meta_gradient_step(
        self, batch, params, weights, total: int | None, rates: dict | None = None
    ) -> float:
        """Set the weights' ``.grad`` to the meta-gradient; return the meta-objective (the
        tasks train at their own learning rates ``rates``, `_step_rates`, if given)."""
        ranks = self._ranks
        rates = rates or {}
        if self.cuda_graph:
            objective = self._graphed_step(batch, params, total)
            return ranks.sum_gradients(weights, objective) if ranks.active else objective

        def meta_objective(loss_params):
            return self._objective(batch, params, loss_params, total, rates)

        if hasattr(self._execution, "population_objectives"):  # the engine scores many at once
            meta_objective = PopulationObjective(
                meta_objective,
                lambda population: self._population_objective(
                    batch, params, population, total, rates
                ),
            )
        if ranks.active:
            return self.meta_gradient.backward_distributed(
                meta_objective, weights, self._generator, ranks
            )
        return self.meta_gradient.backward(meta_objective, weights, self._generator)

    def _population_objective(self, batch, params, population, total: int | None, rates: dict):
        """Every candidate's meta-objective, ``(C,)``, from one stacked engine run (with
        ``total``, this rank's share, as in `_objective`)."""
        return self._aggregate(
            self._execution.population_objectives(batch, params, population, **rates), total
        )

    def _graphed_step(self, batch, params, total: int | None) -> float:
        """The backpropagated meta-step through `StaticMetaStep` (a CUDA graph on CUDA)."""
        if self._static_step is None:
            template = batch

            def objective(flat):
                step_batch, step_params = unflatten_inputs(template, flat)
                return self._objective(step_batch, step_params, None, total)

            self._static_step = StaticMetaStep(
                objective,
                self._meta_weights(),
                capture=self.device.type == "cuda",
            )
        return self._static_step(flatten_inputs(batch, params))

    def _update(self, weights: dict[str, torch.Tensor]) -> None:
        """The meta-optimizer's step on a finite meta-gradient (clipped if asked)."""
        if self.clip_meta_grad is not None:
            torch.nn.utils.clip_grad_norm_(list(weights.values()), self.clip_meta_grad)
        self.meta_optimizer.step()
        self._skips = 0

    def _skip(self, objective: float) -> None:
        """Skip the update of a non-finite meta-gradient; stop after ``max_skips`` in a row."""
        self._skips += 1
        warnings.warn(
            f"outer step {self.step}: non-finite meta-gradient (meta-objective "
            f"{objective:.4g}); update skipped ({self._skips} in a row)",
            stacklevel=4,
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

    def _validate_and_keep_best(self) -> float:
        """Meta-validate on rank 0 (every rank gets its score, so all keep the same best
        weights) and keep the weights of a new best score."""
        score = self.validate() if self._ranks.is_main else math.nan
        score = self._ranks.broadcast(score, "broadcasting the meta-validation score")
        if math.isfinite(score) and score < self.best_score:
            self.best_score, self.best_step = score, self.step
            self._best_weights = self._weights()
        return score

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

    def _checkpoint_state(self) -> dict:
        """The full trainer state, as a checkpoint records it."""
        return {
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
            "validation": self._validation.fingerprint(),
            "moved": self._has_moved(),
        }

    def _restore(self) -> None:
        """Continue the run whose newest checkpoint is in ``run_dir`` (`RunDirectory.resume`
        checks that this trainer can)."""
        if self._run_directory is None:
            raise ValueError("resume=True needs run_dir")
        self.meta_gradient.check_resume()
        state = self._run_directory.resume(
            self._identity(),
            self.meta_optimizer.state_dict()["param_groups"],
            self._validation.fingerprint,
        )
        self.loss.load_state_dict(state["loss"])
        optimizer_state = state["meta_optimizer"]
        optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
        self.meta_optimizer.load_state_dict(optimizer_state)
        self._generator.set_state(state["generator"])
        self.step, self._skips = state["step"], state["skips"]
        self._execution.use_path(state["path"], state["path_reason"])
        self.history = state["history"]
        best = state["best"]
        self.best_score = math.inf if best["score"] is None else best["score"]
        self.best_step, self._best_weights = best["step"], best["weights"]
        self._start_weights, self._moved = self._weights(), state.get("moved", True)


def _is_finite(objective: float, weights: dict[str, torch.Tensor]) -> bool:
    """Whether a meta-objective and the meta-gradient in ``weights``' ``.grad`` are finite
    (a weight without a gradient counts as finite)."""
    present = [w.grad for w in weights.values() if w.grad is not None]
    return math.isfinite(objective) and (
        not present or bool(torch.stack([torch.isfinite(g).all() for g in present]).all())
    )


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
