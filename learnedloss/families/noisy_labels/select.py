"""Choose the bundled ``noisy-labels`` loss among count-free shapes, on the meta-training pool
only, with the protocol users train by (docs/noisy-labels.md).

    python -m learnedloss.families.noisy_labels.select \
        --conditions wine:3 iris:3 fair:2 clusters:3 synthetic:5 synthetic:10 \
        --noises 0 0.2 0.4 --seeds 2 --json runs/nl-select.json --out runs/nl-selected

Each candidate (`candidates`) is the start of a `NoisyLabelsRecipe`: a count-free grid loss,
cross-entropy or a hand-set shape. Every candidate trains fresh models on tasks of the
meta-training pool (`META_TRAIN_TABLES` and the synthetic sources, never a held-out table) at
its own lr, tuned for query error on separate tasks, for every condition, noise rate,
optimizer and seed (`learnedloss.families.noisy_labels.transfer.transfer`). Its score is its
mean query-accuracy gain over cross-entropy across all of them, so a shape that helps at 40%
noise but costs accuracy on clean labels pays for it. The best is saved (``--out``) with the
selection table in its metadata. ``--merge`` chooses from ``--json`` files of earlier runs
(split over processes by condition) without evaluating again.

This is a search over a handful of shapes with the real protocol as the objective, the outer
loop of meta-learning at its coarsest; evolution strategies over the grid's knots from these
starts did not improve the meta-validation objective (docs/noisy-labels.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from learnedloss.evaluation.protocol import mean_and_std
from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe
from learnedloss.families.noisy_labels.tasks import HELD_OUT_TABLES
from learnedloss.families.noisy_labels.transfer import transfer

GRID = NoisyLabelsRecipe(
    parameterization="grid",
    inputs=("log_prob",),
    grid_knots=(17,),
    grid_range=((-8.0, 0.0),),
    n_train=200,
    n_query=100,
    n_classes=(2, 3, 5, 10),
)
"""The count-free grid over the labelled class's log-probability every candidate shares."""

QS = (0.3, 0.5, 0.7, 0.9)


def candidates() -> dict[str, NoisyLabelsRecipe]:
    """The shapes to choose from: cross-entropy and GCE's shape at each q in `QS`."""
    shapes = {"cross-entropy": GRID}
    shapes.update({f"GCE shape, q={q:g}": replace(GRID, start_gce_q=q) for q in QS})
    return shapes


def evaluate_candidates(
    conditions, noises, optimizers=("sgd", "adam"), seeds: int = 2, **options
) -> list[dict]:
    """Every candidate at every condition, noise, optimizer and seed (transfer results)."""
    for condition in conditions:
        if condition.split(":")[0] in HELD_OUT_TABLES:
            raise ValueError(f"{condition} is held out: choose on the meta-training pool only")
    results = []
    for noise in noises:
        losses = {name: recipe.initial_loss() for name, recipe in candidates().items()}
        results += transfer(
            losses,
            conditions=conditions,
            noise=noise,
            optimizers=optimizers,
            seeds=seeds,
            baselines=dict,
            **options,
        )
    return results


def scores(results: list[dict]) -> dict[str, tuple[float, float]]:
    """Each candidate's accuracy gain over cross-entropy (points), mean and std over every
    condition, noise, optimizer and seed."""
    names = list(results[0]["seeds"][0])
    gains: dict[str, list[float]] = {name: [] for name in names}
    for result in results:
        for seed in result["seeds"]:
            for name in names:
                gains[name].append(seed[name]["accuracy"] - seed["cross-entropy"]["accuracy"])
    return {name: mean_and_std(values) for name, values in gains.items()}


def selection_rows(results: list[dict]) -> dict[str, str]:
    """``{candidate: "mean accuracy at each noise rate | gain over CE"}``."""
    names = list(results[0]["seeds"][0])
    noises = sorted({r["noise"] for r in results})
    overall = scores(results)
    rows = {}
    for name in names:
        cells = []
        for noise in noises:
            values = [
                s[name]["accuracy"] for r in results if r["noise"] == noise for s in r["seeds"]
            ]
            cells.append(f"{sum(values) / len(values):9.1f}")
        rows[name] = " | ".join(cells) + " | {:+.2f} ± {:.2f}".format(*overall[name])
    return rows


def selection_table(results: list[dict]) -> str:
    """Mean accuracy per candidate for each noise rate, and the overall gain over CE."""
    noises = sorted({r["noise"] for r in results})
    head = " | ".join(f"{100 * n:.0f}% noise" for n in noises)
    lines = [f"{'candidate':22s} | {head} | gain over CE (points)"]
    lines += [f"{name:22s} | {row}" for name, row in selection_rows(results).items()]
    return "\n".join(lines)


def training_metadata(results: list[dict], chosen: str) -> dict:
    """What the card's "How it was made" shows: the method, the pool and every candidate's
    selection row."""
    noises = sorted({r["noise"] for r in results})
    return {
        "method": "selection among count-free shapes on the meta-training pool "
        "(learnedloss.families.noisy_labels.select)",
        "chosen": chosen,
        "conditions": sorted({r["condition"] for r in results}),
        "noise rates": [f"{100 * n:.0f}%" for n in noises],
        "optimizers": sorted({r["optimizer"] for r in results}),
        "seeds per condition": len(results[0]["seeds"]),
        "protocol": "fresh 1x64 ReLU MLPs, 200 training (flipped) and 100 clean query "
        "examples, 100 full-batch steps, each candidate at its lr tuned for query error",
        "score": "mean query-accuracy gain over cross-entropy, every condition, noise, "
        "optimizer and seed",
        **{
            f"candidate: {name} (accuracy % at "
            + ", ".join(f"{100 * n:.0f}%" for n in noises)
            + " noise | gain)": row
            for name, row in selection_rows(results).items()
        },
    }


def choose(results: list[dict]) -> str:
    """The candidate with the largest mean gain over cross-entropy."""
    overall = scores(results)
    return max(overall, key=lambda name: overall[name][0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=["wine:3", "iris:3", "fair:2", "clusters:3", "synthetic:5", "synthetic:10"],
    )
    parser.add_argument("--noises", nargs="+", type=float, default=[0.0, 0.2, 0.4])
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--tune-tasks", type=int, default=4)
    parser.add_argument("--json", help="write (or, with --merge, read) the results here")
    parser.add_argument("--merge", nargs="+", help="choose from these --json files")
    parser.add_argument("--out", help="save the chosen loss in this directory")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.merge:
        results = [r for path in args.merge for r in json.loads(Path(path).read_text())]
    else:
        results = evaluate_candidates(
            args.conditions,
            args.noises,
            args.optimizers,
            args.seeds,
            steps=args.steps,
            n_tasks=args.tasks,
            tune_tasks=args.tune_tasks,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results))
    table = selection_table(results)
    chosen = choose(results)
    print(f"\n{table}\n\nchosen: {chosen}")
    if args.out:
        recipe = candidates()[chosen]
        loss = recipe.initial_loss()
        loss.metadata["recipe"] = {"family": "noisy-labels", **recipe.to_dict()}
        loss.metadata["training"] = training_metadata(results, chosen)
        loss.save_pretrained(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
