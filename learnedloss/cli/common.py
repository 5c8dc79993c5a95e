"""Pieces the ``learnedloss`` subcommands share (see `learnedloss.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from learnedloss.config import RESIDUAL_FORMS
from learnedloss.evaluation.plots import plot
from learnedloss.evaluation.protocol import Evaluation
from learnedloss.families.recipe import save_run


def add_schedule_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The meta-training schedule options, with a recipe dataclass's values as defaults:
    ``--outer-steps``, ``--inner-steps``, ``--inner-lr``, ``--meta-batch``, ``--meta-lr``,
    ``--validate-every``, ``--validation-size`` and ``--seed``."""
    add = parser.add_argument
    add("--outer-steps", type=int, default=defaults.outer_steps)
    add("--inner-steps", type=int, default=defaults.inner_steps)
    add("--inner-lr", type=float, default=defaults.inner_lr)
    add("--meta-batch", dest="meta_batch_size", type=int, default=defaults.meta_batch_size)
    add("--meta-lr", type=float, default=defaults.meta_lr)
    add("--validate-every", type=int, default=defaults.validate_every)
    add("--validation-size", type=int, default=defaults.validation_size)
    add("--seed", type=int, default=defaults.seed)


def add_meta_gradient_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """``--meta-gradient``, ``--keep``, ``--es-pairs`` and ``--es-sigma``, with a recipe's
    values as defaults (see `learnedloss.MetaTrainer`)."""
    add = parser.add_argument
    add(
        "--meta-gradient",
        choices=["backprop", "es"],
        default=defaults.meta_gradient,
        help="backprop through the inner loop, or estimate by evolution strategies",
    )
    add(
        "--keep",
        choices=["best", "last"],
        default=defaults.keep,
        help="save the loss with the best meta-validation, or the one after the last step",
    )
    add("--es-pairs", type=int, default=defaults.es_pairs, help="ES perturbation pairs")
    add("--es-sigma", type=float, default=defaults.es_sigma, help="ES perturbation scale")


