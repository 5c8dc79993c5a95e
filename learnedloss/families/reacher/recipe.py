"""Model-based RL on the MuJoCo reacher: meta-train a loss that policies are optimized with
through a learned dynamics model, and measure them in the real simulator.

ML3's model-based application (Bechtle et al., ICPR 2021). The loop:

1. Collect random-action episodes in MuJoCo (`learnedloss.envs.reacher.MujocoReacher`) and
   fit a `DynamicsModel` to them.
2. Meta-train a loss on `ReacherGoals`: each task trains a fresh policy through the model
   with the loss; the meta-objective is the final and mean distance to the goal in the model,
   plus a small final-velocity term.
3. Every ``refit_every`` outer steps, train policies on new goals with the current loss, run
   them in MuJoCo, add the transitions, and refit the model in place (`DynamicsRefit`).

**Collapse.** The public ML3 reacher's loss went to zero and its policies stopped learning.
Here the loss starts as exactly the task loss and uses the ``"weight"`` residual form: the
network only redistributes weights that average 1 over the roll-out's elements, so the loss
cannot shrink towards zero as a whole. `CollapseMonitor` measures, at every validation, the
norm of the loss's gradient on fresh policies relative to the task loss's, records it in the
history and warns when it falls below a floor.

Evaluation (`evaluate_reacher`): held-out goals and policies; policies are trained through a
dynamics model fitted for the evaluation (random episodes plus roll-outs of policies trained
with the task loss, never with the learned loss), then run in MuJoCo; the score is the final
distance to the goal there.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from learnedloss.envs.reacher import HORIZON, MujocoReacher, sample_goals, sample_starts
from learnedloss.evaluation.baselines import LossLike
from learnedloss.evaluation.protocol import held_out_draw, inner_loop_for, lr_grid, mean_and_std
from learnedloss.families.reacher.tasks import (
    DynamicsModel,
    ReacherGoals,
    ReacherPolicy,
    fit_dynamics,
)
from learnedloss.families.recipe import (
    ESTIMATING,
    MetaGradientRecipe,
    declare_recipe,
    hidden_setting,
    meta_train,
    seeded,
)
from learnedloss.loss import LearnedLoss
from learnedloss.meta.inner import learned_loss_apply, plain_loss_apply
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.meta.trainer import MetaTrainer
from learnedloss.starts import mse_start_config
from learnedloss.tasks.base import TaskBatch
from learnedloss.validators import non_negative_float, non_negative_int, positive_int

Transitions = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class ReacherData:
    """Real transitions collected so far: states, actions and next states, ``(N, 4/2/4)``."""

    states: list[torch.Tensor] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    next_states: list[torch.Tensor] = field(default_factory=list)

    def add(self, rollout: dict[str, torch.Tensor]) -> None:
        """Add one `MujocoReacher.rollout`'s transitions."""
        self.states.append(rollout["states"][:-1])
        self.actions.append(rollout["actions"])
        self.next_states.append(rollout["states"][1:])

    def tensors(self) -> Transitions:
        return torch.cat(self.states), torch.cat(self.actions), torch.cat(self.next_states)

    def __len__(self) -> int:
        return sum(len(s) for s in self.states)


def collect_random(
    reacher: MujocoReacher, episodes: int, generator: torch.Generator, data: ReacherData
) -> None:
    """Add ``episodes`` episodes of uniform random torques from gymnasium's starts."""
    for _ in range(episodes):
        start, goal = sample_starts(1, generator)[0], sample_goals(1, generator)[0]
        actions = iter(torch.rand(HORIZON, 2, generator=generator) * 2 - 1)
        data.add(reacher.rollout(lambda state, goal, a=actions: next(a), start, goal))


def train_policies(
    loss: LossLike,
    tasks: ReacherGoals,
    template: nn.Module,
    batch: TaskBatch,
    params: dict[str, torch.Tensor],
    *,
    lr: float,
    steps: int,
    optimizer: str = "adam",
) -> dict[str, torch.Tensor]:
    """Train every task's policy with ``loss`` through the dynamics model; returns the
    trained parameters, stacked over tasks."""
    inner, loss_params = inner_loop_for(loss, tasks, template, lr, optimizer)
    with torch.no_grad():
        trained, _ = inner.steps(
            params, inner.init_state(params), loss_params, batch.x_train, batch.y_train, steps
        )
    return trained


