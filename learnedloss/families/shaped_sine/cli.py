"""The shaped-sine parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train shaped-sine [--unshaped] ...``: meta-train a frequency-recovery loss.
- ``learnedloss evaluate-shaped LOSS [LOSS ...]``: recovery table against MSE, and the
  loss-landscape plot.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from learnedloss.cli.common import (
    add_comparison_arguments,
    add_residual_form_argument,
    add_schedule_arguments,
    add_shaping_arguments,
    named_losses,
    run_recipe,
)
from learnedloss.families.shaped_sine.recipe import (
    FrequencyRecipe,
    compare_recovery,
    landscape,
    meta_train_frequency,
    recovery_table,
)


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FrequencyRecipe()
    add = parser.add_argument
    add_shaping_arguments(parser, defaults, unshaped="the MSE instead of (w - w*)^2")
    add_residual_form_argument(parser, defaults.residual_form)
    add(
        "--finetune-steps",
        type=int,
        default=defaults.finetune_steps,
        help="outer steps of the second stage, on the test protocol (0: none)",
    )
    add_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return run_recipe(args, FrequencyRecipe, meta_train_frequency, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_comparison_arguments(
        parser, "inner lr for the learned losses", "write the loss landscapes to this PNG"
    )
    add = parser.add_argument
    add("--n-tasks", type=int, default=50)
    add("--landscape-omega", type=float, default=2.0, help="target ω* of the landscape plot")


def run_evaluate(args: argparse.Namespace) -> int:
    losses = named_losses(args.losses)
    results = []
    for seed in range(args.seeds):
        result = compare_recovery(losses, lr=args.lr, n_tasks=args.n_tasks, seed=10000 + seed)
        print(f"seed {seed}: |w - w*| after 10 SGD steps on {args.n_tasks} held-out tasks")
        print(recovery_table(result))
        results.append({s: {n: asdict(r) for n, r in rows.items()} for s, rows in result.items()})
    if args.seeds > 1:
        print(summarize_recovery(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        from learnedloss.evaluation.plots import plot_landscapes

        omegas = torch.linspace(-7, 7, 561)
        curves = {
            name: landscape(loss, args.landscape_omega, omegas) for name, loss in losses.items()
        }
        curves["MSE"] = landscape(torch.nn.MSELoss(), args.landscape_omega, omegas)
        print(f"wrote {plot_landscapes(curves, omegas, args.landscape_omega, args.plot)}")
    return 0


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
