"""Transfer evaluation of classification losses on held-out data (docs/noisy-labels.md).

    python -m learnedloss.families.noisy_labels.transfer noisy-labels \
        --conditions digits:2 digits:10 synthetic:100 --noise 0.4 --optimizers sgd adam \
        --seeds 2 --json out.json

A condition is ``SOURCE:CLASSES`` (a held-out table, or ``synthetic`` for teachers drawn from
evaluation seeds, which meta-training never drew). For every condition, optimizer and seed,
fresh models train on tasks whose training labels are ``--noise`` symmetrically flipped, with
each loss at its own lr tuned for query error on separate tasks (`learnedloss.evaluate`,
``select_by="error"``). Baselines (`noisy_label_baselines`): cross-entropy, label smoothing,
GCE, SCE and NCE+RCE, each with its shape parameter tuned with the lr, and the control
1.5 × CE. Reported: query accuracy (points) mean ± std over seeds, and each loss's gain over
the best tuned baseline of each seed.
"""

from __future__ import annotations

import argparse
import json

import torch

from learnedloss.evaluation.baselines import noisy_label_baselines
from learnedloss.evaluation.protocol import evaluate, lr_grid, mean_and_std
from learnedloss.families.noisy_labels.tasks import NoisyLabelTasks
from learnedloss.loss import LearnedLoss

BASELINES = (
    "CE",
    "Label smoothing (tuned eps)",
    "GCE (tuned q)",
    "SCE (tuned a)",
    "NCE+RCE (tuned a)",
)
LR_RANGES = {"sgd": (0.02, 2.0), "adam": (1e-4, 0.1)}


def held_out_tasks(
    source: str,
    n_classes: int,
    noise: float,
    model: str = "mlp",
    width: int = 64,
    n_train: int = 200,
    n_query: int = 100,
) -> NoisyLabelTasks:
    """Tasks of one held-out source with ``n_classes`` classes and a fixed symmetric noise."""
    return NoisyLabelTasks(
        sources=(source,),
        n_classes=(n_classes,),
        table_classes=None if source == "synthetic" else n_classes,
        n_train=n_train,
        n_query=n_query,
        label_noise=(noise, noise),
        noises=("symmetric",),
        widths=(width,),
        model=model,
        synthetic_inputs=(16, 16),
    )


def transfer(
    losses: dict,
    conditions=("digits:2", "digits:10", "synthetic:100"),
    noise: float = 0.4,
    optimizers=("sgd", "adam"),
    seeds: int = 2,
    steps: int = 100,
    n_tasks: int = 8,
    n_inits: int = 1,
    tune_tasks: int = 6,
    model: str = "mlp",
    per_octave: int = 1,
) -> list[dict]:
    """Run the evaluation; one result per (condition, optimizer) with per-seed accuracies."""
    results = []
    for condition in conditions:
        source, classes = condition.split(":")
        tasks = held_out_tasks(source, int(classes), noise, model=model)
        for optimizer in optimizers:
            per_seed = []
            for seed in range(seeds):
                everything = {**noisy_label_baselines(), **losses}
                evaluation = evaluate(
                    everything,
                    tasks,
                    steps=steps,
                    n_tasks=n_tasks,
                    n_inits=n_inits,
                    optimizer=optimizer,
                    lrs=lr_grid(*LR_RANGES[optimizer], per_octave=per_octave),
                    tune_tasks=tune_tasks,
                    select_by="error",
                    seed=seed,
                )
                print(f"\n{condition}, {noise:.0%} noise, {model}, {optimizer}, seed {seed}")
                print(evaluation.table(), flush=True)
                per_seed.append(
                    {
                        name: {
                            "accuracy": 100 * (1 - float(s.metrics["error"].mean())),
                            "lr": s.lr,
                            "variant": s.variant,
                        }
                        for name, s in evaluation.scores.items()
                    }
                )
            results.append(
                {
                    "condition": condition,
                    "noise": noise,
                    "model": model,
                    "optimizer": optimizer,
                    "protocol": evaluation.protocol,
                    "seeds": per_seed,
                }
            )
    return results


def summary(results: list[dict]) -> str:
    """Accuracy mean ± std over seeds, and the gain over each seed's best tuned baseline."""
    lines = []
    for result in results:
        seeds = result["seeds"]
        head = (
            f"{result['condition']}, {result['noise']:.0%} noise, {result['model']}, "
            f"{result['optimizer']}"
        )
        lines += ["", head, f"{'loss':28s} | {'accuracy %':>14} | points over best baseline"]
        for name in seeds[0]:
            accuracy = mean_and_std([s[name]["accuracy"] for s in seeds])
            gains = [s[name]["accuracy"] - max(s[b]["accuracy"] for b in BASELINES) for s in seeds]
            gain = mean_and_std(gains)
            lines.append(
                f"{name:28s} | {accuracy[0]:6.1f} ± {accuracy[1]:4.1f} | "
                f"{gain[0]:+.1f} ± {gain[1]:.1f}"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("losses", nargs="+", help="bundled names or directories")
    parser.add_argument(
        "--conditions", nargs="+", default=["digits:2", "digits:10", "synthetic:100"]
    )
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--inits", type=int, default=1)
    parser.add_argument("--tune-tasks", type=int, default=6)
    parser.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    losses = {name: LearnedLoss.from_pretrained(name) for name in args.losses}
    results = transfer(
        losses,
        conditions=args.conditions,
        noise=args.noise,
        optimizers=args.optimizers,
        seeds=args.seeds,
        steps=args.steps,
        n_tasks=args.tasks,
        n_inits=args.inits,
        tune_tasks=args.tune_tasks,
        model=args.model,
    )
    print(summary(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
