"""`MetaTrainer`: the ML3 outer loop that fits a `LearnedLoss` to a family of tasks."""

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
    """The meta-gradient was not finite for too many consecutive outer steps."""


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
        inner_steps: inner-loop steps K.
        inner_lr: the learning rate of the ``"sgd"``/``"adam"`` shorthands (default 1e-3).
            Not with a ``GradientTransformation``, which carries its own.
        inner_optimizer: a torchopt ``GradientTransformation``, e.g.
            ``torchopt.adam(1e-2, eps_root=1e-8)`` or any ``torchopt.chain(...)``, built with
            its learning rate; or the shorthand ``"sgd"`` (``torchopt.sgd(inner_lr)``) or
            ``"adam"`` (``torchopt.adam(inner_lr, eps_root=1e-8)``). Adam inside a
            differentiated loop needs ``eps_root > 0``. A transformation's settings cannot be
            read back: the metadata records it as ``"torchopt.GradientTransformation"``, and
            a resumed run must be given the same one.
        meta_optimizer: ``params -> torch.optim.Optimizer``; default Adam at ``meta_lr``.
        meta_lr: the outer learning rate of the default meta-optimizer.
        meta_batch_size: tasks per outer step.
        truncate: backpropagate only through the last ``truncate`` inner steps (memory).
        checkpoint_inner: recompute inner-step activations in the backward pass (memory).
        score_on: ``"query"`` (held-out points, default) or ``"train"`` (the inner-loop data,
            as ML3's reference code does).
        aggregate: how task objectives combine into the meta-objective: ``"mean"`` (ML3) or
            ``"log-mean"``, the mean of their logarithms, which is what the geometric-mean
            score of `learnedloss.evaluate` measures. The arithmetic mean lets a few
            high-error tasks (large sine amplitudes) dominate.
        validation_tasks: the family meta-validation tasks come from (default: ``tasks``);
            a fixed set of ``validation_size`` tasks is drawn once from seed ``seed + 1``.
        validate_every: meta-validate every this many outer steps (0: never).
        keep: what `fit` returns: ``"best"``, the loss with the best meta-validation score,
            or ``"last"``, the loss after the last outer step. Prefer ``"last"`` when
            meta-validation is too noisy to rank losses (picking the best of noisy scores
            picks a lucky one); it does not change the run itself.
        run_dir: where checkpoints go; ``None`` writes none.
        checkpoint_every: write a checkpoint every this many outer steps.
        callbacks: called as ``callback(trainer, record)`` after every outer step.
        max_skips: stop with `MetaTrainingDiverged` after this many consecutive outer steps
            whose meta-gradient was not finite (each is skipped with a warning).
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
        self.keep = keep
        self.seed = seed
        self.device = requested
        self.progress = progress
        self.cuda_graph = cuda_graph
        self.path, self.path_reason = path, ""

        self.loss.to(self.device).unfreeze()
        make_meta = meta_optimizer or (lambda ps: torch.optim.Adam(ps, lr=meta_lr))
        self.meta_optimizer = make_meta(self.loss.parameters())
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
        self, steps: int, resume: bool = False, max_seconds: float | None = None
    ) -> LearnedLoss:
        """Run outer steps until ``steps`` have been done in total.

        Args:
            steps: the total number of outer steps (a resumed run counts the earlier ones).
            resume: continue from the newest checkpoint in ``run_dir``.
            max_seconds: a wall-clock budget: stop after the outer step that exceeds it
                (and write a checkpoint, with ``run_dir``, so ``resume`` can continue).

        Returns:
            A frozen copy of the loss with the best meta-validation score (the final loss
            when validation is off, or with ``keep="last"``), with its meta-training
            recorded in its metadata.
        """
        if resume:
            self._restore()
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
        return self.best_loss() if self.keep == "best" else self.last_loss()

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
        if loss_params is None:
            loss_params = dict(self.loss.named_parameters())
        objectives = self._inner.run(
            params,
            loss_params,
            batch,
            self.inner_steps,
            score_on=self.score_on,
            truncate=self.truncate,
            checkpointed=self.checkpoint_inner and torch.is_grad_enabled(),
        )
        return self._aggregate(objectives)

    def _aggregate(self, objectives: torch.Tensor) -> torch.Tensor:
        return objectives.log().mean() if self.aggregate == "log-mean" else objectives.mean()

    def _aggregate_share(self, objectives: torch.Tensor, total: int) -> torch.Tensor:
        """This rank's share of the aggregated objective of ``total`` tasks: its tasks' sum
        divided by ``total``, so that the ranks' shares sum to `_aggregate` of them all."""
        terms = objectives.log() if self.aggregate == "log-mean" else objectives
        return terms.sum() / total

    def _share_objective(self, batch, params, loss_params, total: int) -> torch.Tensor:
        if loss_params is None:
            loss_params = dict(self.loss.named_parameters())
        objectives = self._inner.run(
            params,
            loss_params,
            batch,
            self.inner_steps,
            score_on=self.score_on,
            truncate=self.truncate,
            checkpointed=self.checkpoint_inner and torch.is_grad_enabled(),
        )
        return self._aggregate_share(objectives, total)

    def validate(self) -> float:
        """The aggregated task objective on the fixed meta-validation tasks."""
        batch, params = self._validation
        with torch.no_grad():
            loss_params = {k: v.detach() for k, v in self.loss.named_parameters()}
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
        weights = dict(self.loss.named_parameters())

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
        grads = [p.grad for p in self.loss.parameters()]
        # A parameter with no gradient (e.g. an output bias, which shifts the loss but not
        # its gradient, so the inner loop never feels it) simply is not updated.
        present = [g for g in grads if g is not None]
        finite = math.isfinite(objective) and (
            not present or bool(torch.stack([torch.isfinite(g).all() for g in present]).all())
        )
        self.step += 1
        record: dict[str, Any] = {"step": self.step, "meta_train": objective}
        if finite:
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
                dict(self.loss.named_parameters()),
                capture=self.device.type == "cuda",
            )
        return self._static_step(flatten_inputs(batch, params))

    def _inner_lr_text(self) -> str:
        if self.inner_lr is None:
            return "set in the GradientTransformation given as inner_optimizer"
        return f"inner_lr={self.inner_lr}"

    # ------------------------------------------------------------------ checkpoints

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
        }
        return checkpoints.write_state(self.run_dir, self.step, state)

    def _restore(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume=True needs run_dir")
        state = self._read_state()
        if state["identity"] != self._identity():
            raise ValueError(
                f"cannot resume: the checkpoint in {self.run_dir} was made with "
                f"{state['identity']}, this trainer has {self._identity()}"
            )
        self.loss.load_state_dict(state["loss"])
        optimizer_state = state["meta_optimizer"]
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
