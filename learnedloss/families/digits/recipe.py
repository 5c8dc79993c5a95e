"""Meta-train and evaluate classification losses on the bundled-digits tasks.

The recipe behind ``learnedloss meta-train digits``, the bundled ``digits-classification``
and ``digits-noisy-labels`` losses and docs/classification.md. A loss starts as exactly
cross-entropy (`learnedloss.starts.cross_entropy_start_config`) and is meta-trained on
5-way tasks from the meta-train image pool; it is evaluated on tasks from the meta-test
pool, against cross-entropy, the 1.5·CE control, label smoothing and the generalized
cross-entropy, each at its own learning rate tuned on separate meta-test tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnedloss.evaluation.baselines import LossLike, classification_losses
from learnedloss.evaluation.protocol import Evaluation, evaluate, lr_grid
from learnedloss.families.digits.tasks import MODELS, DigitsTasks
from learnedloss.families.recipe import Recipe, declare_recipe, hidden_setting, seeded
from learnedloss.loss import LearnedLoss
from learnedloss.meta.settings import InnerLoop, MetaTrainingSettings, Schedule, setting
from learnedloss.starts import cross_entropy_start_config
from learnedloss.validators import fraction, positive_int

META_OBJECTIVES = ("cross-entropy", "calibrated-cross-entropy", "expected-error")
TEMPERATURES = tuple(2.0 ** (k / 2) for k in range(-6, 7))
"""The logit temperatures (1/8 to 8, 2^(1/2) apart) ``calibrated-cross-entropy`` tries."""


class MetaTrainingDigits(DigitsTasks):
    """`DigitsTasks` with a choice of meta-objective, each on the clean query set.

    - ``"cross-entropy"``: the query cross-entropy. With noisy training labels a loss
      lowers it most easily by making every model less confident, which does not make the
      models right more often (docs/classification.md).
    - ``"calibrated-cross-entropy"`` (the default): the query cross-entropy at the best
      logit temperature in `TEMPERATURES`. Rescaling the logits cannot lower it, so a loss
      can only lower it by making models that rank the right class higher.
    - ``"expected-error"``: ``1 - mean p_y``, the error of sampling the model's
      prediction. It rewards confidence as much as correctness.
    """

    def __init__(self, meta_objective: str = "calibrated-cross-entropy", **kwargs) -> None:
        if meta_objective not in META_OBJECTIVES:
            raise ValueError(
                f"meta_objective must be one of {list(META_OBJECTIVES)}, got {meta_objective!r}"
            )
        super().__init__(**kwargs)
        self.meta_objective_name = meta_objective

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        if self.meta_objective_name == "cross-entropy":
            return self.objective(prediction, target)
        if self.meta_objective_name == "calibrated-cross-entropy":
            return torch.stack(
                [F.cross_entropy(prediction / t, target) for t in TEMPERATURES]
            ).min()
        probabilities = F.softmax(prediction, dim=-1)
        return 1.0 - probabilities.gather(-1, target.unsqueeze(-1)).mean()

    def describe(self) -> dict:
        return {**super().describe(), "meta_objective": self.meta_objective_name}


@declare_recipe
class DigitsRecipe(Recipe):
    """Meta-training settings for classification on the bundled digits.

    Defaults: 5-way tasks with 40 training and 20 query images per class, 40% of the training
    labels flipped, a 64-32-5 ReLU MLP trained 100 full-batch SGD steps at lr 0.2
    (cross-entropy's tuned lr at that budget), the calibrated query cross-entropy as the
    meta-objective, meta-batches of 16 tasks, a 20-20 loss network that starts as exactly
    cross-entropy. About 7 minutes on one CPU core.
    """

    settings: MetaTrainingSettings = MetaTrainingSettings(
        inner=InnerLoop(inner_steps=100, inner_lr=0.2),
        schedule=Schedule(
            outer_steps=400, meta_batch_size=16, validate_every=25, validation_size=64
        ),
    )
    label_noise: float = setting(
        0.4,
        "fraction of training labels flipped to another class (query labels stay clean)",
        parse=fraction,
    )
    n_way: int = setting(5, "classes per task", parse=positive_int)
    n_shot: int = setting(40, "training images per class", parse=positive_int)
    n_query: int = setting(20, "query images per class", parse=positive_int)
    model: str = setting("mlp", "the model each task trains", choices=MODELS)
    meta_objective: str = setting(
        "calibrated-cross-entropy",
        "how a trained model is scored on its clean query set",
        choices=META_OBJECTIVES,
    )
    hidden: tuple[int, ...] = hidden_setting((20, 20))
    inputs: tuple[str, ...] = setting(
        ("log_prob", "prob", "target"),
        "per-class features the loss network reads",
        choices=("log_prob", "prob", "target"),
    )

    def _task_settings(self) -> dict:
        names = ("n_way", "n_shot", "n_query", "label_noise", "model")
        return {name: getattr(self, name) for name in names}

    def tasks(self) -> MetaTrainingDigits:
        return MetaTrainingDigits(meta_objective=self.meta_objective, **self._task_settings())

    def test_tasks(self, **changes) -> DigitsTasks:
        """Tasks from the meta-test image pool, as meta-training's unless ``changes`` say."""
        return DigitsTasks(split="meta-test", **{**self._task_settings(), **changes})

    def initial_loss(self) -> LearnedLoss:
        with seeded(self.seed):
            return LearnedLoss(cross_entropy_start_config(self.hidden, self.inputs))


def evaluate_classification(
    loss: LossLike,
    tasks: DigitsTasks,
    *,
    name: str = "learned",
    steps: int = 100,  # DigitsRecipe.inner_steps
    n_tasks: int = 100,
    n_inits: int = 1,
    lr_range: tuple[float, float] = (0.05, 3.2),
    tune_tasks: int = 32,
    same_lr: float | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[Evaluation, Evaluation | None]:
    """Score ``loss`` against `classification_losses`, each at its lr tuned for query error.

    Learning rates are tuned over a 2^(1/2)-spaced grid on ``lr_range``. Returns the
    tuned-lr evaluation, and with ``same_lr`` one where the loss and cross-entropy share it.
    """
    baselines = classification_losses()
    losses = {"CE": baselines.pop("CE"), name: loss, **baselines}
    common = dict(steps=steps, n_tasks=n_tasks, n_inits=n_inits, seed=seed, device=device)
    tuned = evaluate(
        losses,
        tasks,
        lrs=lr_grid(*lr_range, per_octave=2),
        tune_tasks=tune_tasks,
        select_by="error",
        **common,
    )
    fixed = None
    if same_lr is not None:
        fixed = evaluate({"CE": losses["CE"], name: loss}, tasks, lr=same_lr, **common)
    return tuned, fixed
