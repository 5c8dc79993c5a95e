"""The ``learnedloss`` command.

Subcommands:

- ``learnedloss list``: the losses bundled with this installation.
- ``learnedloss info NAME_OR_PATH``: a loss's config and model-card summary.
- ``learnedloss meta-train sine ...``: meta-train a loss on sine regression tasks.
- ``learnedloss meta-train shaped-sine ...``: meta-train a frequency-recovery loss, shaped
  with the true frequency (or ``--unshaped``).
- ``learnedloss meta-train digits ...``: meta-train a drop-in for ``nn.CrossEntropyLoss`` on
  few-shot digits tasks, optionally with noisy labels.
- ``learnedloss meta-train policy-gradient ...``: meta-train a drop-in for the REINFORCE
  surrogate on point-mass goals (model-free RL).
- ``learnedloss evaluate NAME_OR_PATH ...``: score a loss against tuned baselines (sine tasks
  for regression losses, digits tasks for classification losses, point-mass goals for
  policy-gradient losses).
- ``learnedloss evaluate-shaped LOSS ...``: frequency recovery against MSE, and landscapes.
- ``learnedloss meta-train mountain-car ...``: meta-train a mountain-car loss, shaped with a
  waypoint (or ``--unshaped``).
- ``learnedloss evaluate-mountain-car LOSS ...``: success rates against the task cost, and
  trajectories.
- ``learnedloss meta-train reacher ...``: meta-train a loss for optimizing reacher policies
  through a learned dynamics model (model-based RL, MuJoCo).
- ``learnedloss evaluate-reacher LOSS ...``: final distances in MuJoCo against the task loss.
- ``learnedloss demo``: meta-train a robust sine loss and compare it with MSE, in minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from learnedloss import hub
from learnedloss._version import __version__
from learnedloss.bundled import bundled_names
from learnedloss.card import card_summary
from learnedloss.cli.common import (
    add_meta_gradient_arguments,
    add_residual_form_argument,
    add_schedule_arguments,
    evaluate_over_seeds,
    recipe_from_args,
    train_and_save,
)
from learnedloss.errors import CheckpointError, ConfigError
from learnedloss.evaluation.plots import plot
from learnedloss.evaluation.protocol import mean_and_std
from learnedloss.families.digits import cli as cli_digits
from learnedloss.families.mountain_car import cli as cli_control
from learnedloss.families.policy_gradient import cli as cli_policy_gradient
from learnedloss.families.reacher import cli as cli_model_based
from learnedloss.families.recipe import save_run
from learnedloss.families.shaped_sine import cli as cli_shaping
from learnedloss.families.sine.recipe import SineRecipe, evaluate_against_baselines, meta_train_sine
from learnedloss.families.sine.tasks import SineTasks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learnedloss", description="Learned loss functions for PyTorch (ML3)."
    )
    parser.add_argument("--version", action="version", version=f"learnedloss {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list the losses bundled with this installation")

    info = commands.add_parser("info", help="print a loss's config and model card summary")
    info.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
    info.add_argument("--revision", help="Hub branch, tag or commit")
    info.add_argument("--cache-dir", help="Hub cache directory")
    info.add_argument(
        "--local-files-only", action="store_true", help="use the local Hub cache only"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser("meta-train", help="meta-train a loss on a task family")
    families = train.add_subparsers(dest="family", required=True, metavar="FAMILY")
    sine = families.add_parser("sine", help="sine regression (optionally corrupted targets)")
    _add_training_run_arguments(sine)
    _add_recipe_arguments(sine)
    shaped = families.add_parser(
        "shaped-sine", help="frequency recovery, shaped with the true frequency (ML3 sec. V-C)"
    )
    _add_training_run_arguments(shaped)
    cli_shaping.add_meta_train_arguments(shaped)
    car = families.add_parser(
        "mountain-car", help="mountain car, shaped with a waypoint (ML3 sec. V-C)"
    )
    _add_training_run_arguments(car)
    cli_control.add_meta_train_arguments(car)
    digits = families.add_parser(
        "digits", help="few-shot classification of the bundled digits (drop-in for CE)"
    )
    _add_training_run_arguments(digits)
    cli_digits.add_meta_train_arguments(digits)
    pg = families.add_parser(
        "policy-gradient", help="model-free RL: a drop-in for REINFORCE on point-mass goals"
    )
    _add_training_run_arguments(pg)
    cli_policy_gradient.add_meta_train_arguments(pg)
    reacher = families.add_parser(
        "reacher", help="model-based RL: MuJoCo's reacher through a learned dynamics model"
    )
    _add_training_run_arguments(reacher)
    cli_model_based.add_meta_train_arguments(reacher)

    ev = commands.add_parser("evaluate", help="score a loss on held-out tasks vs baselines")
    ev.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
    _add_evaluation_arguments(ev)

    ev_shaped = commands.add_parser(
        "evaluate-shaped", help="frequency recovery of shaped-sine losses against MSE"
    )
    cli_shaping.add_evaluate_arguments(ev_shaped)
    ev_car = commands.add_parser(
        "evaluate-mountain-car", help="mountain-car success of learned losses vs the task cost"
    )
    cli_control.add_evaluate_arguments(ev_car)
    ev_reacher = commands.add_parser(
        "evaluate-reacher", help="reacher losses in MuJoCo vs the task loss (model-based RL)"
    )
    cli_model_based.add_evaluate_arguments(ev_reacher)

    demo = commands.add_parser(
        "demo", help="meta-train a robust sine loss, compare it with MSE and tuned baselines"
    )
    demo.add_argument("--out", default="learnedloss-demo", help="output directory")
    demo.add_argument("--outer-steps", type=int, default=400)
    demo.add_argument("--threads", type=int, default=1)
    return parser


def _add_training_run_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--out", required=True, help="directory to save the loss in")
    add("--run-dir", help="trainer checkpoints (for --resume)")
    add("--resume", action="store_true", help="continue from --run-dir")
    add(
        "--max-minutes",
        type=float,
        help="wall-clock budget: stop early, save the best loss so far (resumable)",
    )
    add("--device", default="cpu")
    add("--threads", type=int, default=1, help="torch intra-op threads")


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SineRecipe()
    add = parser.add_argument
    add(
        "--outliers",
        dest="outlier_fraction",
        type=float,
        default=defaults.outlier_fraction,
        help="fraction of inner-loop targets replaced by noise in [-10, 10]",
    )
    add("--amplitude", type=float, nargs=2, default=defaults.amplitude)
    add("--phase", type=float, nargs=2, default=defaults.phase)
    add("--x-range", type=float, nargs=2, default=defaults.x_range)
    add(
        "--start",
        choices=["mse", "huber", "ml3"],
        default=defaults.start,
        help="mse / huber: a residual network equal to MSE / Huber (delta 1); "
        "ml3: ML3's reference network",
    )
    add("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    add(
        "--inputs",
        nargs="+",
        default=list(defaults.inputs),
        choices=["input", "target", "residual"],
        help="per-element features the loss network reads",
    )
    add_residual_form_argument(parser, defaults.residual_form)
    add("--inner-optimizer", choices=["sgd", "adam"], default=defaults.inner_optimizer)
    add(
        "--truncate",
        type=int,
        default=defaults.truncate,
        help="backpropagate through the last N inner steps (0: all)",
    )
    add_meta_gradient_arguments(parser, defaults)
    add("--score-on", choices=["query", "train"], default=defaults.score_on)
    add(
        "--aggregate",
        choices=["mean", "log-mean"],
        default=defaults.aggregate,
        help="combine task objectives by their mean or the mean of their logs",
    )
    add_schedule_arguments(parser, defaults)


def _add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--outliers", type=float, default=0.2, help="sine losses: outlier fraction")
    add(
        "--steps",
        type=int,
        help="optimizer steps per model (default: 100 for sine, the meta-training horizon "
        "for classification and policy gradient)",
    )
    add("--n-tasks", type=int, default=100)
    add("--n-inits", type=int, default=3)
    add("--tune-tasks", type=int, default=32)
    add(
        "--lr-range",
        type=float,
        nargs=2,
        help="the tuning grid's bounds (default: 1e-3 0.5 for sine, 0.05 3.2 for "
        "classification, 1e-3 2 for policy gradient)",
    )
    add("--same-lr", type=float, help="also compare with MSE at this one learning rate")
    add("--model-hidden", type=int, nargs="+", default=[100, 10])
    add("--model-activation", default="relu", choices=["relu", "tanh", "elu"])
    add("--optimizer", choices=["sgd", "adam"], default="sgd", help="the same for every loss")
    add("--seeds", type=int, default=1, help="repeat with this many evaluation seeds")
    add("--plot", help="write the held-out curves to this PNG")
    add("--json", help="write the scores to this JSON file")
    add("--threads", type=int, default=1)
    cli_digits.add_evaluate_arguments(parser)


def describe(name_or_path: str, **resolve_kwargs: Any) -> dict[str, Any]:
    """Everything `learnedloss info` prints, as a dict. Reads and validates the checkpoint."""
    directory = hub.resolve_checkpoint_dir(name_or_path, **resolve_kwargs)
    checkpoint = hub.read_checkpoint(directory)
    n_params = sum(t.numel() for t in checkpoint.tensors.values())
    summary = card_summary(checkpoint.card) if checkpoint.card is not None else None
    return {
        "name": name_or_path,
        "directory": str(directory),
        "config": checkpoint.config.to_dict(),
        "parameters": n_params,
        "metadata": checkpoint.metadata,
        "model_card": summary,
    }


def _print_info(info: dict[str, Any]) -> None:
    config = info["config"]
    print(f"{info['name']}  ({info['directory']})")
    print(f"  kind:              {config['kind']}")
    print(f"  inputs:            {', '.join(config['inputs'])} (per element)")
    print(f"  hidden sizes:      {config['hidden_sizes']}")
    print(f"  activation:        {config['activation']} -> {config['output_activation']}")
    print(f"  bias:              {config['bias']}")
    form = f" ({config['residual_form']} form)" if "residual_form" in config else ""
    print(f"  residual:          {config['residual']}{form}")
    print(f"  parameters:        {info['parameters']}")
    for section in ("training", "results"):
        values = info["metadata"].get(section)
        if values:
            print(f"  {section}:")
            for key, value in values.items():
                print(f"    {key}: {value if isinstance(value, str) else json.dumps(value)}")
    card = info["model_card"]
    if card is None:
        print("  model card:        none")
    else:
        print(f"  model card:        {card['title']}")
        print(f"    tags: {', '.join(card['card_data'].get('tags', []))}")
        if card["description"]:
            print(f"    {card['description']}")


def _recipe(args: argparse.Namespace) -> SineRecipe:
    """The recipe from parsed arguments, whose ``dest`` names are the recipe's fields."""
    recipe = recipe_from_args(SineRecipe, args)
    return dataclasses.replace(recipe, truncate=recipe.truncate or None)


