"""What the noisy-labels and robust-regression transfer evaluations share.

Both evaluate a set of losses with their tuned baselines over conditions × optimizers ×
evaluation seeds (`score_over_seeds`), report per-seed results in the same table layout
(`summary_table`), take the same evaluation options in ``learnedloss evaluate NAME``
(`add_transfer_arguments`) and have the same ``python -m ...transfer`` plumbing
(`transfer_parser`, `add_transfer_main_arguments`, `run_transfer_main`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import torch

from learnedloss.evaluation.protocol import evaluate, lr_grid
from learnedloss.loss import LearnedLoss
from learnedloss.validators import positive_int


def add_transfer_arguments(parser: argparse.ArgumentParser, *, steps: int, n_inits: int) -> None:
    """The ``learnedloss evaluate`` options both transfer evaluations take: optimizers,
    steps, tasks, inits and lr-tuning tasks (with the family's default steps and inits)."""
    add = parser.add_argument
    add(
        "--optimizers",
        nargs="+",
        choices=["sgd", "adam"],
        default=["sgd", "adam"],
        help="the user's optimizers, each evaluated (default: %(default)s)",
    )
    add(
        "--steps",
        type=positive_int,
        default=steps,
        help=f"training steps per model (default: {steps})",
    )
    add("--n-tasks", type=positive_int, default=8, help="evaluation tasks (default: 8)")
    add(
        "--n-inits",
        type=positive_int,
        default=n_inits,
        help=f"model inits per task (default: {n_inits})",
    )
    add("--tune-tasks", type=positive_int, default=6, help="lr-tuning tasks (default: 6)")


def score_over_seeds(
    everything: Callable[[], dict],
    tasks,
    *,
    optimizer: str,
    lr_range: tuple[float, float],
    seeds: int,
    heading: str,
    record: Callable[[Any], dict],
    per_octave: int = 1,
    **evaluate_options,
) -> tuple[list[dict], str]:
    """Evaluate ``everything()`` (the baselines and the losses, built afresh per seed) on
    ``tasks`` with ``optimizer`` for evaluation seeds ``0..seeds-1``, printing each seed's
    table under ``heading``; return one ``{name: record(score)}`` per seed and the protocol.
    ``evaluate_options`` (steps, n_tasks, ...) go to `learnedloss.evaluate`."""
    per_seed = []
    for seed in range(seeds):
        evaluation = evaluate(
            everything(),
            tasks,
            optimizer=optimizer,
            lrs=lr_grid(*lr_range, per_octave=per_octave),
            seed=seed,
            **evaluate_options,
        )
        print(f"\n{heading}, seed {seed}")
        print(evaluation.table(), flush=True)
        per_seed.append({name: record(s) for name, s in evaluation.scores.items()})
    return per_seed, evaluation.protocol


def summary_table(
    results: list[dict],
    head: Callable[[dict], str],
    columns: str,
    row: Callable[[str, list[dict]], str],
) -> str:
    """One block per result: ``head(result)``, a header line with ``columns``, and one
    ``row(name, seeds)`` per loss of its first seed."""
    lines = []
    for result in results:
        seeds = result["seeds"]
        lines += ["", head(result), f"{'loss':28s} | {columns}"]
        lines += [f"{name:28s} | {row(name, seeds)}" for name in seeds[0]]
    return "\n".join(lines)


def transfer_parser(doc: str) -> argparse.ArgumentParser:
    """The ``python -m ...transfer`` parser, with the losses to evaluate."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("losses", nargs="+", help="bundled names or directories")
    return parser


def add_transfer_main_arguments(
    parser: argparse.ArgumentParser, *, steps: int, n_inits: int
) -> None:
    """The ``python -m ...transfer`` options both evaluations take (``--tasks`` and
    ``--inits`` set ``n_tasks`` and ``n_inits``, as ``learnedloss evaluate`` does)."""
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--tasks", dest="n_tasks", metavar="TASKS", type=int, default=8)
    parser.add_argument("--inits", dest="n_inits", metavar="INITS", type=int, default=n_inits)
    parser.add_argument("--tune-tasks", type=int, default=6)


def shared_transfer_options(args: argparse.Namespace) -> dict:
    """The ``transfer()`` arguments both evaluations take, from parsed options."""
    names = ("optimizers", "seeds", "steps", "n_tasks", "n_inits", "tune_tasks")
    return {name: getattr(args, name) for name in names}


def run_transfer_main(
    parser: argparse.ArgumentParser,
    argv,
    run_evaluate: Callable[[argparse.Namespace, dict[str, LearnedLoss]], list[dict]],
) -> None:
    """Add ``--json`` and ``--threads``, parse ``argv``, load the losses, run
    ``run_evaluate(args, losses)`` and write its results to ``--json``."""
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    losses = {name: LearnedLoss.from_pretrained(name) for name in args.losses}
    results = run_evaluate(args, losses)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
