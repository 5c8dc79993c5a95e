"""``learnedloss demo``: what a pretrained loss does on real data it never saw, in minutes.

The bundled ``robust-regression`` loss goes where ``nn.MSELoss()`` stood, on scikit-learn's
diabetes data (a table no loss of this library was meta-trained on), with a fifth of the
training targets replaced by outliers. Fresh MLPs are trained with it and with the losses a
user would pick instead, each at its own learning rate tuned on separate tasks, under SGD and
under Adam: the *tuned* baselines (Huber's δ and Cauchy's c tuned with the lr, best picked in
hindsight) and the *defaults* (``nn.HuberLoss()``, Cauchy at c = 1), next to MSE, L1 and
Barron's adaptive robust loss, which are in both groups. 1.5 × tuned Huber is the control
whose distance from tuned Huber shows the noise of the tuning. The table gives each loss's
test MSE on clean targets and its ratio to the best tuned and the best default baseline; the
plot, the curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from learnedloss.evaluation.baselines import (
    robust_regression_baselines,
    robust_regression_defaults,
)
from learnedloss.evaluation.protocol import Evaluation, evaluate, lr_grid
from learnedloss.families.robust_regression.transfer import BASELINES, LR_RANGES, held_out_tasks
from learnedloss.loss import LearnedLoss

LOSS = "robust-regression"
TABLE = "diabetes"
OUTLIERS = 0.2
DEFAULTS = ("MSE", "L1", "Huber d=1", "Cauchy c=1", "Adaptive robust")
"""The default baselines the demo trains: published settings, each at its own tuned lr
(Barron's loss trains its α and scale with each model, as published)."""


def demo_losses(learned: LearnedLoss) -> dict:
    """The tuned baselines, the defaults not already among them, and the learned loss."""
    defaults = robust_regression_defaults()
    return {
        **robust_regression_baselines(),
        **{name: defaults[name] for name in DEFAULTS if name in defaults},
        LOSS: learned,
    }


def ratio_table(evaluation: Evaluation) -> str:
    """Each loss's score and its ratio to the best tuned (`BASELINES`) and the best default
    (`DEFAULTS`) baseline."""
    tuned = min(evaluation.scores[name].score for name in BASELINES)
    default = min(evaluation.scores[name].score for name in DEFAULTS)
    lines = [f"{'loss':30s} | {'lr':>7} | {'test MSE':>9} | {'/ best tuned':>12} | / best default"]
    for name, score in evaluation.scores.items():
        label = f"{name} [{score.variant}]" if score.variant else name
        lines.append(
            f"{label:30s} | {score.lr:7.3g} | {score.score:9.4f} | {score.score / tuned:12.3f} | "
            f"{score.score / default:14.3f}"
        )
    return "\n".join(lines)


def diabetes_demo(args: argparse.Namespace) -> int:
    """Evaluate the bundled loss on the held-out table with SGD and Adam; print the tables,
    write ``demo-sgd.png``, ``demo-adam.png`` and ``results.json`` into ``args.out``."""
    from learnedloss.evaluation.plots import plot

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    learned = LearnedLoss.from_pretrained(LOSS)
    tasks = held_out_tasks(TABLE, OUTLIERS)
    print(
        f"{LOSS} (never meta-trained on this table) in place of nn.MSELoss on "
        f"scikit-learn's {TABLE} data, {OUTLIERS:.0%} of the training targets outliers. "
        f"Fresh MLPs trained {args.steps} steps on {args.n_tasks} tasks x 2 inits, each loss "
        "at its own lr tuned on 6 other tasks; test MSE on clean targets."
    )
    results = {}
    for optimizer in ("sgd", "adam"):
        print(f"\n{optimizer}: tuning and training ...", flush=True)
        evaluation = evaluate(
            demo_losses(learned),
            tasks,
            steps=args.steps,
            n_tasks=args.n_tasks,
            n_inits=2,
            optimizer=optimizer,
            lrs=lr_grid(*LR_RANGES[optimizer], per_octave=1),
            tune_tasks=6,
            every=max(1, args.steps // 30),
            path="engine",
        )
        print(ratio_table(evaluation))
        png = plot(
            evaluation,
            out / f"demo-{optimizer}.png",
            names=["MSE", "Huber d=1", "Huber (tuned d)", "Cauchy (tuned c)", "L1", LOSS],
            title=f"{TABLE}, {OUTLIERS:.0%} outlier targets, {optimizer}: held-out test MSE",
        )
        print(f"wrote {png}")
        results[optimizer] = evaluation.to_dict()
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(
        "\nA ratio below 1 beats the best tuned (or default) baseline; the control row shows how "
        "far lr tuning alone moves a loss (docs/robust-regression.md has more tables and seeds)."
    )
    return 0
