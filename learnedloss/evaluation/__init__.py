"""Honest comparison of losses: each at its own tuned learning rate, over held-out tasks and
seeds, with rescaled baselines as controls and early-stopped scores next to the last step's
(`protocol`); the baselines users would pick (`baselines`, some `Tuned` over a grid of
variants, some trained with each model through a `JointInnerLoop`); every run of a stage
stacked on the batched engine (`batched`, ``evaluate(..., path="engine")``); reports and
plots."""

from learnedloss.evaluation.baselines import Tuned
from learnedloss.evaluation.batched import trained_with_model
from learnedloss.evaluation.protocol import (
    EVALUATION_PATHS,
    EVALUATION_SEED_OFFSET,
    TUNING_SEED_OFFSET,
    VALIDATION_SEED_OFFSET,
    Evaluation,
    JointInnerLoop,
    LossScore,
    evaluate,
    geometric_mean,
    held_out_draw,
    inner_loop_for,
    lr_grid,
    mean_and_std,
    per_start_table,
    pick_lr,
    train_curves,
    with_metrics,
    with_validation,
)

__all__ = [
    "EVALUATION_PATHS",
    "EVALUATION_SEED_OFFSET",
    "TUNING_SEED_OFFSET",
    "VALIDATION_SEED_OFFSET",
    "Evaluation",
    "JointInnerLoop",
    "LossScore",
    "Tuned",
    "evaluate",
    "geometric_mean",
    "held_out_draw",
    "inner_loop_for",
    "lr_grid",
    "mean_and_std",
    "per_start_table",
    "pick_lr",
    "train_curves",
    "trained_with_model",
    "with_metrics",
    "with_validation",
]
