"""Inner-loop speed: today's vmap path against the batched engine, side by side.

For each model size, task count and mode, both paths train the same stacked models with the
same learned loss for ``--steps`` Adam steps and score them; the table gives task-steps per
second, the speed-up, and GFLOP/s with the FLOP estimate it rests on: the model's arithmetic
in one inner step, 3 × (forward FLOPs per row) × rows (forward, and a backward of twice its
cost). The loss network's arithmetic and, in backprop mode, the meta-backward are not
counted, so GFLOP/s understate the work done.

Sizes (synthetic data of the families' shapes):
- ``robust``: the robust-regression family's 13-w-w-1 ReLU MLP on 96 rows, a regression loss;
- ``noisy``: the noisy-labels family's 13-w-3 ReLU MLP on 96 rows, a classification loss;
- ``digits-cnn``: the digits families' small CNN (5-way, 50 images of 8x8), classification.

``--loss standard`` trains with MSE / cross-entropy instead of a (16, 16) learned loss, to
show the engine's own cost apart from the learned loss's per-call cost (backprop mode then
has no meta-gradient to take: it is left out).

Modes: ``backprop`` (differentiable inner loop and the meta-backward) and ``es`` (no graph,
as evolution strategies and population search run it).

    python benchmarks/engine.py
    python benchmarks/engine.py --quick
    python benchmarks/engine.py --tasks 8 64 --widths 32 --sizes robust --modes es
    python benchmarks/engine.py --outer-only --repeats 1
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from learnedloss import LearnedLoss, LossConfig
from learnedloss.families.digits.tasks import SmallCNN
from learnedloss.meta.engine import BatchedInnerLoop
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
    plain_objective,
)
from learnedloss.tasks.base import TaskBatch, mse_objective
from learnedloss.tasks.models import mlp

ROWS = 96
DIGITS_WAYS, DIGITS_ROWS = 5, 50
LR = 1e-2


def size_setup(size: str, width: int):
    """``(make_model, in_features, classes or None, rows, label)`` of a size."""
    if size == "robust":
        return lambda: mlp((13, width, width, 1)), 13, None, ROWS, f"robust 13-{width}-{width}-1"
    if size == "noisy":
        return lambda: mlp((13, width, 3)), 13, 3, ROWS, f"noisy 13-{width}-3"
    return lambda: SmallCNN(DIGITS_WAYS), 64, DIGITS_WAYS, DIGITS_ROWS, "digits CNN"


def synthetic_batch(tasks: int, features: int, classes, rows: int, device) -> TaskBatch:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tasks, 2 * rows, features, generator=generator)
    if classes is None:
        y = torch.randn(tasks, 2 * rows, 1, generator=generator)
    else:
        y = torch.randint(0, classes, (tasks, 2 * rows), generator=generator)
    return TaskBatch(x[:, :rows], y[:, :rows], x[:, rows:], y[:, rows:]).to(device)


def make_paths(make_model, classes, device, loss_name: str):
    torch.manual_seed(0)
    kind = "regression" if classes is None else "classification"
    if loss_name == "learned":
        loss = LearnedLoss(LossConfig(kind=kind, hidden_sizes=(16, 16))).to(device)
    else:
        loss = torch.nn.MSELoss() if classes is None else torch.nn.CrossEntropyLoss()
    objective = plain_objective(
        mse_objective if classes is None else torch.nn.functional.cross_entropy
    )
    with torch.random.fork_rng(devices=[]):
        template = make_model().to(device)
    vmapped = InnerLoop(
        template, learned_loss_apply(loss), objective, make_inner_optimizer("adam", LR)
    )
    engine = BatchedInnerLoop(template, loss, objective, "adam", lr=LR)
    return loss, {"vmap": vmapped, "engine": engine}


def seconds_per_call(inner, loss, params, batch, steps: int, mode: str, repeats: int, sync):
    """The best of ``repeats`` timed calls (after one warm-up call)."""
    loss_params = dict(loss.named_parameters())

    def call():
        if mode == "es":
            with torch.no_grad():
                inner.run(params, {k: v.detach() for k, v in loss_params.items()}, batch, steps)
        else:
            inner.run(params, loss_params, batch, steps).mean().backward()
        sync()

    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def rows_of_table(args, device: str):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for size in args.sizes:
        for width in args.widths if size != "digits-cnn" else [0]:
            make_model, features, classes, rows, label = size_setup(size, width)
            loss, paths = make_paths(make_model, classes, device, args.loss)
            flops = 3 * paths["engine"].plan((features,)).forward_flops_per_row() * rows
            for tasks in args.tasks:
                batch = synthetic_batch(tasks, features, classes, rows, device)
                generator = torch.Generator().manual_seed(1)
                _, params = initial_params(make_model, tasks, generator)
                params = {k: v.to(device) for k, v in params.items()}
                for mode in args.modes:
                    if mode == "backprop" and args.loss == "standard":
                        continue
                    rates = {}
                    for name, inner in paths.items():
                        if name == "vmap" and tasks > args.vmap_max_tasks:
                            continue
                        seconds = seconds_per_call(
                            inner, loss, params, batch, args.steps, mode, args.repeats, sync
                        )
                        rates[name] = tasks * args.steps / seconds
                    yield device, label, tasks, mode, flops, rates


def print_row(device, label, tasks, mode, flops, rates) -> None:
    def cell(name):
        if name not in rates:
            return f"{'-':>11} {'-':>7}"
        return f"{rates[name]:>11,.0f} {rates[name] * flops / 1e9:>7.2f}"

    speedup = f"{rates['engine'] / rates['vmap']:.1f}x" if "vmap" in rates else "-"
    print(
        f"{device:<5} {label:<20} {tasks:>5} {mode:<8} {flops / 1e6:>9.3f} "
        f"{cell('vmap')} {cell('engine')} {speedup:>8}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[8, 64, 1024])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--sizes", nargs="+", default=["robust", "noisy", "digits-cnn"])
    parser.add_argument("--modes", nargs="+", default=["backprop", "es"])
    parser.add_argument(
        "--loss",
        choices=["learned", "standard"],
        default="learned",
        help="a (16, 16) LearnedLoss, or MSE / cross-entropy (the engine's own overhead)",
    )
    parser.add_argument("--steps", type=int, default=10, help="inner Adam steps per call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
    parser.add_argument("--vmap-max-tasks", type=int, default=1024, help="skip vmap above")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    parser.add_argument(
        "--outer-only",
        action="store_true",
        help="only the outer steps of the robust-regression recipe's own loss",
    )
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.widths, args.steps, args.repeats = [8, 64], [32], 2, 1
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.set_num_threads(1)
    if not args.outer_only:
        print(
            f"{'dev':<5} {'model':<20} {'tasks':>5} {'mode':<8} {'MFLOP/ts':>9} "
            f"{'vmap ts/s':>11} {'GFLOP/s':>7} {'engine ts/s':>11} {'GFLOP/s':>7} {'speedup':>8}"
        )
        for device in devices:
            for row in rows_of_table(args, device):
                print_row(*row)
    outer_step_rows(10 if args.quick else 100, args.repeats, recipe_only=args.outer_only)


def outer_step_rows(inner_steps: int, repeats: int, recipe_only: bool = False) -> None:
    """Seconds per MetaTrainer outer step at the robust-regression size (8 tasks, Adam), on
    path="vmap" and path="engine": with a 9-knot grid loss (ES with 8 pairs, CMA-ES with a
    population of 16), and with the robust-regression recipe's own loss, its scale-free and
    batch-dependent (16, 16) MLP (ES with 4 pairs, as the recipe says, and with 8)."""
    from learnedloss.meta import CMAES, EvolutionStrategies

    print(f"\nouter steps, robust-regression, 8 tasks, {inner_steps} inner Adam steps, cpu")
    print(f"{'loss, estimator':<26} {'vmap s/step':>12} {'engine s/step':>14} {'speedup':>8}")
    rows = [
        ("recipe MLP, ES 4 pairs", recipe_trainer, EvolutionStrategies(pairs=4, sigma=0.05)),
        ("recipe MLP, ES 8 pairs", recipe_trainer, EvolutionStrategies(pairs=8, sigma=0.05)),
    ]
    if not recipe_only:
        rows[:0] = [
            ("9-knot grid, ES 8 pairs", grid_trainer, EvolutionStrategies(pairs=8, sigma=0.05)),
            ("9-knot grid, CMA-ES 16", grid_trainer, CMAES(population=16, sigma=0.1)),
        ]
    for label, make_trainer, estimator in rows:
        seconds = {}
        for path in ("vmap", "engine"):
            trainer = make_trainer(estimator, path, inner_steps)
            assert trainer.path == path, trainer.path_reason
            seconds[path] = seconds_per_outer_step(trainer, repeats)
        speedup = seconds["vmap"] / seconds["engine"]
        print(f"{label:<26} {seconds['vmap']:>12.3f} {seconds['engine']:>14.3f} {speedup:>7.1f}x")


def seconds_per_outer_step(trainer, repeats: int) -> float:
    """The best of ``repeats`` timed outer steps, after one warm-up step."""
    trainer.fit(1)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.fit(trainer.step + 1)
        best = min(best, time.perf_counter() - start)
    return best


def grid_trainer(estimator, path: str, inner_steps: int):
    """A trainer of a 9-knot grid loss (its knot values only) on robust-regression tasks."""
    from learnedloss import MetaTrainer
    from learnedloss.families.robust_regression.tasks import RobustRegressionTasks
    from learnedloss.starts import grid_start_config

    return MetaTrainer(
        LearnedLoss(grid_start_config("mse", knots=(9,))),
        RobustRegressionTasks(),
        inner_steps=inner_steps,
        inner_optimizer="adam",
        inner_lr=LR,
        meta_batch_size=8,
        validate_every=0,
        meta_parameters=("network.values",),
        meta_gradient=estimator,
        path=path,
        progress=False,
    )


def recipe_trainer(estimator, path: str, inner_steps: int):
    """A trainer of `RobustRegressionRecipe`'s own loss, tasks and settings (no validation)."""
    from learnedloss import MetaTrainer
    from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe

    recipe = RobustRegressionRecipe(inner_steps=inner_steps)
    arguments = recipe.settings.trainer_arguments()
    arguments.update(meta_gradient=estimator, path=path, validate_every=0, progress=False)
    return MetaTrainer(recipe.initial_loss(), recipe.tasks(), **arguments)


if __name__ == "__main__":
    main()
