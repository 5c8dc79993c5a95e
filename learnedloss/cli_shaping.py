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

from learnedloss.cli_common import add_schedule_arguments, print_training_summary
from learnedloss.recipes import save_run
from learnedloss.shaping import (
    FrequencyRecipe,
    compare_recovery,
    landscape,
    meta_train_frequency,
    recovery_table,
)


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FrequencyRecipe()
    add = parser.add_argument
    add(
        "--unshaped",
        dest="shaped",
        action="store_false",
        help="meta-objective: the MSE instead of (w - w*)^2",
    )
    add("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    add_schedule_arguments(parser, defaults)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    names = set(FrequencyRecipe.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in names}
    recipe = FrequencyRecipe(**{**values, "hidden": tuple(args.hidden)})
    loss, trainer = meta_train_frequency(
        recipe,
        run_dir=args.run_dir,
        resume=args.resume,
        device=args.device,
        max_seconds=max_seconds,
    )
    out = save_run(args.out, loss, trainer, recipe)
    print_training_summary(trainer, out)
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("losses", nargs="+", help="NAME=PATH_OR_NAME pairs, or plain paths/bundled names")
    add("--lr", type=float, default=1.0, help="inner lr for the learned losses")
    add("--n-tasks", type=int, default=50)
    add("--seeds", type=int, default=1, help="repeat with this many evaluation seeds")
    add("--landscape-omega", type=float, default=2.0, help="target ω* of the landscape plot")
    add("--plot", help="write the loss landscapes to this PNG")
    add("--json", help="write the results to this JSON file")
    add("--threads", type=int, default=1)


def _named_losses(specs: list[str]) -> dict:
    from learnedloss.loss import LearnedLoss

    losses = {}
    for spec in specs:
        name, _, source = spec.rpartition("=")
        losses[name or Path(source).name] = LearnedLoss.from_pretrained(source)
    return losses


def run_evaluate(args: argparse.Namespace) -> int:
    losses = _named_losses(args.losses)
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
        from learnedloss.plots import plot_landscapes

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
