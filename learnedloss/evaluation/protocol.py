"""Meta-testing: train fresh models on held-out tasks with each loss, and score them honestly.

The measuring stick (see docs/evaluation.md):

- every loss, learned or standard, trains the same fresh models (same initializations, same
  optimizer, same number of steps) on the same held-out tasks;
- each loss uses **its own tuned learning rate**: the best of a 2^(1/4)-spaced grid, chosen
  on separate tuning tasks (never on the tasks it is scored on);
- the score is the geometric mean of the final task objective over all tasks × inits, so a
  few easy or hard tasks do not dominate;
- rescaled-MSE controls (c·MSE) are scored the same way: c·MSE is MSE at lr·c, so their
  ratios to MSE show how far tuning noise alone moves a score. A loss beats MSE only when
  its ratio falls outside that band;
- a baseline with a shape parameter (`Tuned`, e.g. Huber's δ) has it tuned jointly with the
  lr; a loss with parameters of its own that is not learned by meta-training
  (``trained_with_model = True``, e.g. `AdaptiveRobustLoss`) has them trained with each model
  (`JointInnerLoop`);
- next to the last-step score, each run's early-stopped score: the query's test half at the
  step where its validation half was best (`with_validation`);
- ``path="engine"`` trains every run of a stage (tuning, then scoring) as one stacked call
  of the batched engine (`learnedloss.evaluation.batched`), with the same results.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from learnedloss.config import PROGRESS_INPUT
from learnedloss.evaluation.baselines import LossLike, Tuned
from learnedloss.evaluation.batched import (
    EngineRun,
    engine_curves,
    family_refusal,
    loss_refusal,
    trained_with_model,
)
from learnedloss.meta.inner import (
    InnerLoop,
    LossArguments,
    Objective,
    Params,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
    plain_loss_apply,
    plain_objective,
)
from learnedloss.progress import progress_for_calls
from learnedloss.tasks.base import TaskBatch, TaskFamily, default_loss_arguments

EVALUATION_SEED_OFFSET = 10_000
TUNING_SEED_OFFSET = 20_000
VALIDATION_SEED_OFFSET = 30_000
"""The seed offset of the permutation that splits the query rows into validation and test
halves for early stopping (`with_validation`)."""

VMAP_PATH = "vmap"
ENGINE_PATH = "engine"
EVALUATION_PATHS = (VMAP_PATH, ENGINE_PATH)
"""How `evaluate` trains: one `InnerLoop` (vmap over tasks) per loss and lr, the default, or
all runs of a stage stacked on the batched engine (`learnedloss.evaluation.batched`)."""


def lr_grid(low: float = 1e-4, high: float = 1.0, per_octave: int = 4) -> list[float]:
    """Learning rates ``low * 2**(k / per_octave)`` up to ``high`` (2^(1/4) spacing)."""
    count = math.floor(per_octave * math.log2(high / low) + 1e-9) + 1
    return [low * 2 ** (k / per_octave) for k in range(count)]


def pick_lr(lrs: Sequence[float], key) -> float:
    """The learning rate with the smallest ``key(lr)`` (any comparable, e.g. a tuple); the
    first one on ties."""
    return min(lrs, key=key)


@dataclass
class LossScore:
    """How one loss did on the held-out tasks.

    Attributes:
        name: the loss's label.
        lr: the learning rate it was scored at (tuned unless fixed).
        score: geometric mean of the final objective over tasks × inits (inf if any run
            diverged).
        finals: the final objective of every run, ``(n_tasks * n_inits,)``.
        curve_mean, curve_std: the objective every ``every`` steps, mean and std over runs.
        curve_log_mean, curve_log_std: mean and std over runs of its logarithm; their
            exponential is the geometric mean curve the score is the end of.
        diverged: runs whose final objective was not finite.
        tuning: ``{lr: tuning-task score}`` for every lr tried (for a `Tuned` baseline,
            with the chosen variant).
        metrics: the final value of each of the family's `TaskFamily.metrics` for every
            run, ``{name: (n_tasks * n_inits,)}`` (e.g. the error rate of a classifier).
        variant: for a `Tuned` baseline, the label of the variant chosen with the lr on the
            tuning tasks; None otherwise.
        variants: for a `Tuned` baseline, ``{variant: {lr: tuning-task score}}`` for every
            pair tried; empty otherwise.
        early_stopped: geometric mean over runs of the objective on the query's test half
            at the step where that run's validation half scored best (`with_validation`);
            None when early stopping was not recorded.
        early_stopped_metrics: each metric on the test half at those steps, per run.
        last_on_test: geometric mean of the objective on the test half at the last step:
            the same rows as ``early_stopped``, so the two show what stopping gains.
        best_step: the step each run stopped at, ``(n_tasks * n_inits,)`` (a multiple of
            ``every``; the first of equal validation scores).
        path: ``"vmap"`` or ``"engine"``: how this loss's runs were trained.
        path_reason: why the loss ran on the vmap path although ``path="engine"`` was
            asked ("" otherwise).
    """

    name: str
    lr: float
    score: float
    finals: torch.Tensor
    curve_mean: torch.Tensor
    curve_std: torch.Tensor
    curve_log_mean: torch.Tensor
    curve_log_std: torch.Tensor
    diverged: int
    tuning: dict[float, float] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    variant: str | None = None
    variants: dict[str, dict[float, float]] = field(default_factory=dict)
    early_stopped: float | None = None
    early_stopped_metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    last_on_test: float | None = None
    best_step: torch.Tensor | None = None
    path: str = VMAP_PATH
    path_reason: str = ""


@dataclass
class Evaluation:
    """The result of `evaluate`: one `LossScore` per loss, and the protocol used."""

    scores: dict[str, LossScore]
    reference: str
    steps: int
    every: int
    protocol: dict

    def ratio(self, name: str) -> float:
        """``score(name) / score(reference)``; below the c·MSE band means better."""
        return self.scores[name].score / self.scores[self.reference].score

    def table(self) -> str:
        """A plain-text table: lr, score, ratio to the reference, the mean of each metric,
        and with early stopping the early-stopped score and the median step it stopped at,
        then diverged runs; a `Tuned` baseline's chosen variant follows its label."""
        metric_names = list(next(iter(self.scores.values())).metrics)
        labels = {
            name: name if s.variant is None else f"{name} [{s.variant}]"
            for name, s in self.scores.items()
        }
        tuned = any(s.variant is not None for s in self.scores.values())
        stopped = all(s.early_stopped is not None for s in self.scores.values())
        width = max(28, *map(len, labels.values())) if tuned else 28
        header = f"{'loss':{width}s} | {'lr':>9} | {'geo-mean':>9} | {'ratio':>6} | "
        header += "".join(f"{name:>9} | " for name in metric_names)
        header += f"{'early-stop':>10} | {'at step':>7} | " if stopped else ""
        lines = [header + "diverged", "-" * (len(header) + 8)]
        for name, s in self.scores.items():
            metrics = "".join(f"{float(v.mean()):9.4f} | " for v in s.metrics.values())
            if stopped:
                step = int(s.best_step.float().median())
                metrics += f"{s.early_stopped:10.4g} | {step:7d} | "
            lines.append(
                f"{labels[name]:{width}s} | {s.lr:9.3g} | {s.score:9.4g} | "
                f"{self.ratio(name):6.3f} | {metrics}{s.diverged}/{len(s.finals)}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready summary for model cards and reports; each loss's ``curve`` is the
        geometric mean over runs of the objective every ``every`` steps; a `Tuned`
        baseline's entry also has its chosen ``variant``; with early stopping, the numbers
        ``early_stopped``, ``last_on_test``, ``stop_step`` (the median `LossScore.best_step`)
        and ``early_stopped_<metric>`` (means over runs). Which path each loss ran on is in
        the protocol (``path``, and ``fallbacks``: ``{label: reason}``)."""
        return {
            "protocol": self.protocol,
            "reference": self.reference,
            "every": self.every,
            "losses": {
                name: {
                    "lr": s.lr,
                    "geometric_mean": s.score,
                    "ratio": self.ratio(name),
                    "diverged": s.diverged,
                    **{metric: float(v.mean()) for metric, v in s.metrics.items()},
                    "curve": s.curve_log_mean.exp().tolist(),
                    **({} if s.variant is None else {"variant": s.variant}),
                    **_early_stopping_record(s),
                }
                for name, s in self.scores.items()
            },
        }


def _early_stopping_record(score: LossScore) -> dict[str, float]:
    """The early-stopping numbers of one loss in `Evaluation.to_dict` (none without)."""
    if score.early_stopped is None:
        return {}
    return {
        "early_stopped": score.early_stopped,
        "last_on_test": score.last_on_test,
        "stop_step": float(score.best_step.float().median()),
        **{f"early_stopped_{m}": float(v.mean()) for m, v in score.early_stopped_metrics.items()},
    }


def geometric_mean(values: torch.Tensor) -> float:
    """Geometric mean; inf if any value is not finite."""
    values = values.double()
    if not torch.isfinite(values).all():
        return math.inf
    return float(values.clamp_min(1e-30).log().mean().exp())


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5


def per_start_table(header: str, results: Mapping[str, Mapping], row) -> str:
    """A text table of ``{start: {loss name: score}}`` results: ``header``, a rule, then
    ``row(start, name, score)`` for every start and loss (the comparisons of
    `learnedloss.families.shaped_sine.recipe` and `learnedloss.families.mountain_car.recipe`)."""
    lines = [header, "-" * len(header)]
    lines += [row(start, name, s) for start, rows in results.items() for name, s in rows.items()]
    return "\n".join(lines)


def held_out_draw(tasks: TaskFamily, n_tasks: int, n_inits: int, seed: int):
    """``n_tasks`` tasks from ``tasks`` drawn with ``seed``, each repeated for ``n_inits``
    model initializations: ``(template model, TaskBatch, stacked initial parameters)``.

    Evaluations draw their held-out tasks with seed ``EVALUATION_SEED_OFFSET + seed`` and
    their lr-tuning tasks with ``TUNING_SEED_OFFSET + seed``, never the seeds meta-training
    draws from."""
    generator = torch.Generator().manual_seed(seed)
    batch = tasks.sample(n_tasks, generator)
    repeat = lambda t: t.repeat_interleave(n_inits, dim=0)  # noqa: E731
    batch = TaskBatch(
        repeat(batch.x_train),
        repeat(batch.y_train),
        repeat(batch.x_query),
        repeat(batch.y_query),
        {k: repeat(v) for k, v in batch.extra.items()},
    )
    template, params = initial_params(tasks.make_model, n_tasks * n_inits, generator)
    return template, batch, params


class _ModelWithLoss(nn.Module):
    """A task's model and a loss whose parameters train with it: ``forward`` is the model's,
    the parameters are ``model.*`` and ``loss.*``."""

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class JointInnerLoop(InnerLoop):
    """An `InnerLoop` that trains a loss's own parameters together with each task's model,
    with the same optimizer and lr: Barron's `AdaptiveRobustLoss` learns its α and scale
    this way, per task. `evaluate` uses it for every loss module marked
    ``trained_with_model = True``.

    `run` and `curves` take the models' parameters and the loss's starting parameters like
    any `InnerLoop` (``loss_params``, unbatched; every task starts from them). The lower-level
    `init_state`, `steps` and `score` work on the joint parameters of `joint` (the model's
    under ``model.``, the loss's under ``loss.``, batched over tasks); `split` separates them.
    The objective sees the model's parameters only.

    Args:
        loss: the loss module (copied: its parameters are never changed in place).
        model: the template of the tasks' models.
        objective: as for `InnerLoop`.
        optimizer (torchopt.base.GradientTransformation): as for `InnerLoop`.
        path: as for `InnerLoop`.
        loss_arguments: as for `InnerLoop`.

    Examples:
        >>> import torch, torchopt
        >>> from torch import nn
        >>> from learnedloss.evaluation.baselines import AdaptiveRobustLoss
        >>> from learnedloss.meta.inner import plain_objective
        >>> loss = AdaptiveRobustLoss()
        >>> inner = JointInnerLoop(
        ...     loss, nn.Linear(1, 1), plain_objective(nn.functional.mse_loss), torchopt.sgd(0.1)
        ... )
        >>> models = {"weight": torch.zeros(4, 1, 1), "bias": torch.zeros(4, 1)}
        >>> start = {k: v.detach() for k, v in loss.named_parameters()}
        >>> joint = inner.joint(models, start)
        >>> x, y = torch.randn(4, 8, 1), torch.randn(4, 8, 1)
        >>> joint, _ = inner.steps(joint, inner.init_state(joint), {}, x, y, 5)
        >>> models, trained = inner.split(joint)
        >>> trained["scale_raw"].shape  # one scale per task
        torch.Size([4])
    """

    def __init__(
        self,
        loss: nn.Module,
        model: nn.Module,
        objective: Objective,
        optimizer,
        path: str = "vmap",
        loss_arguments: LossArguments = default_loss_arguments,
    ) -> None:
        loss = copy.deepcopy(loss)
        self._side = tuple(getattr(loss, "side_inputs", ()))
        super().__init__(
            _ModelWithLoss(model, loss),
            self._joint_loss_apply,
            objective,
            optimizer,
            path=path,
            loss_arguments=loss_arguments,
        )

    # the loss's parameters and buffers, read from the joint ones
    def _joint_loss_apply(self, tensors: Params, input, target, offered):
        side = {name: offered[name] for name in self._side}
        with progress_for_calls(self.model.loss, offered.get(PROGRESS_INPUT)):
            return functional_call(self.model.loss, tensors, (input, target), side)

    def joint(self, params: Params, loss_params: Params) -> Params:
        """The joint parameters: the models' ``params`` (batched over tasks) under
        ``model.``, and ``loss_params`` (unbatched) repeated for every task under
        ``loss.``."""
        n_tasks = next(iter(params.values())).shape[0]
        return {
            **{f"model.{k}": v for k, v in params.items()},
            **{f"loss.{k}": v.expand(n_tasks, *v.shape).clone() for k, v in loss_params.items()},
        }

    @staticmethod
    def split(joint: Params) -> tuple[Params, Params]:
        """``(model parameters, loss parameters)`` from joint ones."""
        parts: tuple[Params, Params] = ({}, {})
        for key, value in joint.items():
            owner, name = key.split(".", 1)
            parts[owner == "loss"][name] = value
        return parts

    def _train_loss(self, params, loss_params, buffers, x, y, progress):
        input, target, offered = self.loss_arguments(self._predict(params, buffers, x), y, x)
        offered = {**offered, PROGRESS_INPUT: progress}
        own = {k: v for k, v in {**params, **buffers}.items() if k.startswith("loss.")}
        return self.loss_apply(
            {k[len("loss.") :]: v for k, v in own.items()}, input, target, offered
        )

    def _score(self, params, state, x, y, extra):
        prediction = self._predict(params, state[1], x)
        return self.objective(self.split(params)[0], prediction, y, extra)

    def run(self, params: Params, loss_params: Params, batch, n_steps: int, **kwargs):
        """`InnerLoop.run`, from the models' ``params`` and the loss's starting
        ``loss_params``; the meta-gradient reaches those starting values."""
        return super().run(self.joint(params, loss_params), {}, batch, n_steps, **kwargs)

    def curves(self, params: Params, loss_params: Params, batch, n_steps: int, **kwargs):
        """`InnerLoop.curves`, from the models' ``params`` and the loss's starting
        ``loss_params``."""
        return super().curves(self.joint(params, loss_params), {}, batch, n_steps, **kwargs)


def inner_loop_for(
    loss: LossLike,
    tasks: TaskFamily,
    template: nn.Module,
    lr: float,
    optimizer: str = "sgd",
    objective: Objective | None = None,
    device: str | torch.device = "cpu",
) -> tuple[InnerLoop, dict[str, torch.Tensor]]:
    """An `InnerLoop` that trains ``tasks``' models with ``loss`` (learned or standard) at
    ``lr``, and the loss parameters to run it with (detached; none for a standard loss).

    A loss marked ``trained_with_model`` gets a `JointInnerLoop`, and its parameters are
    where each task's copy starts."""
    if isinstance(loss, Tuned):
        raise TypeError(
            f"Tuned({loss.name!r}) is a grid of variants for evaluate() to tune; to train "
            f"with one, pick it from .variants (one of {list(loss.variants)})"
        )
    if trained_with_model(loss):
        loss_params = {k: v.detach().to(device) for k, v in loss.named_parameters()}
        inner = JointInnerLoop(
            copy.deepcopy(loss).to(device),
            template.to(device),
            objective or plain_objective(tasks.objective),
            make_inner_optimizer(optimizer, lr),
            loss_arguments=tasks.loss_arguments,
        )
        return inner, loss_params
    if isinstance(loss, nn.Module) and any(True for _ in loss.parameters()):
        apply = learned_loss_apply(loss)
        loss_params = {k: v.detach().to(device) for k, v in loss.named_parameters()}
    else:
        apply, loss_params = plain_loss_apply(loss), {}
    inner = InnerLoop(
        template.to(device),
        apply,
        objective or plain_objective(tasks.objective),
        make_inner_optimizer(optimizer, lr),
        loss_arguments=tasks.loss_arguments,
    )
    return inner, loss_params


def train_curves(
    loss: LossLike,
    tasks: TaskFamily,
    template: nn.Module,
    batch: TaskBatch,
    params: dict[str, torch.Tensor],
    lr: float,
    steps: int,
    optimizer: str = "sgd",
    score_on: str = "query",
    every: int = 1,
    device: str | torch.device = "cpu",
    objective: Objective | None = None,
) -> torch.Tensor:
    """Train every model with ``loss``; the task objective every ``every`` steps, ``(S, T)``.

    ``objective`` replaces the task objective as the score (see `InnerLoop`)."""
    inner, loss_params = inner_loop_for(loss, tasks, template, lr, optimizer, objective, device)
    return inner.curves(
        {k: v.to(device) for k, v in params.items()},
        loss_params,
        batch.to(device),
        steps,
        score_on=score_on,
        every=every,
    ).cpu()


def with_metrics(tasks: TaskFamily) -> Objective:
    """An objective scoring one task by ``[objective, *metrics]`` (a vector), so one training
    run records the task objective and the family's `TaskFamily.metrics` together."""

    def objective(params, prediction, target, extra):
        values = [tasks.objective(prediction, target)]
        values += list(tasks.metrics(prediction, target).values())
        return torch.stack([v.to(values[0].dtype) for v in values])

    return objective


def with_validation(tasks: TaskFamily, n_rows: int, seed: int) -> Objective:
    """`with_metrics` on all query rows, then on a validation half, then on a test half.

    The halves are fixed by a permutation of the ``n_rows`` query rows drawn with seed
    ``VALIDATION_SEED_OFFSET + seed``: its first ``n_rows // 2`` rows are the validation
    half, the rest the test half (the same rows for every task). The query labels are clean,
    so the validation half is a clean validation split, disjoint from the rows the
    early-stopped score is taken on. Returns ``[*all, *validation, *test]``, each
    ``[objective, *metrics]``.

    Examples:
        >>> import torch
        >>> from learnedloss.families.sine import SineTasks
        >>> objective = with_validation(SineTasks(), n_rows=10, seed=0)
        >>> rows = torch.arange(10.0).view(10, 1)
        >>> objective({}, rows, torch.zeros(10, 1), {}).shape  # MSE: all, validation, test
        torch.Size([3])
    """
    generator = torch.Generator().manual_seed(VALIDATION_SEED_OFFSET + seed)
    order = torch.randperm(n_rows, generator=generator)
    halves = order[: n_rows // 2], order[n_rows // 2 :]
    scored = with_metrics(tasks)

    def objective(params, prediction, target, extra):
        values = [scored(params, prediction, target, extra)]
        for rows in halves:
            rows = rows.to(prediction.device)
            values.append(scored(params, prediction[rows], target[rows], extra))
        return torch.cat(values)

    return objective


@dataclass
class _Training:
    """Trains lists of (loss, lr) runs on a draw, on the path `evaluate` was asked for, and
    records why a loss fell back to the vmap path (``reasons``, by ``id`` of the loss)."""

    tasks: TaskFamily
    path: str
    optimizer: str
    steps: int
    score_on: str
    device: str | torch.device
    objective: Objective
    reasons: dict[int, str] = field(default_factory=dict)
    family_reason: str | None = None

    def curves(self, runs: Sequence[tuple[LossLike, float]], draw, every: int):
        """Each run's ``(S, T, K)`` curves on ``draw`` (template, batch, params), in order."""
        template, batch, params = draw
        run = dict(score_on=self.score_on, device=self.device, objective=self.objective)
        stacked = [i for i, (loss, _) in enumerate(runs) if self._on_engine(loss, draw)]
        results: dict[int, torch.Tensor] = {}
        if stacked:
            engine_runs = [EngineRun(*runs[i]) for i in stacked]
            trained = engine_curves(
                engine_runs,
                self.tasks,
                template,
                batch,
                params,
                steps=self.steps,
                optimizer=self.optimizer,
                every=every,
                **run,
            )
            results = dict(zip(stacked, trained, strict=True))
        for i, (loss, lr) in enumerate(runs):
            if i not in results:
                results[i] = train_curves(
                    loss,
                    self.tasks,
                    template,
                    batch,
                    params,
                    lr,
                    self.steps,
                    optimizer=self.optimizer,
                    every=every,
                    **run,
                )
        return [results[i] for i in range(len(runs))]

    def _on_engine(self, loss: LossLike, draw) -> bool:
        if self.path != ENGINE_PATH:
            return False
        template, batch, _ = draw
        if self.family_reason is None:
            self.family_reason = family_refusal(self.tasks, template, batch, self.optimizer) or ""
        if id(loss) not in self.reasons:
            self.reasons[id(loss)] = self.family_reason or loss_refusal(loss, template, batch) or ""
        return not self.reasons[id(loss)]

    def path_of(self, name: str, loss: LossLike) -> dict[str, str]:
        """``{"path": ..., "path_reason": ...}`` for the loss labelled ``name`` (all variants
        of a `Tuned` one); a fallback to the vmap path is warned about once per process."""
        used = loss.variants.values() if isinstance(loss, Tuned) else [loss]
        reason = next((self.reasons[id(v)] for v in used if self.reasons.get(id(v))), "")
        if reason and (name, reason) not in _WARNED:
            _WARNED.add((name, reason))
            warnings.warn(
                f"evaluate(path='engine'): {name!r} runs on the vmap path: {reason}", stacklevel=3
            )
        on_engine = self.path == ENGINE_PATH and not reason
        return {"path": ENGINE_PATH if on_engine else VMAP_PATH, "path_reason": reason}


_WARNED: set[tuple[str, str]] = set()
"""The (loss label, reason) fallbacks already warned about in this process."""


def _selection(tasks: TaskFamily, draw, select_by: str) -> tuple[list[str], int]:
    """The family's metric names, and the column of ``[objective, *metrics]`` that
    ``select_by`` tunes by (a clear error for an unknown metric)."""
    template, batch, _ = draw
    with torch.no_grad():  # the metric names, from one fresh model's query predictions
        metric_names = list(tasks.metrics(template(batch.x_query[0]), batch.y_query[0]))
    if select_by != "objective" and select_by not in metric_names:
        raise ValueError(
            f"select_by must be 'objective' or one of the family's metrics {metric_names}, "
            f"got {select_by!r}"
        )
    return metric_names, 0 if select_by == "objective" else 1 + metric_names.index(select_by)


def evaluate(
    losses: Mapping[str, LossLike],
    tasks: TaskFamily,
    *,
    steps: int = 100,
    n_tasks: int = 100,
    n_inits: int = 3,
    optimizer: str = "sgd",
    lr: float | None = None,
    lrs: Sequence[float] | None = None,
    tune_tasks: int = 32,
    select_by: str = "objective",
    reference: str | None = None,
    score_on: str = "query",
    every: int = 1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    path: str = VMAP_PATH,
    early_stopping: bool = True,
    widen: int = 0,
) -> Evaluation:
    """Score losses by training fresh models on held-out tasks (see the module docstring).

    Args:
        losses: ``{label: loss}``; a loss is a `LearnedLoss`, an ``nn.Module`` (one marked
            ``trained_with_model``, like `AdaptiveRobustLoss`, has its parameters trained
            with each model), a function ``(prediction, target) -> scalar``, or a `Tuned`
            grid of variants, whose variant is tuned with the lr on the tuning tasks (also
            when ``lr`` is fixed). See `robust_regression_baselines`,
            `noisy_label_baselines` and `standard_losses` for the baselines.
        tasks: the family held-out tasks are drawn from (seed ``EVALUATION_SEED_OFFSET + seed``).
        steps: optimizer steps per model.
        n_tasks: held-out tasks.
        n_inits: model initializations per held-out task.
        optimizer: ``"sgd"`` or ``"adam"``, the same for every loss.
        lr: score every loss at this one learning rate (no tuning).
        lrs: the grid each loss's lr is tuned over (default `lr_grid()`: 1e-4 to 1, 2^(1/4)
            spacing), on ``tune_tasks`` separate tasks (seed ``TUNING_SEED_OFFSET + seed``, one
            init each).
        select_by: what the tuning minimizes: ``"objective"`` (the geometric mean of the
            final task objective) or the name of one of the family's metrics (its mean), e.g.
            ``"error"`` for classifiers, so that losses whose models are accurate but not
            calibrated are not tuned against. Early stopping picks its step by it too.
        reference: the label ratios are taken against (default: the first loss).
        score_on: ``"query"`` or ``"train"``.
        every: record the objective every this many steps.
        seed: offsets the task and initialization seeds.
        device: where the models train.
        path: ``"vmap"`` (the default: one vmapped inner loop per loss and lr) or
            ``"engine"``: every lr × task × init of every loss (and every variant of a
            `Tuned` one) trained as one stacked call of the batched engine per stage, the
            tuning and the scoring. A loss the engine cannot train runs on the vmap path;
            its `LossScore.path_reason` says why, and a warning is printed once.
        early_stopping: also record the early-stopped score (`LossScore.early_stopped`,
            see `with_validation`); only with ``score_on="query"`` and 2 query rows or more.
        widen: a loss (or a `Tuned` variant) whose best lr is the grid's lowest or highest
            is tuned again one grid step beyond that edge (the grid's own spacing), up to
            ``widen`` steps, so that no lr is chosen at an edge that binds; 0 (the default)
            keeps the grid as given. Needs a grid of 2 lrs or more.
    """
    if path not in EVALUATION_PATHS:
        raise ValueError(f"path must be one of {list(EVALUATION_PATHS)}, got {path!r}")
    reference = reference or next(iter(losses))
    draw = held_out_draw(tasks, n_tasks, n_inits, EVALUATION_SEED_OFFSET + seed)
    metric_names, column = _selection(tasks, draw, select_by)
    n_rows = draw[1].x_query.shape[1]
    stopping = early_stopping and score_on == "query" and n_rows >= 2
    scored = with_validation(tasks, n_rows, seed) if stopping else with_metrics(tasks)
    training = _Training(tasks, path, optimizer, steps, score_on, device, scored)
    grid = [lr] if lr is not None else list(lrs) if lrs is not None else lr_grid()
    tuned = any(isinstance(loss, Tuned) for loss in losses.values())
    tuning = {}
    if lr is None or tuned:
        tune = held_out_draw(tasks, tune_tasks, 1, TUNING_SEED_OFFSET + seed)
        tuning = _tuning_scores(losses, training, tune, grid, column, fixed=lr is not None)
        if len(grid) > 1:
            _widen_at_edges(tuning, losses, training, tune, column, widen)
    chosen = {name: _choose(loss, tuning.get(name), lr) for name, loss in losses.items()}
    curves = training.curves([(loss, rate) for loss, rate, _ in chosen.values()], draw, every)
    scores = {
        name: _loss_score(
            name,
            curve,
            metric_names,
            rate,
            stopping=(column, every) if stopping else None,
            **training.path_of(name, loss),
            **picked,
        )
        for (name, loss), (_, rate, picked), curve in zip(
            losses.items(), chosen.values(), curves, strict=True
        )
    }
    protocol = {
        "tasks": tasks.describe(),
        "n_tasks": n_tasks,
        "n_inits": n_inits,
        "steps": steps,
        "optimizer": optimizer,
        "lr": "tuned per loss" if lr is None else lr,
        "lr_grid": None if lr is not None else [grid[0], grid[-1], len(grid)],
        "tune_tasks": None if lr is not None and not tuned else tune_tasks,
        "widen": widen,
        "select_by": select_by,
        "score_on": score_on,
        "seed": seed,
        "path": path,
        "fallbacks": {name: s.path_reason for name, s in scores.items() if s.path_reason},
        "early_stopping": "query halves (validation, test)" if stopping else None,
    }
    return Evaluation(scores, reference, steps, every, protocol)


def _tuning_scores(
    losses: Mapping[str, LossLike], training: _Training, tune, grid, column: int, fixed: bool
) -> dict[str, dict[str | None, dict[float, float]]]:
    """``{name: {variant label: {lr: tuning score}}}`` for every loss to tune (a non-`Tuned`
    loss has the one variant ``None``; with a ``fixed`` lr only `Tuned` losses are tuned),
    all runs of all losses trained in one `_Training.curves` call."""
    candidates = []
    for name, loss in losses.items():
        if fixed and not isinstance(loss, Tuned):
            continue
        variants = loss.variants if isinstance(loss, Tuned) else {None: loss}
        for label, variant in variants.items():
            candidates += [(name, label, variant, lr) for lr in grid]
    scores: dict[str, dict[str | None, dict[float, float]]] = {}
    _score_candidates(candidates, training, tune, column, scores)
    return scores


def _score_candidates(candidates, training: _Training, tune, column: int, into: dict) -> None:
    """Train every ``(name, variant label, loss, lr)`` of ``candidates`` on the tuning tasks
    in one `_Training.curves` call, and record its score in ``into[name][label][lr]``."""
    runs = [(loss, lr) for _, _, loss, lr in candidates]
    for (name, label, _, lr), curves in zip(
        candidates, training.curves(runs, tune, training.steps), strict=True
    ):
        finals = curves[-1, :, column]
        score = geometric_mean(finals) if column == 0 else _mean_or_inf(finals)
        into.setdefault(name, {}).setdefault(label, {})[lr] = score


def _widen_at_edges(
    tuning: dict, losses: Mapping[str, LossLike], training: _Training, tune, column: int, rounds
) -> None:
    """`evaluate`'s ``widen``: tune again one grid step beyond the edge each variant's best
    lr sits at, for up to ``rounds`` rounds, adding the scores to ``tuning`` in place."""
    for _ in range(rounds):
        candidates = []
        for name, variants in tuning.items():
            loss = losses[name]
            for label, scores in variants.items():
                tried = sorted(scores)
                best = min(scores, key=scores.get)
                if best == tried[0]:
                    beyond = best * tried[0] / tried[1]
                elif best == tried[-1]:
                    beyond = best * tried[-1] / tried[-2]
                else:
                    continue
                variant = loss.variants[label] if isinstance(loss, Tuned) else loss
                candidates.append((name, label, variant, beyond))
        if not candidates:
            return
        _score_candidates(candidates, training, tune, column, tuning)


def _choose(loss: LossLike, tuning: dict | None, lr: float | None):
    """``(loss to score, lr, record)``: the loss (a `Tuned` one's chosen variant) and its lr
    from its tuning scores, and the record's ``tuning``, ``variant`` and ``variants``."""
    if isinstance(loss, Tuned):
        variant, chosen = min(
            ((label, c) for label in tuning for c in tuning[label]),
            key=lambda pair: tuning[pair[0]][pair[1]],
        )
        record = dict(tuning=tuning[variant], variant=variant, variants=tuning)
        return loss.variants[variant], chosen, record
    if lr is not None:
        return loss, lr, dict(tuning={}, variant=None, variants={})
    scores = tuning[None]
    return loss, min(scores, key=scores.get), dict(tuning=scores, variant=None, variants={})


def _loss_score(
    name: str,
    curves: torch.Tensor,
    metric_names: Sequence[str],
    lr: float,
    stopping: tuple[int, int] | None = None,
    **recorded,
) -> LossScore:
    """The `LossScore` of one loss from its ``(S, T, K)`` curves at ``lr``: ``K = 1 +
    metrics`` columns ``[objective, *metrics]``, or three such groups (all query rows,
    validation half, test half; `with_validation`) when ``stopping`` is ``(column, every)``:
    the column early stopping minimizes and the steps between records. ``recorded``: its
    ``tuning``, ``variant``, ``variants``, ``path`` and ``path_reason``."""
    width = 1 + len(metric_names)
    if stopping is not None:
        recorded.update(_early_stopped(curves[..., width:], metric_names, *stopping))
    curves = curves[..., :width]
    metrics = {metric: curves[-1, :, 1 + i] for i, metric in enumerate(metric_names)}
    curves = curves[..., 0]
    finals = curves[-1]
    finite = torch.where(torch.isfinite(curves), curves, torch.nan)
    return LossScore(
        name=name,
        lr=lr,
        score=geometric_mean(finals),
        finals=finals,
        curve_mean=finite.nanmean(dim=1),
        curve_std=_nanstd(finite),
        curve_log_mean=finite.clamp_min(1e-30).log().nanmean(dim=1),
        curve_log_std=_nanstd(finite.clamp_min(1e-30).log()),
        diverged=int((~torch.isfinite(finals)).sum()),
        metrics=metrics,
        **recorded,
    )


def _early_stopped(halves: torch.Tensor, metric_names: Sequence[str], column: int, every: int):
    """Each run stopped where its validation half scored best in ``column`` (the first such
    record; a non-finite score never wins): the `LossScore` early-stopping fields, from the
    ``(S, T, 2 * K)`` validation and test columns."""
    validation, test = halves.chunk(2, dim=-1)
    criterion = validation[..., column]
    criterion = torch.where(torch.isfinite(criterion), criterion, torch.inf)
    best = criterion.argmin(dim=0)
    index = best.view(1, -1, 1).expand(1, *test.shape[1:])
    at_best = test.gather(0, index).squeeze(0)
    return dict(
        early_stopped=geometric_mean(at_best[:, 0]),
        early_stopped_metrics={m: at_best[:, 1 + i] for i, m in enumerate(metric_names)},
        last_on_test=geometric_mean(test[-1, :, 0]),
        best_step=best * every,
    )


def _mean_or_inf(values: torch.Tensor) -> float:
    return float(values.mean()) if torch.isfinite(values).all() else math.inf


def _nanstd(values: torch.Tensor) -> torch.Tensor:
    mean = values.nanmean(dim=1, keepdim=True)
    return ((values - mean) ** 2).nanmean(dim=1).sqrt()