def run_policies(
    reacher: MujocoReacher,
    tasks: ReacherGoals,
    params: dict[str, torch.Tensor],
    batch: TaskBatch,
    data: ReacherData | None = None,
) -> torch.Tensor:
    """Run each task's trained policy in MuJoCo from its start towards its goal; returns
    the distances to the goal after every step, ``(T, horizon)`` (and adds the transitions
    to ``data``)."""
    with torch.random.fork_rng(devices=[]):  # a template: its own weights are never used
        policy = ReacherPolicy(tasks.policy_hidden)
    distances = []
    for i in range(len(batch)):
        weights = {k.removeprefix("policy."): v[i] for k, v in params.items()}
        start, goal = batch.x_train[i, 0, :4], batch.x_train[i, 0, 4:]
        rollout = reacher.rollout(
            lambda state, goal, w=weights: functional_call(policy, w, (state, goal)),
            start,
            goal,
            tasks.horizon,
        )
        if data is not None:
            data.add(rollout)
        distances.append((rollout["fingertip"] - goal).norm(dim=-1))
    return torch.stack(distances)


def _probe(tasks: ReacherGoals, n_tasks: int, seed: int):
    """Tasks and fresh policies (one per task) drawn with ``seed``."""
    return held_out_draw(tasks, n_tasks, 1, seed)


class DynamicsRefit:
    """A `MetaTrainer` callback: every ``every`` outer steps, train policies on
    ``episodes`` new goals with the current loss (through the model), run them in MuJoCo,
    add their transitions to ``data`` and refit the dynamics model in place. Records
    ``dynamics_error`` (the refit's normalized training error) and ``real_final_distance``
    (of those policies, before the refit) in the history."""

    def __init__(
        self,
        reacher: MujocoReacher,
        tasks: ReacherGoals,
        data: ReacherData,
        *,
        every: int,
        episodes: int,
        fit_steps: int,
        inner_steps: int,
        inner_lr: float,
        inner_optimizer: str,
        seed: int,
    ) -> None:
        self.reacher, self.tasks, self.data = reacher, tasks, data
        self.every, self.episodes, self.fit_steps = every, episodes, fit_steps
        self.inner = dict(steps=inner_steps, lr=inner_lr, optimizer=inner_optimizer)
        self.seed = seed

    def __call__(self, trainer: MetaTrainer, record: dict) -> None:
        if not self.every or trainer.step % self.every:
            return
        template, batch, params = _probe(self.tasks, self.episodes, self.seed + trainer.step)
        trained = train_policies(trainer.loss, self.tasks, template, batch, params, **self.inner)
        distances = run_policies(self.reacher, self.tasks, trained, batch, self.data)
        record["real_final_distance"] = float(distances[:, -1].mean())
        generator = torch.Generator().manual_seed(self.seed + trainer.step)
        record["dynamics_error"] = fit_dynamics(
            self.tasks.dynamics, *self.data.tensors(), steps=self.fit_steps, generator=generator
        )


class CollapseMonitor:
    """A `MetaTrainer` callback that detects a collapsing loss.

    At every validation step it compares, on fresh policies for ``n_tasks`` fixed probe
    tasks, the norm of the learned loss's gradient with respect to the policy to that of
    the task loss (``nn.MSELoss()``), records the ratio as ``gradient_ratio`` and warns when
    it falls below ``floor``: a loss whose gradient vanishes no longer trains policies, which
    is how ML3's public reacher failed.
    """

    def __init__(self, tasks: ReacherGoals, floor: float = 0.01, n_tasks: int = 8) -> None:
        self.tasks, self.floor = tasks, floor
        self.template, self.batch, self.params = _probe(tasks, n_tasks, seed=123)
        self.collapsed_at: int | None = None

    def ratio(self, loss: LearnedLoss) -> float:
        """The mean over probe tasks of ‖∇ learned loss‖ / ‖∇ task loss‖ at the policies'
        initialization."""
        learned, plain = learned_loss_apply(loss), plain_loss_apply(nn.MSELoss())
        loss_params = {k: v.detach() for k, v in loss.named_parameters()}
        ratios = []
        for i in range(len(self.batch)):
            params = {k: v[i].clone().requires_grad_(True) for k, v in self.params.items()}
            prediction = functional_call(self.template, params, (self.batch.x_train[i],))
            arguments = self.tasks.loss_arguments(
                prediction, self.batch.y_train[i], self.batch.x_train[i]
            )
            norms = []
            for apply, lp in ((learned, loss_params), (plain, {})):
                grads = torch.autograd.grad(
                    apply(lp, *arguments), list(params.values()), retain_graph=True
                )
                norms.append(torch.sqrt(sum((g**2).sum() for g in grads)))
            ratios.append(float(norms[0] / norms[1]))
        return sum(ratios) / len(ratios)

    def __call__(self, trainer: MetaTrainer, record: dict) -> None:
        if "meta_val" not in record:
            return
        ratio = self.ratio(trainer.loss)
        record["gradient_ratio"] = ratio
        if ratio < self.floor or not math.isfinite(ratio):
            record["collapsed"] = True
            self.collapsed_at = self.collapsed_at or trainer.step
            warnings.warn(
                f"outer step {trainer.step}: the learned loss's gradient on fresh policies is "
                f"{ratio:.3g} of the task loss's (floor {self.floor}); the loss is collapsing "
                "and policies trained with it stop learning",
                stacklevel=2,
            )


