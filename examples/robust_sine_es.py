"""Meta-train a robust regression loss with evolution strategies, and score it against Huber.

The tasks are sine regressions whose training targets are 40% outliers (uniform in
[-10, 10]); the models are scored on clean query points. Sine models train best near the
edge of stability (100 SGD steps at lr ~0.2), where the exact meta-gradient explodes, so the
meta-gradient is estimated by evolution strategies (`MetaTrainer(meta_gradient="es")`).
The loss starts as exactly Huber (δ = 1) and learns per-point weights that average 1
(`residual_form="weight"`), so it can reject outliers but cannot learn a learning-rate effect.
This is the recipe of the bundled `sine-outliers-40` loss (docs/sine.md); its 250 outer
steps take about 30 minutes on one CPU core.

    python examples/robust_sine_es.py --outer-steps 250
"""

from __future__ import annotations

import argparse

import torch

from learnedloss import EvolutionStrategies, LearnedLoss, MetaTrainer
from learnedloss.evaluation.baselines import huber
from learnedloss.evaluation.protocol import evaluate, lr_grid
from learnedloss.families.sine import SineTasks
from learnedloss.starts import huber_start_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer-steps", type=int, default=250)
    parser.add_argument("--outliers", type=float, default=0.4)
    parser.add_argument("--n-tasks", type=int, default=100, help="held-out tasks to score on")
    parser.add_argument("--tune-tasks", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    tasks = SineTasks(outlier_fraction=args.outliers)
    loss = LearnedLoss(
        huber_start_config(hidden=(16, 16), residual_form="weight"),  # exactly Huber to start
    )
    trainer = MetaTrainer(
        loss,
        tasks,
        inner_steps=100,
        inner_lr=0.2,
        meta_gradient=EvolutionStrategies(pairs=12, sigma=0.05),
        meta_batch_size=32,
        meta_lr=0.01,
        aggregate="log-mean",
        validate_every=10,
        validation_size=128,
    )
    learned = trainer.fit(steps=args.outer_steps)
    print(f"best meta-validation {trainer.best_score:.4f} at outer step {trainer.best_step}")

    scores = evaluate(
        {"Huber d=0.5": huber(0.5), "Huber d=1": huber(1.0), "learned": learned},
        tasks,
        n_tasks=args.n_tasks,
        tune_tasks=args.tune_tasks,
        lrs=lr_grid(0.01, 0.5),
    )
    print(f"held-out tasks, {args.outliers:.0%} outliers, each loss at its own tuned lr")
    print(scores.table())


if __name__ == "__main__":
    main()
