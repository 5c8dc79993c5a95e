"""Mountain car: meta-train a loss that explores, and measure whether policies reach the goal.

ML3's exploration experiment (Bechtle et al., ICPR 2021, sec. V-C) on `MountainCarTasks`:
a loss that reads the position, goal, velocity and action at every step is meta-trained with
a waypoint on the left slope in the meta-objective (*shaped*) or with the task cost alone
(*unshaped*). At test time it trains fresh policies from starts it has not seen, against
the plain task cost (``nn.MSELoss()`` on the positions) at the same and at its tuned
learning rate. See docs/mountain-car.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from learnedloss.envs.mountain_car import GOAL_POSITION
from learnedloss.evaluation.protocol import (
    EVALUATION_SEED_OFFSET,
    TUNING_SEED_OFFSET,
    LossLike,
    held_out_draw,
    lr_grid,
    per_start_table,
    pick_lr,
    train_curves,
)
from learnedloss.families.mountain_car.tasks import MountainCarTasks, reached
from learnedloss.families.recipe import (
    ESTIMATING,
    MetaGradientRecipe,
    declare_recipe,
    hidden_setting,
    seeded,
    shaped_setting,
)
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.starts import mse_start_config
from learnedloss.validators import positive_int

REFERENCE_START = -0.55
"""ML3's start position (the velocity starts at 0)."""


@declare_recipe
class MountainCarRecipe(MetaGradientRecipe):
    """Meta-training settings for the mountain car.

    The loss starts as exactly the task cost, the squared distance r = position - goal
    squared, and learns an added correction, (r + h)², where h is linear in (position,
    goal, r, velocity, action): a quadratic loss in those five inputs. Its cross terms can
    ask for actions along the velocity, the way out of the valley (the velocity reaches the
    loss as an observation, see `MountainCarTasks.loss_arguments`). Each task is a random
    start and a fresh policy, trained for ``inner_steps`` Adam steps at ``inner_lr``.

    The meta-gradient is estimated by evolution strategies (8 antithetic pairs at
    sigma 0.5, Adam at 0.1 outside, 16 tasks per outer step), not by backpropagation: the
    inner Adam steps quickly drive the policies' tanh outputs to full force, through
    which almost no gradient passes, and Adam's first step, ``lr * sign(gradient)``, has
    no derivative with respect to the loss (docs/mountain-car.md has what was tried).
    """

    settings: MetaTrainingSettings = ESTIMATING.replace(
        inner_steps=10,
        inner_optimizer="adam",
        inner_lr=0.1,
        outer_steps=200,
        meta_batch_size=16,
        meta_lr=0.1,
        validate_every=10,
        meta_gradient="es",
        es_pairs=8,
        es_sigma=0.5,
        keep="last",
    )
    shaped: bool = shaped_setting("the task cost instead of the waypoint, then the goal")
    hidden: tuple[int, ...] = hidden_setting((), allow_none=True)
    horizon: int = setting(200, "steps per roll-out", parse=positive_int, option=False)
    waypoint_steps: int = setting(
        80, "steps by which the waypoint should be reached", parse=positive_int, option=False
    )

    def tasks(self) -> MountainCarTasks:
        return MountainCarTasks(
            shaped=self.shaped, horizon=self.horizon, waypoint_steps=self.waypoint_steps
        )

    def initial_loss(self) -> LearnedLoss:
        inputs = ("input", "target", "residual", "velocity", "action")
        with seeded(self.seed):
            return LearnedLoss(mse_start_config(self.hidden, inputs, residual_form="add"))


MOUNTAIN_CAR = MountainCarRecipe()
"""The default recipe, whose inner loop the evaluation repeats by default."""


def _positions(params, prediction, target, extra) -> torch.Tensor:
    return prediction[..., 0].reshape(-1)


def drive(
    loss: LossLike,
    *,
    lr: float,
    steps: int = MOUNTAIN_CAR.inner_steps,
    n_tasks: int = 20,
    start: float | None = None,
    seed: int = EVALUATION_SEED_OFFSET,
    horizon: int = MOUNTAIN_CAR.horizon,
    optimizer: str = MOUNTAIN_CAR.inner_optimizer,
) -> torch.Tensor:
    """Train fresh policies with ``loss`` (``steps`` steps of ``optimizer`` at ``lr``) from
    ``n_tasks`` starts (all at ``start``, or drawn from gymnasium's reset range), then roll
    them out.

    The same ``seed`` gives every loss the same starts and policy initializations. Returns
    the positions of the trained policies' roll-outs, ``(n_tasks, horizon)``; a run that
    diverged gives NaN.
    """
    tasks = MountainCarTasks(start=start, horizon=horizon)
    template, batch, params = held_out_draw(tasks, n_tasks, 1, seed)
    curves = train_curves(
        loss,
        tasks,
        template,
        batch,
        params,
        lr,
        steps,
        optimizer=optimizer,
        every=steps,
        objective=_positions,
    )
    return curves[-1]


