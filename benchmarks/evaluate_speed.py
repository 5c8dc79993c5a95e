"""Wall time of `learnedloss.evaluate` on the vmap path and on the batched engine.

For each family, both paths run the same evaluation (the same held-out and tuning tasks,
initializations and lr grid: ``--lrs`` rates evenly spaced in log between the family's
transfer range for the optimizer) of the family's transfer baselines, optionally with a bundled
learned loss; the table gives each path's wall time, the ratio, the number of training runs
(loss variants × lrs on the tuning tasks, then one per loss on the held-out tasks) and the
largest relative difference between the two paths' scores.

Families (the held-out tasks of the transfer evaluations):
- ``robust-regression``: ``diabetes``, 20% outliers, 10-64-64-1 MLPs on 192 rows
  (`robust_regression_baselines`: MSE, L1, tuned Huber, Barron's adaptive loss, which runs
  on the vmap path on both, and the control);
- ``noisy-labels``: ``digits`` with 10 classes, 40% flipped labels, 64-64-10 MLPs on 200 rows
  (`noisy_label_baselines`: CE, label smoothing, GCE, SCE and NCE+RCE tuned, the control).

    nice -n 10 python benchmarks/evaluate_speed.py
    nice -n 10 python benchmarks/evaluate_speed.py --n-tasks 8 --n-inits 2 --lrs 9 --steps 50
    python benchmarks/evaluate_speed.py --families noisy-labels --baselines CE "GCE (tuned q)"
    python benchmarks/evaluate_speed.py --quick

Times are one thread (``torch.set_num_threads(1)``), after a warm-up call of each path;
with ``--repeats`` the paths take turns and each keeps its fastest time, which evens out the
load of a shared machine. Quote ratios from one run.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch

from learnedloss.evaluation import Tuned, evaluate
from learnedloss.evaluation.baselines import noisy_label_baselines, robust_regression_baselines
from learnedloss.families.noisy_labels import transfer as noisy_transfer
from learnedloss.families.robust_regression import transfer as robust_transfer
from learnedloss.loss import LearnedLoss

FAMILIES = ("robust-regression", "noisy-labels")


def family_setup(family: str, width: int):
    """``(tasks, baselines, lr range, select_by)`` of a family's held-out evaluation, with
    MLPs of hidden ``width``."""
    if family == "robust-regression":
        tasks = robust_transfer.held_out_tasks("diabetes", 0.2, width=width)
        return tasks, robust_regression_baselines(), robust_transfer.LR_RANGES, "objective"
    tasks = noisy_transfer.held_out_tasks("digits", 10, 0.4, width=width)
    return tasks, noisy_label_baselines(), noisy_transfer.LR_RANGES, "error"


def count_runs(losses: dict, n_lrs: int) -> int:
    """Training runs of one evaluation: every variant at every lr, then one per loss."""
    variants = sum(len(v.variants) if isinstance(v, Tuned) else 1 for v in losses.values())
    return variants * n_lrs + len(losses)


def largest_difference(a, b) -> float:
    """The largest relative difference between two evaluations' finite scores."""
    gaps = [
        abs(a.scores[n].score - b.scores[n].score) / a.scores[n].score
        for n in a.scores
        if math.isfinite(a.scores[n].score) and math.isfinite(b.scores[n].score)
    ]
    return max(gaps, default=0.0)


def measure(family: str, args: argparse.Namespace) -> str:
    tasks, baselines, lr_ranges, select_by = family_setup(family, args.width)
    losses = {k: v for k, v in baselines.items() if not args.baselines or k in args.baselines}
    if args.learned:
        losses[args.learned] = LearnedLoss.from_pretrained(args.learned)
    low, high = lr_ranges[args.optimizer]
    grid = [low * (high / low) ** (i / max(1, args.lrs - 1)) for i in range(args.lrs)]
    options = dict(
        steps=args.steps,
        n_tasks=args.n_tasks,
        n_inits=args.n_inits,
        tune_tasks=args.tune_tasks,
        optimizer=args.optimizer,
        lrs=grid,
        select_by=select_by,
        every=args.steps,
    )
    times, results = {}, {}
    warm_up = dict(options, steps=1, n_tasks=1, n_inits=1, tune_tasks=1, lrs=grid[:1], every=1)
    for path in args.paths:  # one-time costs (e.g. Barron's log Z table) out of the timing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluate(losses, tasks, path=path, **warm_up)
    for _ in range(args.repeats):  # the paths take turns; each keeps its fastest time
        for path in args.paths:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the adaptive loss's fallback
                results[path] = evaluate(losses, tasks, path=path, **options)
            times[path] = min(times.get(path, math.inf), time.perf_counter() - start)
    vmap, engine = times.get("vmap", math.nan), times.get("engine", math.nan)
    difference = (
        largest_difference(results["vmap"], results["engine"]) if len(results) == 2 else math.nan
    )
    return (
        f"{family:18s} | {args.optimizer:4s} | {count_runs(losses, len(grid)):5d} | "
        f"{vmap:9.1f} | {engine:9.1f} | {vmap / engine:6.1f} | {difference:8.1e}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    add("--paths", nargs="+", choices=["vmap", "engine"], default=["vmap", "engine"])
    add("--optimizer", choices=["sgd", "adam"], default="sgd")
    add("--n-tasks", type=int, default=16, help="held-out tasks (default: 16)")
    add("--n-inits", type=int, default=3, help="inits per held-out task (default: 3)")
    add("--tune-tasks", type=int, default=16, help="lr-tuning tasks (default: 16)")
    add("--lrs", type=int, default=17, help="lrs in the grid (default: 17)")
    add("--steps", type=int, default=100, help="steps per model (default: 100)")
    add("--width", type=int, default=64, help="the MLPs' hidden width (default: 64)")
    add("--baselines", nargs="*", default=None, help="only these baselines (default: all)")
    add("--learned", default=None, help="also a bundled learned loss, by name")
    add("--threads", type=int, default=1)
    add("--repeats", type=int, default=1, help="turns of both paths; the fastest counts")
    add("--quick", action="store_true", help="tiny sizes and four baselines, a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_tasks, args.n_inits, args.tune_tasks, args.lrs, args.steps = 2, 1, 2, 2, 4
        args.baselines = args.baselines or ["MSE", "Huber (tuned d)", "CE", "GCE (tuned q)"]
    torch.set_num_threads(args.threads)
    print(
        f"{args.n_tasks} tasks x {args.n_inits} inits, {args.tune_tasks} tuning tasks, "
        f"{args.lrs} lrs, {args.steps} steps, width {args.width}, {args.threads} thread(s)"
    )
    header = (
        f"{'family':18s} | {'opt':4s} | {'runs':>5} | {'vmap s':>9} | {'engine s':>9} | "
        f"{'ratio':>6} | {'max diff':>8}"
    )
    print(header, "-" * len(header), sep="\n", flush=True)
    for family in args.families:
        print(measure(family, args), flush=True)


if __name__ == "__main__":
    main()
