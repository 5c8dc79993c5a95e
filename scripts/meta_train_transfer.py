"""Meta-train the transfer losses of issue 17 (docs/robust-regression.md, docs/noisy-labels.md).

    python scripts/meta_train_transfer.py robust-regression --out runs/rr-s0 --seed 0
    python scripts/meta_train_transfer.py noisy-labels --out runs/nl-s0 --seed 0

Any recipe field can be overridden as ``--set name=value`` (JSON values, e.g.
``--set outer_steps=300 --set widths=[32,64]``). ``--max-minutes`` stops early and keeps the
loss as the recipe says (``keep``).
"""

from __future__ import annotations

import argparse
import json

import torch

from learnedloss.families.recipe import meta_train, save_run


def _recipe(family: str, overrides: dict):
    if family == "robust-regression":
        from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe as cls
    else:
        from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe as cls
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return cls(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=("robust-regression", "noisy-labels"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"seed": args.seed}
    for item in args.set:
        name, value = item.split("=", 1)
        overrides[name] = json.loads(value)
    recipe = _recipe(args.family, overrides)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    loss, trainer = meta_train(
        recipe, run_dir=f"{args.out}-checkpoints", family=args.family, max_seconds=max_seconds
    )
    save_run(args.out, loss, trainer, recipe)
    print(
        f"wrote {args.out}; last meta-train objectives:",
        [round(r["meta_train"], 4) for r in trainer.history[-5:]],
    )


if __name__ == "__main__":
    main()