@dataclass
class DriveScore:
    """How one loss did from one kind of start.

    Attributes:
        lr: the policy learning rate used.
        success: fraction of runs that reached the goal (a diverged run did not).
        cost: mean task cost (squared distance of the position to the goal) of the trained
            policies' roll-outs that did not diverge (NaN if all did).
        leftmost, rightmost: mean over those runs of the extreme positions reached.
        diverged: fraction of runs whose training diverged (NaN positions).
    """

    lr: float
    success: float
    cost: float
    leftmost: float
    rightmost: float
    diverged: float = 0.0

    @classmethod
    def of(cls, positions: torch.Tensor, lr: float) -> DriveScore:
        finite = positions.isfinite().all(dim=-1)
        kept = positions[finite]
        return cls(
            lr,
            float(reached(positions).double().mean()),
            float(((kept - GOAL_POSITION) ** 2).mean()),
            float(kept.min(dim=-1).values.mean()) if len(kept) else float("nan"),
            float(kept.max(dim=-1).values.mean()) if len(kept) else float("nan"),
            float((~finite).double().mean()),
        )


DEFAULT_LR_RANGES = {"adam": (1e-3, 10.0), "sgd": (1e-2, 100.0)}
"""The lr range `tune_lr` searches by default for each policy optimizer."""


def tune_lr(
    loss: LossLike,
    lrs=None,
    *,
    steps: int = MOUNTAIN_CAR.inner_steps,
    n_tasks: int = 20,
    optimizer: str = MOUNTAIN_CAR.inner_optimizer,
) -> float:
    """The lr with the most successes (then the fewest diverged runs, then the lowest task
    cost) on tuning starts and policies drawn apart from the held-out ones; by default over
    a 2× grid across ``DEFAULT_LR_RANGES[optimizer]``."""

    def key(lr: float) -> tuple[float, float, float]:
        positions = drive(
            loss, lr=lr, steps=steps, n_tasks=n_tasks, seed=TUNING_SEED_OFFSET, optimizer=optimizer
        )
        score = DriveScore.of(positions, lr)
        cost = score.cost if math.isfinite(score.cost) else math.inf
        return -score.success, score.diverged, cost

    return pick_lr(lrs or lr_grid(*DEFAULT_LR_RANGES[optimizer], per_octave=1), key)


def compare_driving(
    learned: dict[str, LearnedLoss],
    *,
    lr: float = MOUNTAIN_CAR.inner_lr,
    steps: int = MOUNTAIN_CAR.inner_steps,
    n_random: int = 20,
    seed: int = EVALUATION_SEED_OFFSET,
    optimizer: str = MOUNTAIN_CAR.inner_optimizer,
) -> tuple[dict[str, dict[str, DriveScore]], dict[str, torch.Tensor]]:
    """Each learned loss at ``lr`` against the task cost (``nn.MSELoss()`` on the positions)
    at ``lr`` and at its tuned lr, from the reference start (-0.55, 0) and from ``n_random``
    random starts, every policy trained ``steps`` steps of ``optimizer``. Each start gets
    several policy initializations. The defaults are the recipe's inner loop.

    Returns ``({start: {loss name: DriveScore}}, {loss name: positions from the reference
    start})`` with starts ``"reference"`` and ``"random"``.
    """
    task_cost = nn.MSELoss()
    tuned = tune_lr(task_cost, steps=steps, n_tasks=n_random, optimizer=optimizer)
    losses = [(name, loss, lr) for name, loss in learned.items()]
    losses += [
        (f"task cost (lr {lr:g})", task_cost, lr),
        ("task cost (tuned lr)", task_cost, tuned),
    ]
    results: dict[str, dict[str, DriveScore]] = {"reference": {}, "random": {}}
    trajectories = {}
    for name, loss, loss_lr in losses:
        common = dict(lr=loss_lr, steps=steps, n_tasks=n_random, seed=seed, optimizer=optimizer)
        positions = drive(loss, start=REFERENCE_START, **common)
        trajectories[name] = positions
        results["reference"][name] = DriveScore.of(positions, loss_lr)
        results["random"][name] = DriveScore.of(drive(loss, **common), loss_lr)
    return results, trajectories


def driving_table(results: dict[str, dict[str, DriveScore]]) -> str:
    """A text table of `compare_driving`'s results."""
    header = (
        f"{'start':9} | {'loss':22} | {'lr':>6} | reached goal | task cost | leftmost | "
        "rightmost | diverged"
    )
    return per_start_table(
        header,
        results,
        lambda start, name, s: (
            f"{start:9} | {name:22} | {s.lr:6.3g} | {s.success:12.0%} | {s.cost:9.3f} | "
            f"{s.leftmost:8.3f} | {s.rightmost:9.3f} | {s.diverged:8.0%}"
        ),
    )