def add_residual_form_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--residual-form``: how a residual loss network's output ``h`` corrects the
    standard term ``r`` (`LossConfig.residual_form`)."""
    parser.add_argument(
        "--residual-form",
        choices=list(RESIDUAL_FORMS),
        default=default,
        help="how the network corrects the standard term r: add (r + h), scale ((1 + h) r), "
        "weight (w * loss(r), weights w = N softmax(h) averaging 1 over the call) or, for "
        "policy-gradient losses, baseline (-log_prob * (advantage - h))",
    )


def add_shaping_arguments(parser: argparse.ArgumentParser, defaults, unshaped: str) -> None:
    """``--unshaped`` (meta-objective: ``unshaped`` instead of the shaped one) and
    ``--hidden`` (the loss network's hidden sizes), with a recipe's values as defaults."""
    add = parser.add_argument
    add("--unshaped", dest="shaped", action="store_false", help=f"meta-objective: {unshaped}")
    add(
        "--hidden",
        type=int,
        nargs="*",
        default=list(defaults.hidden),
        help="the loss network's hidden sizes (none: a linear map)",
    )


def add_comparison_arguments(parser: argparse.ArgumentParser, lr_help: str, plot_help: str) -> None:
    """The options every ``learnedloss evaluate-*`` command takes: the losses
    (``NAME=PATH_OR_NAME``), ``--lr`` (``lr_help``), ``--seeds``, ``--plot`` (``plot_help``),
    ``--json`` and ``--threads``."""
    add = parser.add_argument
    add("losses", nargs="+", help="NAME=PATH_OR_NAME pairs, or plain paths/bundled names")
    add("--lr", type=float, default=1.0, help=lr_help)
    add("--seeds", type=int, default=1, help="repeat with this many evaluation seeds")
    add("--plot", help=plot_help)
    add("--json", help="write the results to this JSON file")
    add("--threads", type=int, default=1)


def recipe_from_args(recipe_class, args: argparse.Namespace):
    """``recipe_class`` built from the parsed options named like its fields (lists become
    tuples)."""
    values = {f.name: getattr(args, f.name) for f in fields(recipe_class) if hasattr(args, f.name)}
    return recipe_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def run_recipe(args: argparse.Namespace, recipe_class, train, max_seconds: float | None) -> int:
    """``learnedloss meta-train FAMILY``: `train_and_save` the recipe the options give."""
    return train_and_save(args, recipe_from_args(recipe_class, args), train, max_seconds)


def train_and_save(args: argparse.Namespace, recipe, train, max_seconds: float | None) -> int:
    """Meta-train ``recipe`` with ``train(recipe, **run options)``, save the run to
    ``args.out`` and print a summary."""
    loss, trainer = train(
        recipe,
        run_dir=args.run_dir,
        resume=args.resume,
        device=args.device,
        max_seconds=max_seconds,
    )
    out = save_run(args.out, loss, trainer, recipe)
    print_training_summary(trainer, out)
    return 0


def named_losses(specs: list[str]) -> dict:
    """``NAME=PATH_OR_NAME`` pairs (or plain paths and bundled names, named after their last
    path component) loaded as ``{name: LearnedLoss}``."""
    from learnedloss.loss import LearnedLoss

    losses = {}
    for spec in specs:
        name, _, source = spec.rpartition("=")
        losses[name or Path(source).name] = LearnedLoss.from_pretrained(source)
    return losses


def print_training_summary(trainer, out: str | Path) -> None:
    """What ``learnedloss meta-train`` prints when it is done."""
    steps = trainer.history[-1]["step"] if trainer.history else trainer.step
    print(
        f"meta-trained {steps} outer steps on the {trainer.path} path; best "
        f"meta-validation {trainer.best_score:.4g} at step {trainer.best_step}"
    )
    if trainer.keep == "last":
        print(f"kept the loss after the last step ({trainer.step})")
    print(f"saved to {out}")


def evaluate_over_seeds(
    args: argparse.Namespace,
    evaluate_seed: Callable[[int], tuple[Evaluation, Evaluation | None]],
    tuned_label: str,
    plot_title: str,
) -> list[dict]:
    """Run ``evaluate_seed(seed)`` for ``args.seeds`` seeds, print each tuned (and shared-lr)
    table, plot seed 0 to ``args.plot``; return one result dict per seed."""
    results = []
    for seed in range(args.seeds):
        tuned, fixed = evaluate_seed(seed)
        print(f"seed {seed}: {tuned_label}")
        print(tuned.table())
        if fixed is not None:
            print(f"seed {seed}: {', '.join(fixed.scores)} at lr {args.same_lr}")
            print(fixed.table())
        results.append(
            {"tuned": tuned.to_dict(), "same_lr": None if fixed is None else fixed.to_dict()}
        )
        if args.plot and seed == 0:
            plot(tuned, args.plot, title=plot_title)
    return results


def evaluate_at_tuned_lrs(
    args: argparse.Namespace,
    evaluate_fn,
    loss,
    tasks,
    *,
    steps: int,
    default_lr_range: tuple[float, float],
    tuned_label: str,
    plot_title: str,
) -> list[dict]:
    """`evaluate_over_seeds` with ``evaluate_fn(loss, tasks, steps=..., n_tasks=...,
    n_inits=..., lr_range=..., tune_tasks=..., same_lr=..., seed=...)`` (the
    ``evaluate_*`` functions of the recipes), its settings from ``learnedloss evaluate``'s
    options."""
    lr_range = tuple(args.lr_range) if args.lr_range else default_lr_range
    return evaluate_over_seeds(
        args,
        lambda seed: evaluate_fn(
            loss,
            tasks,
            steps=steps,
            n_tasks=args.n_tasks,
            n_inits=args.n_inits,
            lr_range=lr_range,
            tune_tasks=args.tune_tasks,
            same_lr=args.same_lr,
            seed=seed,
        ),
        tuned_label,
        plot_title,
    )
