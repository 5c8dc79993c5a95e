"""The sine-regression parts of the ``learnedloss`` command (see `learnedloss.cli`).

- ``learnedloss meta-train sine ...``: meta-train a loss on sine tasks, optionally with
  outlier targets.
- ``learnedloss evaluate sine LOSS [LOSS ...]``: held-out sine tasks against MSE, the c·MSE
  controls and (with outliers) L1 and Huber, each loss at its own tuned lr.
- ``learnedloss demo --meta-train``: meta-train a robust sine loss and compare it with MSE.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from learnedloss.cli.common import (
    add_hidden_argument,
    add_meta_gradient_arguments,
    add_plot_argument,
    add_residual_form_argument,
    add_schedule_arguments,
    add_tuned_lr_arguments,
    evaluate_at_tuned_lrs,
    fraction,
    non_negative_int,
    positive_int,
    recipe_from_args,
    train_and_save,
)
from learnedloss.families.sine.recipe import SineRecipe, evaluate_against_baselines, meta_train_sine
from learnedloss.families.sine.tasks import SineTasks
from learnedloss.loss import LearnedLoss


def add_meta_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `SineRecipe` options, with its values as defaults."""
    defaults = SineRecipe()
    add = parser.add_argument
    add(
        "--outliers",
        dest="outlier_fraction",
        type=fraction,
        default=defaults.outlier_fraction,
        help="fraction of inner-loop targets replaced by noise in [-10, 10] (default: %(default)s)",
    )
    add(
        "--amplitude",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=defaults.amplitude,
        help="range of the sines' amplitudes (default: %(default)s)",
    )
    add(
        "--phase",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=defaults.phase,
        help="range of the sines' phases (default: %(default)s)",
    )
    add(
        "--x-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=defaults.x_range,
        help="range of the inputs x (default: %(default)s)",
    )
    add(
        "--start",
        choices=["mse", "huber", "ml3"],
        default=defaults.start,
        help="mse / huber: a residual network equal to MSE / Huber (delta 1); "
        "ml3: ML3's reference network (default: %(default)s)",
    )
    add_hidden_argument(parser, defaults.hidden)
    add(
        "--inputs",
        nargs="+",
        default=list(defaults.inputs),
        choices=["input", "target", "residual"],
        help="per-element features the loss network reads (default: %(default)s)",
    )
    add_residual_form_argument(parser, defaults.residual_form)
    add(
        "--inner-optimizer",
        choices=["sgd", "adam"],
        default=defaults.inner_optimizer,
        help="the optimizer each task's model is trained with (default: %(default)s)",
    )
    add(
        "--truncate",
        type=non_negative_int,
        default=defaults.truncate,
        help="backpropagate through the last N inner steps (0: all; default: all)",
    )
    add_meta_gradient_arguments(parser, defaults)
    add(
        "--score-on",
        choices=["query", "train"],
        default=defaults.score_on,
        help="score the trained models on query points or on their training points "
        "(default: %(default)s)",
    )
    add(
        "--aggregate",
        choices=["mean", "log-mean"],
        default=defaults.aggregate,
        help="combine task objectives by their mean or the mean of their logs "
        "(default: %(default)s)",
    )
    add_schedule_arguments(parser, defaults)


def recipe(args: argparse.Namespace) -> SineRecipe:
    """The recipe from parsed arguments, whose ``dest`` names are the recipe's fields."""
    parsed = recipe_from_args(SineRecipe, args)
    return dataclasses.replace(parsed, truncate=parsed.truncate or None)


def run_meta_train(args: argparse.Namespace, max_seconds: float | None) -> int:
    return train_and_save(args, recipe(args), meta_train_sine, max_seconds)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The held-out sine tasks and the protocol of ``learnedloss evaluate sine``."""
    add = parser.add_argument
    add(
        "--outliers",
        type=fraction,
        default=0.2,
        help="fraction of training targets replaced by noise (default: %(default)s)",
    )
    add_tuned_lr_arguments(
        parser,
        steps_help="optimizer steps per model (default: 100)",
        lr_range_help="the tuning grid's bounds (default: 1e-3 0.5)",
        reference="MSE",
    )
    add(
        "--model-hidden",
        type=positive_int,
        nargs="+",
        default=[100, 10],
        help="hidden sizes of the models trained (default: %(default)s)",
    )
    add(
        "--model-activation",
        default="relu",
        choices=["relu", "tanh", "elu"],
        help="activation of the models trained (default: %(default)s)",
    )
    add(
        "--optimizer",
        choices=["sgd", "adam"],
        default="sgd",
        help="the optimizer, the same for every loss (default: %(default)s)",
    )
    add_plot_argument(parser, "write the held-out curves of seed 0 to this PNG")


def run_evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
    """Evaluate regression losses on held-out sine tasks (`evaluate_against_baselines`);
    prints the tables and returns one result dict per seed."""
    tasks = SineTasks(
        outlier_fraction=args.outliers, hidden=args.model_hidden, activation=args.model_activation
    )
    return evaluate_at_tuned_lrs(
        args,
        evaluate_against_baselines,
        losses,
        tasks,
        steps=100 if args.steps is None else args.steps,
        default_lr_range=(1e-3, 0.5),
        tuned_label="each loss at its own tuned lr",
        plot_title=f"held-out sine tasks, {args.outliers:.0%} outliers",
        optimizer=args.optimizer,
    )


def run_demo(args: argparse.Namespace) -> int:
    """``learnedloss demo --meta-train``: meta-train a loss on sine tasks with 20% outlier
    targets for ``args.outer_steps`` steps, save it under ``args.out``, compare it with MSE and the
    tuned baselines, and plot the curves to ``args.out/demo.png``."""
    from learnedloss.evaluation.plots import plot
    from learnedloss.families.recipe import save_run

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
