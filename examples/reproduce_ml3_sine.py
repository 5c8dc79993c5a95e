"""Reproduce ML3's sine-regression result with its reference protocol, then re-score it.

The reference set-up (Bechtle et al., ICPR 2021; numbers from running its public code on
the development machine): meta-train ML3's loss network (2-50-50-1 ReLU, Softplus output, no
bias) on one sine task (amplitude 1, phase π, x in [-2, 2], 100 points) with 1 inner SGD
step at lr 1e-3, scored on the inner-loop points, Adam 1e-3 outside, 500 outer steps. Then
train fresh 1-100-10-1 ReLU MLPs for 100 SGD steps at lr 1e-3 on 10 tasks with amplitude in
[0.2, 5], phase in [-π, π] and x in [-5, 5], with the learned loss and with MSE. Over 5
seeds the reference reported test MSE 2.23 ± 0.51 (learned) against 3.59 ± 0.85 (MSE).

The second table re-scores the same losses with the measuring stick of docs/evaluation.md
(each loss at its own tuned lr, geometric mean over 100 tasks x 3 inits).

    python examples/reproduce_ml3_sine.py [--seeds 5] [--rescore]
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from torch import nn

from learnedloss.evaluation.baselines import standard_losses
from learnedloss.evaluation.protocol import evaluate, lr_grid
from learnedloss.families.recipe import meta_train
from learnedloss.families.sine import SineTasks
from learnedloss.families.sine.recipe import SineRecipe

REFERENCE = {"learned": (2.23, 0.51), "MSE": (3.59, 0.85)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rescore", action="store_true", help="also run the tuned-lr stick")
    args = parser.parse_args()
    torch.set_num_threads(1)
    test_tasks = SineTasks()  # amplitude [0.2, 5], phase [-π, π], x in [-5, 5]
    means: dict[str, list[float]] = {"learned": [], "MSE": []}
    losses = []
    for seed in range(args.seeds):
        recipe = SineRecipe(
            outlier_fraction=0.0,
            amplitude=(1.0, 1.0),
            phase=(math.pi, math.pi),
            x_range=(-2.0, 2.0),
            start="ml3",
            inputs=("input", "target"),
            outer_steps=500,
            inner_steps=1,
            inner_lr=1e-3,
            meta_batch_size=1,
            meta_lr=1e-3,
            score_on="train",
            aggregate="mean",
            validate_every=0,
            seed=seed,
        )
        loss, _ = meta_train(recipe, progress=False)
        losses.append(loss)
        result = evaluate(
            {"MSE": nn.MSELoss(), "learned": loss},
            test_tasks,
            lr=1e-3,
            steps=100,
            n_tasks=10,
            n_inits=1,
            seed=seed,
        )
        for name in means:
            means[name].append(float(result.scores[name].finals.mean()))
        print(
            f"seed {seed}: test MSE learned {means['learned'][-1]:.3f}, MSE {means['MSE'][-1]:.3f}"
        )
    print(f"\n{'loss':8s} | ours (mean ± std over {args.seeds} seeds) | reference")
    for name, values in means.items():
        ref = REFERENCE[name]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{name:8s} | {statistics.mean(values):.2f} ± {spread:.2f}"
            f"{'':19s} | {ref[0]:.2f} ± {ref[1]:.2f}"
        )
    ours = statistics.mean(means["learned"]) / statistics.mean(means["MSE"])
    print(
        f"ratio learned / MSE at lr 1e-3: ours {ours:.2f}, reference "
        f"{REFERENCE['learned'][0] / REFERENCE['MSE'][0]:.2f}"
    )

    if args.rescore:
        print(
            "\nthe same seed-0 loss, each loss at its own tuned lr (geometric mean, "
            "100 tasks x 3 inits):"
        )
        rescored = evaluate(
            {"MSE": nn.MSELoss(), "learned": losses[0], **standard_losses()},
            test_tasks,
            steps=100,
            lrs=lr_grid(1e-4, 0.5),
        )
        print(rescored.table())


if __name__ == "__main__":
    main()
