"""Meta-train and evaluate policy-gradient losses: model-free RL on point-mass goals and on
gymnasium's cart-pole.

The recipe behind ``learnedloss meta-train policy-gradient``, the bundled
``policy-gradient`` loss and docs/policy-gradient.md. A ``policy_gradient`` loss starts as
exactly REINFORCE with a baseline, ``-log_prob * advantage``, and learns a per-step
correction of the advantage (the ``"baseline"`` residual form) from the advantage, the
reward-to-go and the time step. Inner loop: a fresh policy per task
(`PointMassGoals` or `CartPoleTasks`), ``inner_steps``
SGD updates, each on a batch of its own episodes. Meta-objective: the trained policy's cost
on fresh episodes. The meta-gradient is estimated by evolution strategies by default: it needs the
cost only, so nothing about the sampling of the inner loop's episodes is approximated.

Evaluation: held-out goals and policies, the learned loss against REINFORCE with a baseline,
its 1.5× control and REINFORCE without a baseline, each at its own learning rate tuned on
separate tasks.
"""

from __future__ import annotations

from learnedloss.evaluation.baselines import LossLike, policy_gradient_losses
from learnedloss.evaluation.protocol import Evaluation, evaluate, lr_grid
from learnedloss.families.policy_gradient.cart_pole import CartPoleTasks
from learnedloss.families.policy_gradient.point_mass import PointMassGoals
from learnedloss.families.recipe import (
    ESTIMATING,
    MetaGradientRecipe,
    declare_recipe,
    hidden_setting,
    seeded,
)
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import MetaTrainingSettings, setting
from learnedloss.starts import reinforce_start_config
from learnedloss.validators import positive_float, positive_int

REFERENCE = "REINFORCE + baseline"
"""The baseline ratios are taken against."""

ENVS = ("point-mass", "cart-pole")
"""The task families a recipe can use: `PointMassGoals` and `CartPoleTasks`."""


@declare_recipe
class PolicyGradientRecipe(MetaGradientRecipe):
    """Meta-training settings for policy-gradient losses on point-mass goals
    (``env="point-mass"``) or cart-poles (``env="cart-pole"``).

    Defaults: 10 SGD updates at lr 0.4 (REINFORCE with a baseline's tuned lr at that
    budget on both), 16 episodes per update of 20 steps (point mass) or at most 100
    (cart-pole, ``horizon=None`` picks), a (32,) tanh policy (Gaussian with std 0.05 for the
    point mass, categorical for the cart-pole); evolution strategies with 8 antithetic
    pairs at sigma 0.05, Adam at 0.01, 16 tasks per outer step, 300 outer steps, keeping
    the last loss. About 7 minutes on one CPU core for the point mass.
    """

    settings: MetaTrainingSettings = ESTIMATING.replace(
        inner_steps=10,
        inner_lr=0.4,
        outer_steps=300,
        meta_batch_size=16,
        meta_lr=0.01,
        validate_every=20,
        meta_gradient="es",
        es_pairs=8,
        keep="last",
    )
    env: str = setting("point-mass", "the task family", choices=ENVS)
    episodes: int = setting(16, "episodes per policy update", parse=positive_int)
    query_episodes: int = setting(
        32, "fresh episodes that score a trained policy", parse=positive_int
    )
    horizon: int | None = setting(
        None,
        "steps per episode (None: 20 for the point mass, at most 100 for the cart-pole)",
        parse=positive_int,
    )
    policy_hidden: tuple[int, ...] = setting(
        (32,), "the policy network's hidden sizes", parse=positive_int
    )
    policy_std: float = setting(
        0.05, "the point-mass policy's exploration noise", parse=positive_float
    )
    hidden: tuple[int, ...] = hidden_setting((16, 16))
    inputs: tuple[str, ...] = setting(
        ("advantage", "reward_to_go", "time"),
        "per-step features the loss network reads: log_prob, advantage, and the side inputs "
        "reward_to_go and time",
    )

    def tasks(self) -> PointMassGoals | CartPoleTasks:
        common = dict(episodes=self.episodes, query_episodes=self.query_episodes)
        if self.env == "cart-pole":
            return CartPoleTasks(**common, horizon=self.horizon or 100, hidden=self.policy_hidden)
        if self.env != "point-mass":
            raise ValueError(f"env must be one of {list(ENVS)}, got {self.env!r}")
        return PointMassGoals(
            **common, horizon=self.horizon or 20, hidden=self.policy_hidden, std=self.policy_std
        )

    def initial_loss(self) -> LearnedLoss:
        with seeded(self.seed):
            return LearnedLoss(reinforce_start_config(self.hidden, self.inputs))


def evaluate_policy_gradient(
    loss: LossLike,
    tasks: PointMassGoals | CartPoleTasks,
    *,
    name: str = "learned",
    steps: int = 10,  # PolicyGradientRecipe.inner_steps
    n_tasks: int = 100,
    n_inits: int = 2,
    lr_range: tuple[float, float] = (1e-3, 2.0),
    tune_tasks: int = 32,
    same_lr: float | None = None,
    seed: int = 0,
    every: int = 1,
    device: str = "cpu",
) -> tuple[Evaluation, Evaluation | None]:
    """Score ``loss`` against `policy_gradient_losses`, each at its own tuned lr.

    Held-out tasks and policy initializations; the score is the geometric mean over runs of
    the trained policy's cost (`PointMassGoals.objective` or `CartPoleTasks.objective`, on
    fresh episodes), and ratios are taken against REINFORCE with a baseline. Learning rates
    are tuned over a 2^(1/4)-spaced grid on ``lr_range``. Returns the tuned-lr evaluation, and with
    ``same_lr`` one where the loss and REINFORCE with a baseline share it.
    """
    baselines = policy_gradient_losses()
    losses = {REFERENCE: baselines.pop(REFERENCE), name: loss, **baselines}
    common = dict(
        steps=steps, n_tasks=n_tasks, n_inits=n_inits, seed=seed, every=every, device=device
    )
    tuned = evaluate(losses, tasks, lrs=lr_grid(*lr_range), tune_tasks=tune_tasks, **common)
    fixed = None
    if same_lr is not None:
        fixed = evaluate({REFERENCE: losses[REFERENCE], name: loss}, tasks, lr=same_lr, **common)
    return tuned, fixed