def _meta_train(args: argparse.Namespace) -> int:
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    if args.family == "shaped-sine":
        return cli_shaping.run_meta_train(args, max_seconds)
    if args.family == "digits":
        return cli_digits.run_meta_train(args, max_seconds)
    if args.family == "mountain-car":
        return cli_control.run_meta_train(args, max_seconds)
    if args.family == "policy-gradient":
        return cli_policy_gradient.run_meta_train(args, max_seconds)
    if args.family == "reacher":
        return cli_model_based.run_meta_train(args, max_seconds)
    return train_and_save(args, _recipe(args), meta_train_sine, max_seconds)


def _evaluate(args: argparse.Namespace) -> int:
    from learnedloss.loss import LearnedLoss

    loss = LearnedLoss.from_pretrained(args.name_or_path)
    if loss.config.kind == "classification":
        results = cli_digits.run_evaluate(args, loss)
    elif loss.config.kind == "policy_gradient":
        results = cli_policy_gradient.run_evaluate(args, loss)
    else:
        results = _evaluate_regression(args, loss)
    if args.seeds > 1:
        print(summarize_seeds([r["tuned"] for r in results]))
        print(summarize_curves([r["tuned"] for r in results]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _evaluate_regression(args: argparse.Namespace, loss) -> list[dict]:
    tasks = SineTasks(
        outlier_fraction=args.outliers, hidden=args.model_hidden, activation=args.model_activation
    )
    return evaluate_over_seeds(
        args,
        lambda seed: evaluate_against_baselines(
            loss,
            tasks,
            name="learned",
            steps=100 if args.steps is None else args.steps,
            n_tasks=args.n_tasks,
            n_inits=args.n_inits,
            lr_range=tuple(args.lr_range or (1e-3, 0.5)),
            tune_tasks=args.tune_tasks,
            same_lr=args.same_lr,
            seed=seed,
            optimizer=args.optimizer,
        ),
        "each loss at its own tuned lr",
        f"held-out sine tasks, {args.outliers:.0%} outliers",
    )


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


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A short run: a larger outer lr than the recipe's, which is tuned for 2000 steps.
    recipe = SineRecipe(outer_steps=args.outer_steps, meta_lr=3e-3)
    print(
        f"1/2 meta-training a loss on sine tasks whose training targets are "
        f"{recipe.outlier_fraction:.0%} outliers: {recipe.outer_steps} outer steps of "
        f"{recipe.meta_batch_size} tasks x {recipe.inner_steps} inner SGD steps"
    )
    loss, trainer = meta_train_sine(recipe)
    save_run(out / "loss", loss, trainer, recipe)
    steps = 100
    print(
        f"2/2 training fresh models for {steps} steps on 50 held-out tasks x 2 inits with "
        "each loss, each at its own lr tuned on 16 other tasks"
    )
    tuned, fixed = evaluate_against_baselines(
        loss,
        recipe.tasks(),
        name="learned",
        steps=steps,
        n_tasks=50,
        n_inits=2,
        tune_tasks=16,
        same_lr=recipe.inner_lr,
    )
    print(f"\nevery loss at the meta-training lr {recipe.inner_lr}:")
    print(fixed.table())
    print(
        "\neach loss at its own tuned lr (the honest comparison; c x MSE rows are the noise band):"
    )
    print(tuned.table())
    png = plot(
        tuned,
        out / "demo.png",
        history=trainer.history,
        names=["MSE", "learned", "Huber d=1", "L1"],
        title="held-out sine tasks, 20% outlier targets",
    )
    print(f"\nwrote {png} and the loss to {out / 'loss'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.command == "meta-train":
        return _meta_train(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "evaluate-shaped":
        return cli_shaping.run_evaluate(args)
    if args.command == "evaluate-mountain-car":
        return cli_control.run_evaluate(args)
    if args.command == "evaluate-reacher":
        return cli_model_based.run_evaluate(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "list":
        for name in bundled_names():
            print(name)
        return 0
    try:
        info = describe(
            args.name_or_path,
            revision=args.revision,
            cache_dir=args.cache_dir,
            local_files_only=args.local_files_only,
        )
    except (FileNotFoundError, ConfigError, CheckpointError) as err:
        print(f"learnedloss: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
