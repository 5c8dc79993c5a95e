"""Time to quality: meta-validation against one-core minutes, for the bundled
``robust-regression`` recipe on the vmap path (the 0.1 engine), and on the batched engine with
evolution strategies and with CMA-ES.

The recipe is the one the bundled loss records (17-knot scale-free grid over
``scaled_residual``, 8 tasks of 100 Adam steps per outer step, 16 fixed meta-validation tasks
of seed + 1), so every run is scored on the same meta-validation tasks as the bundled run,
whose best was ``training.best_meta_val`` at ``training.best_step`` of 277 steps in 38 minutes.

    python benchmarks/time_to_quality.py --path engine --estimator cmaes --minutes 10 \\
        --out runs/ttq-engine-cmaes.json

Prints one line per meta-validation (CPU minutes of this one-thread process, step,
meta-validation) and writes them as JSON. ``--minutes`` bounds the wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
from learnedloss.meta import CMAES, EvolutionStrategies


def bundled_recipe(validate_every: int) -> tuple[RobustRegressionRecipe, dict]:
    bundled = LearnedLoss.from_pretrained("robust-regression")
    recipe = RobustRegressionRecipe.from_loss(bundled)
    training = bundled.metadata["training"]
    values = {**recipe.to_dict(), "validate_every": validate_every}
    return RobustRegressionRecipe.from_dict(values), training


def estimator(name: str, recipe, population: int):
    if name == "es":
        return EvolutionStrategies(pairs=recipe.es_pairs, sigma=recipe.es_sigma)
    return CMAES(population=population, sigma=recipe.es_sigma)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["vmap", "engine"], default="engine")
    parser.add_argument("--estimator", choices=["es", "cmaes"], default="cmaes")
    parser.add_argument("--population", type=int, default=16, help="CMA-ES population")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--validate-every", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recipe, training = bundled_recipe(args.validate_every)
    arguments = recipe.settings.trainer_arguments()
    arguments.update(
        meta_gradient=estimator(args.estimator, recipe, args.population),
        path=args.path,
        progress=False,
    )
    start = time.process_time()  # this process's CPU time: one-core minutes, even on a busy machine
    curve = []

    def record(trainer, entry) -> None:
        if "meta_val" in entry:
            minutes = (time.process_time() - start) / 60
            curve.append({"minutes": minutes, "step": entry["step"], "meta_val": entry["meta_val"]})
            print(f"{minutes:7.2f} min  step {entry['step']:4d}  meta-val {entry['meta_val']:.4f}")

    trainer = MetaTrainer(recipe.initial_loss(), recipe.tasks(), callbacks=[record], **arguments)
    print(
        f"path {trainer.path} {trainer.path_reason}; {args.estimator}; target: the bundled "
        f"run's best {training['best_meta_val']:.4f} at step {training['best_step']} "
        f"(277 steps in 38 minutes)"
    )
    trainer.fit(10**6, max_seconds=args.minutes * 60)
    reached = next((p for p in curve if p["meta_val"] <= training["best_meta_val"]), None)
    print("reached the bundled run's best at", reached)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"out": str(args.out)},
                    "target": training["best_meta_val"],
                    "reached": reached,
                    "curve": curve,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