@declare_recipe
class ReacherRecipe(MetaGradientRecipe):
    """Meta-training settings for the model-based reacher.

    Defaults: a 64-64 tanh dynamics model fitted on 100 random-action episodes and refitted
    every 25 outer steps with 16 episodes of policies trained with the current loss; policies
    (8-32-2 tanh) trained 20 Adam steps at lr 0.003 through 50-step model roll-outs; a loss
    over (fingertip, goal, residual, velocity, action, time) that starts as exactly the task
    loss (MSE) and learns weights averaging 1 (the ``"weight"`` form); evolution strategies
    with 4 antithetic pairs at sigma 0.05, Adam at 0.01, 8 goals per outer step, 150 outer
    steps, keeping the last loss.
    """

    settings: MetaTrainingSettings = ESTIMATING.replace(
        inner_steps=20,
        inner_optimizer="adam",
        inner_lr=0.003,
        outer_steps=150,
        meta_batch_size=8,
        meta_lr=0.01,
        validate_every=25,
        validation_size=16,
        meta_gradient="es",
        es_pairs=4,
        keep="last",
    )
    random_episodes: int = setting(
        100, "random-action episodes the first dynamics model is fitted on", parse=positive_int
    )
    dynamics_hidden: tuple[int, ...] = setting(
        (64, 64), "the dynamics model's hidden sizes", parse=positive_int, option=False
    )
    fit_steps: int = setting(2000, "Adam steps per dynamics-model fit", parse=positive_int)
    refit_every: int = setting(
        25, "outer steps between refits of the dynamics model (0: never)", parse=non_negative_int
    )
    refit_episodes: int = setting(
        16, "policy roll-outs in MuJoCo added at each refit", parse=positive_int
    )
    horizon: int = setting(HORIZON, "steps per roll-out", parse=positive_int, option=False)
    policy_hidden: tuple[int, ...] = setting(
        (32,), "the policy network's hidden sizes", parse=positive_int, option=False
    )
    velocity_weight: float = setting(
        1e-3, "weight of the final-velocity term of the meta-objective", option=False
    )
    hidden: tuple[int, ...] = hidden_setting((16, 16))
    inputs: tuple[str, ...] = setting(
        ("input", "target", "residual", "velocity", "action", "time"),
        "per-step features the loss network reads",
        option=False,
    )
    residual_form: str = setting("weight", "how the network corrects the task loss", option=False)
    collapse_floor: float = setting(
        0.01,
        "warn that the loss is collapsing when its gradient on fresh policies falls below "
        "this fraction of the task loss's",
        parse=non_negative_float,
    )

    def initial_loss(self) -> LearnedLoss:
        with seeded(self.seed):
            return LearnedLoss(mse_start_config(self.hidden, self.inputs, self.residual_form))

    def fitted_tasks(self, reacher: MujocoReacher, seed: int) -> tuple[ReacherGoals, ReacherData]:
        """Tasks over a dynamics model fitted on ``random_episodes`` random episodes (drawn
        with ``seed``), and the data it was fitted on."""
        generator = torch.Generator().manual_seed(seed)
        data = ReacherData()
        collect_random(reacher, self.random_episodes, generator, data)
        with seeded(seed):
            dynamics = DynamicsModel(self.dynamics_hidden)
        fit_dynamics(dynamics, *data.tensors(), steps=self.fit_steps, generator=generator)
        tasks = ReacherGoals(dynamics, self.horizon, self.policy_hidden, self.velocity_weight)
        return tasks, data


