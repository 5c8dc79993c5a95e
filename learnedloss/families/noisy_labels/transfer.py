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

from learnedloss.evaluation.baselines import noisy_label_baselines
from learnedloss.evaluation.protocol import mean_and_std
from learnedloss.families.noisy_labels.tasks import NoisyLabelTasks
from learnedloss.families.transfer_common import (
    add_transfer_main_arguments,
    run_transfer_main,
    score_over_seeds,
    shared_transfer_options,
    summary_table,
    transfer_parser,
)
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
    baselines=noisy_label_baselines,
) -> list[dict]:
    """Run the evaluation; one result per (condition, optimizer) with per-seed accuracies.
    ``baselines()`` builds the losses compared against (default: the tuned baselines)."""
    results = []
    for condition in conditions:
        source, classes = condition.split(":")
        tasks = held_out_tasks(source, int(classes), noise, model=model)
        for optimizer in optimizers:
            per_seed, protocol = score_over_seeds(
                lambda: {**baselines(), **losses},
                tasks,
                optimizer=optimizer,
                lr_range=LR_RANGES[optimizer],
                seeds=seeds,
                heading=f"{condition}, {noise:.0%} noise, {model}, {optimizer}",
                record=lambda s: {
                    "accuracy": 100 * (1 - float(s.metrics["error"].mean())),
                    "lr": s.lr,
                    "variant": s.variant,
                },
                per_octave=per_octave,
                steps=steps,
                n_tasks=n_tasks,
                n_inits=n_inits,
                tune_tasks=tune_tasks,
                select_by="error",
            )
            results.append(
                {
                    "condition": condition,
                    "noise": noise,
                    "model": model,
                    "optimizer": optimizer,
                    "protocol": protocol,
                    "seeds": per_seed,
                }
            )
    return results


def result_label(result: dict) -> str:
    """One line naming a result's condition, noise, model and optimizer."""
    return (
        f"{result['condition']}, {result['noise']:.0%} noise, {result['model']}, "
        f"{result['optimizer']}"
    )


def loss_row(name: str, seeds: list[dict]) -> str:
    """A loss's accuracy mean ± std over seeds, and its gain over each seed's best tuned
    baseline (mean ± std)."""
    accuracy = mean_and_std([s[name]["accuracy"] for s in seeds])
    gains = [s[name]["accuracy"] - max(s[b]["accuracy"] for b in BASELINES) for s in seeds]
    gain = mean_and_std(gains)
    return f"{accuracy[0]:6.1f} ± {accuracy[1]:4.1f} | {gain[0]:+.1f} ± {gain[1]:.1f}"


def summary(results: list[dict]) -> str:
    """Accuracy mean ± std over seeds, and the gain over each seed's best tuned baseline."""
    return summary_table(
        results, result_label, f"{'accuracy %':>14} | points over best baseline", loss_row
    )


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Run the transfer evaluation with the options in ``args``, print its tables, return one
    result per (condition, optimizer) with the per-seed accuracies."""
    results = transfer(
        losses,
        conditions=args.conditions,
        noise=args.noise,
        model=args.model,
        **shared_transfer_options(args),
    )
    print(summary(results))
    return results


def main(argv=None) -> None:
    parser = transfer_parser(__doc__)
    parser.add_argument(
        "--conditions", nargs="+", default=["digits:2", "digits:10", "synthetic:100"]
    )
    parser.add_argument("--noise", type=float, default=0.4)
    add_transfer_main_arguments(parser, steps=100, n_inits=1)
    parser.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    run_transfer_main(parser, argv, run_evaluate)


if __name__ == "__main__":
    main()
