"""Transfer evaluation of regression losses on held-out real tables (docs/robust-regression.md).

    python -m learnedloss.families.robust_regression.transfer robust-regression \
        --tables diabetes star98 --outliers 0.2 --optimizers sgd adam --seeds 2 --json out.json

For every held-out table, optimizer and evaluation seed: tasks draw rows of the table (inputs
standardized, targets robustly standardized on the whole clean table, so that the baselines'
δ grid and Barron's starting scale are in sensible units; the learned losses are scale-free
and would not care), corrupt that fraction of the training targets, and train fresh MLPs with
each loss at its own learning rate tuned on separate tasks of the same table
(`learnedloss.evaluate`). Baselines (`robust_regression_baselines`): MSE, L1, Huber with δ
and Cauchy with c tuned with the lr, Barron's adaptive robust loss (α and scale trained with
each model), and the control 1.5 × tuned Huber. The table reports each loss's geometric-mean
query MSE over seeds and its ratio to the best tuned baseline of each seed (MSE, L1, Huber,
Cauchy, Barron; picked in hindsight), mean ± std over seeds. `benchmarks/adaptive_losses.py`
adds the published defaults and more conditions (target units, architectures, corruption).
"""

from __future__ import annotations

import argparse
import math

import torch

from learnedloss.evaluation.baselines import robust_regression_baselines
from learnedloss.evaluation.protocol import mean_and_std
from learnedloss.families.robust_regression.tasks import HELD_OUT_TABLES, RobustRegressionTasks
from learnedloss.families.transfer_common import (
    add_transfer_main_arguments,
    run_transfer_main,
    score_over_seeds,
    shared_transfer_options,
    summary_table,
    transfer_parser,
)
from learnedloss.loss import LearnedLoss

BASELINES = ("MSE", "L1", "Huber (tuned d)", "Cauchy (tuned c)", "Adaptive robust")
"""The rows the best tuned baseline is picked from (the control is not a baseline)."""

LR_RANGES = {"sgd": (1e-3, 0.5), "adam": (1e-4, 0.25)}


def lr_range(optimizer: str, target_scale: float = 1.0) -> tuple[float, float]:
    """The lr range tuned over for ``optimizer`` (`LR_RANGES`), widened for targets in other
    units by ``target_scale`` in both directions. A loss whose gradient does not grow with the
    residual (L1, Huber beyond δ) needs an lr in proportion to the targets' scale to reach
    them in as many steps; a loss whose gradient grows with it (MSE, and every scale-free
    learned loss, whose value scales as the square of the units) needs an lr in inverse
    proportion. The range covers both."""
    low, high = LR_RANGES[optimizer]
    spread = max(target_scale, 1.0 / target_scale)
    return low / spread, high * spread


def held_out_tasks(
    table: str,
    outliers: float,
    corruption: str = "uniform",
    width: int = 64,
    depth: int = 2,
    activation: str = "relu",
    n_train: int = 192,
    n_query: int = 96,
    target_scale: float = 1.0,
) -> RobustRegressionTasks:
    """Tasks of one held-out table at a fixed outlier fraction, offset 0, and targets (and
    their outliers) in units of ``target_scale`` × their robust spread: 1 is robustly
    standardized, 0.01 and 100 stand for raw units far from it."""
    return RobustRegressionTasks(
        sources=(table,),
        n_train=n_train,
        n_query=n_query,
        outlier_fraction=(outliers, outliers),
        corruptions=(corruption,),
        target_scale=(target_scale, target_scale),
        target_offset=(0.0, 0.0),
        widths=(width,),
        depth=depth,
        activation=activation,
    )


def transfer(
    losses: dict[str, torch.nn.Module],
    tables=HELD_OUT_TABLES[:2],
    outliers: float = 0.2,
    optimizers=("sgd", "adam"),
    seeds: int = 2,
    steps: int = 150,
    n_tasks: int = 8,
    n_inits: int = 2,
    tune_tasks: int = 6,
    deltas=(0.25, 0.5, 1.0, 2.0),
    per_octave: int = 1,
    **task_options,
) -> list[dict]:
    """Run the evaluation; one result per (table, optimizer) with per-seed scores. With a
    ``target_scale`` among ``task_options``, the baselines' grids and the lr range follow
    the targets' units (`robust_regression_baselines`, `lr_range`)."""
    results = []
    units = task_options.get("target_scale", 1.0)
    for table in tables:
        tasks = held_out_tasks(table, outliers, **task_options)
        for optimizer in optimizers:
            per_seed, protocol = score_over_seeds(
                lambda: {**robust_regression_baselines(deltas, units=units), **losses},
                tasks,
                optimizer=optimizer,
                lr_range=lr_range(optimizer, units),
                seeds=seeds,
                heading=f"{table}, {outliers:.0%} outliers, {optimizer}",
                record=lambda s: {"score": s.score, "lr": s.lr, "variant": s.variant},
                per_octave=per_octave,
                steps=steps,
                n_tasks=n_tasks,
                n_inits=n_inits,
                tune_tasks=tune_tasks,
            )
            results.append(
                {
                    "table": table,
                    "outliers": outliers,
                    "optimizer": optimizer,
                    "protocol": protocol,
                    "seeds": per_seed,
                }
            )
    return results


def result_label(result: dict) -> str:
    """One line naming a result's table, outlier fraction and optimizer."""
    return f"{result['table']}, {result['outliers']:.0%} outliers, {result['optimizer']}"


def loss_row(name: str, seeds: list[dict]) -> str:
    """A loss's query MSE (mean over seeds) and its ratio to each seed's best tuned
    baseline (mean ± std)."""
    ratios = []
    for seed in seeds:
        best = min(seed[b]["score"] for b in BASELINES)
        ratios.append(seed[name]["score"] / best if math.isfinite(best) else math.inf)
    mean, std = mean_and_std(ratios)
    geo = sum(seed[name]["score"] for seed in seeds) / len(seeds)
    return f"{geo:9.4g} | {mean:.3f} ± {std:.3f}"


def summary(results: list[dict]) -> str:
    """Each loss's ratio to the best tuned baseline of each seed, mean ± std over seeds."""
    return summary_table(
        results, result_label, f"{'geo-mean':>9} | ratio to best baseline", loss_row
    )


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Run the transfer evaluation with the options in ``args``, print its tables, return one
    result per (table, optimizer) with the per-seed scores."""
    results = transfer(
        losses,
        tables=args.tables,
        outliers=args.outliers,
        corruption=args.corruption,
        width=args.width,
        depth=args.depth,
        activation=args.activation,
        **shared_transfer_options(args),
    )
    print(summary(results))
    return results


def main(argv=None) -> None:
    parser = transfer_parser(__doc__)
    parser.add_argument("--tables", nargs="+", default=list(HELD_OUT_TABLES[:2]))
    parser.add_argument("--outliers", type=float, default=0.2)
    parser.add_argument("--corruption", default="uniform")
    add_transfer_main_arguments(parser, steps=150, n_inits=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--activation", default="relu")
    run_transfer_main(parser, argv, run_evaluate)


if __name__ == "__main__":
    main()
