"""What the families' ``learnedloss evaluate NAME`` share: the protocol options of the families
scored by `learnedloss.evaluation.evaluate`, ``--plot``, and the loop over evaluation seeds and
losses that prints each seed's tables (with a progress bar on stderr) and their mean ± std."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any

from tqdm.auto import tqdm

from learnedloss.evaluation.protocol import Evaluation, mean_and_std
from learnedloss.validators import output_file, positive_float, positive_int


def add_plot_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--plot PNG`` (needs matplotlib: checked before the evaluation starts)."""
    parser.add_argument("--plot", type=output_file, help=help)


def add_tuned_lr_arguments(
    parser: argparse.ArgumentParser, *, steps_help: str, lr_range_help: str, reference: str
) -> None:
    """The protocol options of the families scored by `learnedloss.evaluation.evaluate`:
    ``--steps``, ``--n-tasks``, ``--n-inits``, ``--tune-tasks``, ``--lr-range`` and
    ``--same-lr`` (compare with ``reference`` at one lr too)."""
    add = parser.add_argument
    add("--steps", type=positive_int, help=steps_help)
    add("--n-tasks", type=positive_int, default=100, help="held-out tasks (default: %(default)s)")
    add(
        "--n-inits",
        type=positive_int,
        default=3,
        help="model initializations per held-out task (default: %(default)s)",
    )
    add(
        "--tune-tasks",
        type=positive_int,
        default=32,
        help="separate tasks each loss's lr is tuned on (default: %(default)s)",
    )
    add("--lr-range", type=positive_float, nargs=2, metavar=("LOW", "HIGH"), help=lr_range_help)
    add(
        "--same-lr",
        type=positive_float,
        help=f"also compare the losses with {reference} at this one learning rate",
    )


def echo(text: str = "") -> None:
    """Print to stdout without breaking a progress bar on stderr."""
    tqdm.write(text, file=sys.stdout)


def progress(total: int, desc: str = "evaluate", unit: str = "run"):
    """A tqdm progress bar on stderr (a context manager; call ``.update()``)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


def over_seeds(args: argparse.Namespace, desc: str = "evaluate"):
    """``range(args.seeds)`` with a progress bar on stderr."""
    return tqdm(range(args.seeds), desc=desc, unit="seed", file=sys.stderr)


def evaluate_over_seeds(
    args: argparse.Namespace,
    evaluate_seed: Callable[[int], tuple[Evaluation, Evaluation | None]],
    tuned_label: str,
    plot_title: str,
) -> list[dict]:
    """Run ``evaluate_seed(seed)`` for ``args.seeds`` seeds, print each tuned (and shared-lr)
    table, plot seed 0 to ``args.plot``; with several seeds, print the mean ± std of the
    scores and of the curves; return one result dict per seed."""
    from learnedloss.evaluation.plots import plot

    results = []
    for seed in range(args.seeds):
        tuned, fixed = evaluate_seed(seed)
        echo(f"seed {seed}: {tuned_label}")
        echo(tuned.table())
        if fixed is not None:
            echo(f"seed {seed}: {', '.join(fixed.scores)} at lr {args.same_lr}")
            echo(fixed.table())
        results.append(
            {"tuned": tuned.to_dict(), "same_lr": None if fixed is None else fixed.to_dict()}
        )
        if args.plot and seed == 0:
            plot(tuned, args.plot, title=plot_title)
    if args.seeds > 1:
        echo(summarize_seeds([r["tuned"] for r in results]))
        echo(summarize_curves([r["tuned"] for r in results]))
    return results


def evaluate_at_tuned_lrs(
    args: argparse.Namespace,
    evaluate_fn,
    losses: Mapping[str, Any],
    tasks,
    *,
    steps: int,
    default_lr_range: tuple[float, float],
    tuned_label: str,
    plot_title: str,
    **options,
) -> list[dict]:
    """`evaluate_over_seeds` with ``evaluate_fn(loss, tasks, name=..., steps=...,
    n_tasks=..., n_inits=..., lr_range=..., tune_tasks=..., same_lr=..., seed=...,
    **options)`` (the ``evaluate_*`` functions of the recipes), its settings from
    ``learnedloss evaluate``'s options, for each of ``losses``; a progress bar counts the
    (seed, loss) runs. With several losses, each seed's tables show the baselines once and
    every loss (the baselines are the same in every run: same tasks, seeds and grid)."""
    lr_range = tuple(args.lr_range) if args.lr_range else default_lr_range
    bar = progress(args.seeds * len(losses))

    def evaluate_seed(seed: int) -> tuple[Evaluation, Evaluation | None]:
        runs = []
        for name, loss in losses.items():
            runs.append(
                evaluate_fn(
                    loss,
                    tasks,
                    name=name,
                    steps=steps,
                    n_tasks=args.n_tasks,
                    n_inits=args.n_inits,
                    lr_range=lr_range,
                    tune_tasks=args.tune_tasks,
                    same_lr=args.same_lr,
                    seed=seed,
                    **options,
                )
            )
            bar.update(1)
        names = list(losses)
        tuned = merge_evaluations([t for t, _ in runs], names)
        fixed = None if runs[0][1] is None else merge_evaluations([f for _, f in runs], names)
        return tuned, fixed

    with bar:
        return evaluate_over_seeds(args, evaluate_seed, tuned_label, plot_title)


def merge_evaluations(evaluations: list[Evaluation], names: list[str]) -> Evaluation:
    """One `Evaluation` from runs that differ only in one loss each (``names[i]`` in
    ``evaluations[i]``): the first run's rows, with every named loss where its first named
    loss was."""
    first = evaluations[0]
    if len(evaluations) == 1:
        return first
    scores = {}
    for key, score in first.scores.items():
        if key == names[0]:
            scores.update({n: e.scores[n] for n, e in zip(names, evaluations, strict=True)})
        else:
            scores[key] = score
    return dataclasses.replace(first, scores=scores)


def summarize_seeds(results: list[dict]) -> str:
    """Mean ± std over seeds of each loss's ratio to the reference and of its metrics."""
    first = next(iter(results[0]["losses"].values()))
    not_summarized = ("lr", "geometric_mean", "ratio", "diverged", "curve")
    columns = ["ratio", *(k for k in first if k not in not_summarized)]
    header = f"{'loss':28s} | " + " | ".join(f"{c:>15}" for c in columns)
    lines = [f"mean ± std over {len(results)} seeds", header]
    for name in results[0]["losses"]:
        cells = []
        for column in columns:
            mean, std = mean_and_std([r["losses"][name][column] for r in results])
            cells.append(f"{mean:7.4f} ± {std:.4f}")
        lines.append(f"{name:28s} | " + " | ".join(cells))
    return "\n".join(lines)


def summarize_curves(results: list[dict], columns: int = 6) -> str:
    """Mean ± std over seeds of each loss's curve (the geometric mean of the objective over
    runs) at up to ``columns`` evenly spaced steps."""
    every = results[0].get("every", 1)
    length = len(next(iter(results[0]["losses"].values()))["curve"])
    points = sorted({round(i * (length - 1) / (columns - 1)) for i in range(columns)})
    header = f"{'loss':28s} | " + " | ".join(f"{f'step {p * every}':>15}" for p in points)
    lines = [f"objective against steps, mean ± std over {len(results)} seeds", header]
    for name in results[0]["losses"]:
        cells = [
            "{:7.4f} ± {:.4f}".format(
                *mean_and_std([r["losses"][name]["curve"][p] for r in results])
            )
            for p in points
        ]
        lines.append(f"{name:28s} | " + " | ".join(cells))
    return "\n".join(lines)