def meta_train_reacher(
    recipe: ReacherRecipe, family: str = "reacher", **kwargs
) -> tuple[LearnedLoss, MetaTrainer, ReacherGoals]:
    """Meta-train a reacher loss (see the module docs); returns (loss, trainer, tasks), the
    tasks holding the final dynamics model; the recipe goes into the loss's metadata under
    ``family``. ``kwargs`` go to
    `learnedloss.families.recipe.meta_train` (``progress``, ``max_seconds``, ...); resuming is not
    supported, as the dynamics model and its data are not checkpointed."""
    reacher = MujocoReacher()
    tasks, data = recipe.fitted_tasks(reacher, recipe.seed)
    inner = dict(
        inner_steps=recipe.inner_steps,
        inner_lr=recipe.inner_lr,
        inner_optimizer=recipe.inner_optimizer,
    )
    refit = DynamicsRefit(
        reacher,
        tasks,
        data,
        every=recipe.refit_every,
        episodes=recipe.refit_episodes,
        fit_steps=recipe.fit_steps,
        seed=recipe.seed + 1000,
        **inner,
    )
    monitor = CollapseMonitor(tasks, recipe.collapse_floor)
    loss, trainer = meta_train(
        recipe, family=family, tasks=tasks, callbacks=(refit, monitor), **kwargs
    )
    loss.metadata["training"]["collapsed_at"] = monitor.collapsed_at
    return loss, trainer, tasks


@dataclass
class ReachScore:
    """How policies trained with one loss did in MuJoCo.

    Attributes:
        lr: the policy learning rate used.
        final_distance: mean distance of the fingertip to the goal after the last step.
        path_distance: mean distance over the roll-out.
    """

    lr: float
    final_distance: float
    path_distance: float


def evaluate_reacher(
    learned: dict[str, LearnedLoss],
    recipe: ReacherRecipe,
    *,
    seed: int = 0,
    n_goals: int = 32,
    tune_goals: int = 16,
    refits: int = 2,
    lrs: list[float] | None = None,
) -> dict[str, ReachScore]:
    """Each learned loss at the recipe's lr, against the task loss (``nn.MSELoss()``) at that
    lr and at its tuned lr, on ``n_goals`` held-out goals and policy initializations.

    The dynamics model is fitted for this evaluation (seed ``50000 + seed``): on random
    episodes, then ``refits`` times on roll-outs of policies trained with the task loss on
    other goals. The task loss's lr is tuned for the final distance in MuJoCo on
    ``tune_goals`` separate goals, over ``lrs`` (default: a 2× grid from 1e-4 to 0.1).
    Every loss trains the same policies for ``recipe.inner_steps`` steps.
    """
    reacher = MujocoReacher()
    tasks, data = recipe.fitted_tasks(reacher, 50000 + seed)
    task_loss = nn.MSELoss()
    train = dict(steps=recipe.inner_steps, optimizer=recipe.inner_optimizer)
    for r in range(refits):
        template, batch, params = _probe(tasks, recipe.refit_episodes, 60000 + 100 * seed + r)
        trained = train_policies(
            task_loss, tasks, template, batch, params, lr=recipe.inner_lr, **train
        )
        run_policies(reacher, tasks, trained, batch, data)
        generator = torch.Generator().manual_seed(70000 + seed)
        fit_dynamics(tasks.dynamics, *data.tensors(), steps=recipe.fit_steps, generator=generator)

    def score(loss: LossLike, lr: float, probe) -> ReachScore:
        template, batch, params = probe
        trained = train_policies(loss, tasks, template, batch, params, lr=lr, **train)
        distances = run_policies(reacher, tasks, trained, batch)
        return ReachScore(lr, float(distances[:, -1].mean()), float(distances.mean()))

    tuning = _probe(tasks, tune_goals, 80000 + seed)
    grid = lrs or lr_grid(1e-4, 0.1, per_octave=1)
    tuned_lr = min(grid, key=lambda lr: score(task_loss, lr, tuning).final_distance)
    held_out = _probe(tasks, n_goals, 90000 + seed)
    results = {name: score(loss, recipe.inner_lr, held_out) for name, loss in learned.items()}
    results[f"task loss (lr {recipe.inner_lr:g})"] = score(task_loss, recipe.inner_lr, held_out)
    results["task loss (tuned lr)"] = score(task_loss, tuned_lr, held_out)
    return results


def summarize_reaching(per_seed: list[dict[str, ReachScore]]) -> str:
    """A text table: each loss's lr (seed 0) and its final and path distance in MuJoCo,
    mean ± std over seeds."""
    header = f"{'loss':26} | {'lr (seed 0)':>11} | {'final distance':>17} | {'path distance':>17}"
    lines = [f"mean ± std over {len(per_seed)} seeds", header, "-" * len(header)]
    for name, first in per_seed[0].items():
        final = mean_and_std([s[name].final_distance for s in per_seed])
        path = mean_and_std([s[name].path_distance for s in per_seed])
        lines.append(
            f"{name:26} | {first.lr:11.3g} | {final[0]:8.4f} ± {final[1]:6.4f} | "
            f"{path[0]:8.4f} ± {path[1]:6.4f}"
        )
    return "\n".join(lines)
