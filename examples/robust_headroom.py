"""How much room is there above Huber on corrupted sine targets?

Compares, each at its own tuned lr (geometric mean over 100 held-out tasks x 3 inits):

- the best standard robust losses on tasks with a fraction of outlier targets;
- an *oracle*: MSE trained on the clean points only (tasks with that many fewer points and
  no outliers), i.e. perfect outlier rejection; no loss that only reads (prediction, target)
  can beat it except by an optimization effect, and on clean sine there is none (docs/sine.md);
- "gated Huber": Huber that ignores targets with |y| > 5, which no clean target of this
  distribution reaches (amplitude <= 5): a rule a loss reading the target could learn;
- optionally a learned loss (``--learned sine-outliers-40``, a directory or a Hub id).

    python examples/robust_headroom.py --outliers 0.2 0.4 --learned sine-outliers-40
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from learnedloss import LearnedLoss
from learnedloss.evaluation.baselines import huber
from learnedloss.evaluation.protocol import evaluate, lr_grid
from learnedloss.families.sine import SineTasks


def gated_huber(delta: float, cut: float = 5.0):
    """Huber(δ) on points whose target lies within ±cut; zero elsewhere."""

    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        keep = (target.abs() <= cut).to(prediction.dtype)
        return (keep * F.huber_loss(prediction, target, delta=delta, reduction="none")).mean()

    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outliers", type=float, nargs="+", default=[0.2, 0.4])
    parser.add_argument("--n-tasks", type=int, default=100)
    parser.add_argument("--tune-tasks", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--learned", help="also score this learned loss (name, path or Hub id)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    common = dict(
        n_tasks=args.n_tasks,
        n_inits=3,
        steps=args.steps,
        lrs=lr_grid(1e-3, 1.0),
        tune_tasks=args.tune_tasks,
    )
    for fraction in args.outliers:
        clean_points = round(100 * (1 - fraction))
        oracle = evaluate({"MSE": torch.nn.MSELoss()}, SineTasks(n_train=clean_points), **common)
        losses = {f"Huber d={d:g}": huber(d) for d in (0.25, 0.5, 1.0, 2.0)}
        losses["L1"] = torch.nn.L1Loss()
        losses["gated Huber d=0.5"] = gated_huber(0.5)
        if args.learned:
            losses[f"learned ({args.learned})"] = LearnedLoss.from_pretrained(args.learned)
        corrupted = evaluate(losses, SineTasks(outlier_fraction=fraction), **common)
        print(f"\n{fraction:.0%} outliers; oracle = MSE on the {clean_points} clean points only")
        print(
            f"{'oracle':28s} | lr {oracle.scores['MSE'].lr:7.3g} | {oracle.scores['MSE'].score:.4f}"
        )
        for name, score in corrupted.scores.items():
            print(f"{name:28s} | lr {score.lr:7.3g} | {score.score:.4f}")


if __name__ == "__main__":
    main()
