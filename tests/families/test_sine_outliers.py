"""The bundled `robust-regression` and `robust-regression-20` losses do what their cards say."""

from __future__ import annotations

import torch
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.evaluation.protocol import evaluate
from learnedloss.families.sine import SineTasks


def relative_weights(loss: LearnedLoss, target: torch.Tensor, residual: torch.Tensor):
    """Each point's weight relative to the first point's, from a loss with reduction="none",
    which is weight × Huber(residual) per point, the weights normalized over the call."""
    values = loss(target + residual, target)
    weights = values / nn.functional.huber_loss(target + residual, target, reduction="none")
    return weights / weights[0]


def score_ratio_to_mse(name: str, outliers: float, learned_lr: float, mse_lr: float) -> float:
    """Geometric-mean query MSE of the bundled loss ``name`` over MSE's, each at the given
    lr, on 48 fresh tasks with ``outliers`` of the training targets replaced; no run of the
    learned loss may diverge."""
    torch.set_num_threads(1)
    tasks = SineTasks(outlier_fraction=outliers)
    common = dict(n_tasks=48, n_inits=1, seed=7)
    loss = LearnedLoss.from_pretrained(name)
    learned = evaluate({"learned": loss}, tasks, lr=learned_lr, **common).scores["learned"]
    mse = evaluate({"MSE": nn.MSELoss()}, tasks, lr=mse_lr, **common).scores["MSE"]
    assert learned.diverged == 0
    return learned.score / mse.score


def test_bundled_robust_regression_rejects_what_clean_targets_never_reach():
    """Clean sine targets lie within the amplitude bound ±5; 40% of the training targets
    it was meta-trained on were uniform in [-10, 10]. The card says it learned to give
    targets far outside ±5, and large residuals, a small weight."""
    loss = LearnedLoss.from_pretrained("sine-outliers-40", reduction="none")
    assert loss.config.residual_form == "weight" and loss.config.output_activation == "huber"
    assert loss.metadata["training"]["meta_gradient"] == "es"
    for residual in (-1.0, -0.3, 0.3, 1.0):
        weights = relative_weights(loss, torch.tensor([0.0, 9.0, -9.0]), torch.full((3,), residual))
        assert float(weights[1:].max()) < 0.5, (residual, weights)
    weights = relative_weights(loss, torch.zeros(4), torch.tensor([0.3, -0.3, 6.0, -6.0]))
    assert float(weights[2:].max()) < 0.75 * float(weights[:2].min()), weights


def test_bundled_robust_regression_trains_through_outliers_where_mse_cannot():
    """At each loss's tuned lr from the card (learned 0.215, MSE 0.019), on fresh tasks
    with 40% outlier targets, the learned loss's models fit the clean curve far better."""
    assert score_ratio_to_mse("sine-outliers-40", 0.4, learned_lr=0.215, mse_lr=0.019) < 0.6


def test_bundled_robust_regression_20_down_weights_far_targets_and_beats_mse():
    """The 20%-outlier loss: its card says it learned per-point weights and, at the lrs
    tuned for it and for MSE (0.152, 0.0226 at evaluation seed 0), fits through 20% outlier
    targets far better than MSE. Its claim against tuned Huber (a few percent, over ten
    evaluation seeds of 300 models) is beyond what a quick test can resolve: on 48 tasks
    the order flips from one task set to the next (docs/sine.md)."""
    per_point = LearnedLoss.from_pretrained("robust-regression-20", reduction="none")
    assert per_point.config.residual_form == "weight"
    for residual in (-1.0, 1.0):
        weights = relative_weights(
            per_point, torch.tensor([0.0, 9.0, -9.0]), torch.full((3,), residual)
        )
        assert float(weights[1:].max()) < 0.6, (residual, weights)
    assert score_ratio_to_mse("robust-regression-20", 0.2, learned_lr=0.152, mse_lr=0.0226) < 0.65
