"""The shaped-sine family (see `learnedloss.families.registry`).

- ``learnedloss meta-train shaped-sine [--unshaped] ...``: meta-train a frequency-recovery loss
  in two stages (`meta_train_frequency`).
- ``learnedloss evaluate shaped-sine LOSS [LOSS ...]``: recovery table against MSE, and the
  loss-landscape plot.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import torch

from learnedloss.evaluation.protocol import EVALUATION_SEED_OFFSET
from learnedloss.families.evaluating import add_plot_argument, echo, over_seeds
from learnedloss.families.parts import FamilyParts
from learnedloss.families.shaped_sine.recipe import (
    ShapedSineRecipe,
    compare_recovery,
    landscape,
    meta_train_frequency,
    recovery_table,
)
from learnedloss.loss import LearnedLoss
from learnedloss.validators import positive_float, positive_int


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``learnedloss evaluate shaped-sine``."""
    add = parser.add_argument
    add(
        "--lr",
        type=positive_float,
        default=1.0,
        help="inner lr for the learned losses (default: %(default)s)",
    )
    add(
        "--n-tasks",
        type=positive_int,
        default=50,
        help="held-out tasks per seed (default: %(default)s)",
    )
    add(
        "--landscape-omega",
        type=float,
        default=2.0,
        help="target ω* of the landscape plot (default: %(default)s)",
    )
    add_plot_argument(parser, "write the loss landscapes to this PNG")


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Frequency recovery of ``losses`` against MSE for each seed (`compare_recovery`), and
    the landscapes with ``--plot``; prints the tables, returns one result dict per seed."""
    results = []
    for seed in over_seeds(args):
        result = compare_recovery(
            losses, lr=args.lr, n_tasks=args.n_tasks, seed=EVALUATION_SEED_OFFSET + seed
        )
        echo(f"seed {seed}: |w - w*| after 10 SGD steps on {args.n_tasks} held-out tasks")
        echo(recovery_table(result))
        results.append({s: {n: asdict(r) for n, r in rows.items()} for s, rows in result.items()})
    if args.seeds > 1:
        echo(summarize_recovery(results))
    if args.plot:
        from learnedloss.families.shaped_sine.plots import plot_landscapes

        omegas = torch.linspace(-7, 7, 561)
        curves = {
            name: landscape(loss, args.landscape_omega, omegas) for name, loss in losses.items()
        }
        curves["MSE"] = landscape(torch.nn.MSELoss(), args.landscape_omega, omegas)
        echo(f"wrote {plot_landscapes(curves, omegas, args.landscape_omega, args.plot)}")
    return results


def summarize_recovery(results: list[dict]) -> str:
    """Mean ± std over seeds of each loss's fraction recovered and mean error."""
    lines = [
        f"{'start':7} | {'loss':24} | mean ± std over {len(results)} seeds: "
        "within 0.1 | mean |w - w*|"
    ]
    for start, rows in results[0].items():
        for name in rows:
            within = torch.tensor([r[start][name]["within"] for r in results])
            error = torch.tensor([r[start][name]["mean_error"] for r in results])
            lines.append(
                f"{start:7} | {name:24} | {float(within.mean()):4.0%} ± {float(within.std()):3.0%}"
                f" | {float(error.mean()):.3f} ± {float(error.std()):.3f}"
            )
    return "\n".join(lines)


PARTS = FamilyParts(
    ShapedSineRecipe, add_evaluate_arguments, evaluate, meta_train=meta_train_frequency
)
