"""Report classification losses on held-out digits tasks: mean ± std over meta-training seeds.

Give one loss per meta-training seed (e.g. five runs of `learnedloss meta-train digits
--seed S`). Loss number i is evaluated with evaluation seed i, so the spread covers both the
meta-training seed and the held-out tasks. Every condition changes the tasks the losses were
meta-trained on, e.g. another noise rate, an unseen architecture or an unseen class count:

    python examples/classification_report.py runs/digits-noisy-{0,1,2,3,4} \\
        --conditions label_noise=0.4 label_noise=0 label_noise=0.2 label_noise=0.6 \\
                     model=cnn n_way=2 n_way=10

For each condition it prints, per loss, the test accuracy and the test cross-entropy (means
over held-out tasks, then mean ± std over seeds) and the tuned lr of each seed: the learned
loss, cross-entropy at the meta-training lr, and cross-entropy, the 1.5·CE control, label
smoothing and the generalized cross-entropy, each at its lr tuned for query error on separate
tasks (`learnedloss.families.digits.recipe.evaluate_classification`).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch

from learnedloss import LearnedLoss
from learnedloss.evaluation.protocol import mean_and_std
from learnedloss.families.digits.recipe import DigitsRecipe, evaluate_classification


def parse_condition(text: str) -> dict:
    """``"label_noise=0.2,model=cnn"`` -> ``{"label_noise": 0.2, "model": "cnn"}``."""
    changes = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in ("label_noise", "n_way", "n_shot", "model"):
            raise SystemExit(f"unknown condition {key!r}: use label_noise, n_way, n_shot, model")
        changes[key] = value if key == "model" else (float if key == "label_noise" else int)(value)
    return changes


def summarize(values: list[float]) -> str:
    return "{:.4f} ± {:.4f}".format(*mean_and_std(values))


def report(losses: list[LearnedLoss], changes: dict, args) -> dict:
    """Evaluate every loss under one condition; return ``{row: {accuracy, ce, lrs}}``."""
    recipe = DigitsRecipe.from_loss(losses[0])
    tasks = recipe.test_tasks(**changes)
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for seed, loss in enumerate(losses):
        tuned, fixed = evaluate_classification(
            loss,
            tasks,
            steps=args.steps or recipe.inner_steps,
            n_tasks=args.n_tasks,
            tune_tasks=args.tune_tasks,
            same_lr=recipe.inner_lr,
            seed=seed,
        )
        same = {f"{name} at lr {recipe.inner_lr:g}": s for name, s in fixed.scores.items()}
        for name, score in {**same, **tuned.scores}.items():
            rows[name]["accuracy"].append(1 - float(score.metrics["error"].mean()))
            rows[name]["ce"].append(float(score.finals.mean()))
            rows[name]["lrs"].append(score.lr)
    return {name: dict(values) for name, values in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("losses", nargs="+", help="one loss (dir, bundled name, Hub id) per seed")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=[""],
        help="task changes, e.g. label_noise=0.2 model=cnn n_way=10 (default: none)",
    )
    parser.add_argument("--steps", type=int, help="steps per model (default: meta-training's)")
    parser.add_argument("--n-tasks", type=int, default=64, help="held-out tasks per seed")
    parser.add_argument("--tune-tasks", type=int, default=16, help="lr-tuning tasks per seed")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    losses = [LearnedLoss.from_pretrained(name) for name in args.losses]
    results = {}
    for text in args.conditions:
        changes = parse_condition(text) if text else {}
        tasks = DigitsRecipe.from_loss(losses[0]).test_tasks(**changes)
        title = f"{tasks.summary()} (mean ± std over {len(losses)} seeds)"
        rows = report(losses, changes, args)
        results[text or "meta-training tasks"] = {"tasks": tasks.describe(), "losses": rows}
        print(f"\n{title}")
        print(f"{'loss':28s} | {'test accuracy':>17} | {'test CE':>17} | lr per seed")
        for name, row in rows.items():
            lrs = " ".join(f"{lr:.3g}" for lr in row["lrs"])
            print(
                f"{name:28s} | {summarize(row['accuracy']):>17} | {summarize(row['ce']):>17} | "
                f"{lrs}"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
