"""The sine-regression family (see `learnedloss.families.registry`).

- ``learnedloss meta-train sine ...``: meta-train a loss on sine tasks (`SineRecipe`),
  optionally with outlier targets.
- ``learnedloss evaluate sine LOSS [LOSS ...]``: held-out sine tasks against MSE, the c·MSE
  controls and (with outliers) L1 and Huber, each loss at its own tuned lr.
- ``learnedloss demo --meta-train``: meta-train a robust sine loss and compare it with MSE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from learnedloss.families.evaluating import (
    add_plot_argument,
    add_tuned_lr_arguments,
    evaluate_at_tuned_lrs,
)
from learnedloss.families.parts import FamilyParts
from learnedloss.families.recipe import meta_train, save_run
from learnedloss.families.sine.recipe import SineRecipe, evaluate_against_baselines
from learnedloss.families.sine.tasks import SineTasks
from learnedloss.loss import LearnedLoss
from learnedloss.validators import fraction, positive_int


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


def evaluate(args: argparse.Namespace, losses: dict[str, LearnedLoss]) -> list[dict]:
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


def meta_training_demo(args: argparse.Namespace) -> int:
    """``learnedloss demo --meta-train``: meta-train a loss on sine tasks with 20% outlier
    targets for ``args.outer_steps`` steps, save it under ``args.out``, compare it with MSE and the
    tuned baselines, and plot the curves to ``args.out/demo.png``."""
    from learnedloss.evaluation.plots import plot

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A short run: a larger outer lr than the recipe's, which is tuned for 2000 steps.
    recipe = SineRecipe(outer_steps=args.outer_steps, meta_lr=3e-3)
    print(
        f"1/2 meta-training a loss on sine tasks whose training targets are "
        f"{recipe.outlier_fraction:.0%} outliers: {recipe.outer_steps} outer steps of "
        f"{recipe.meta_batch_size} tasks x {recipe.inner_steps} inner SGD steps"
    )
    loss, trainer = meta_train(recipe)
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


PARTS = FamilyParts(SineRecipe, add_evaluate_arguments, evaluate, demo=meta_training_demo)
