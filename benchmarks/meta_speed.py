"""Time one meta-training step per task and inner step, vmap path against loop path.

Sizes are ML3's sine reference: model 1-100-10-1 ReLU, loss 2-50-50-1 (no bias, Softplus),
100 points per task, one inner SGD step; a step is the inner loop, the meta-objective and
its backward into the loss. ML3's public reference code took 4.2-5.1 ms per task-step
(1 task, 1 inner step) on the 2-core development CPU.

    python benchmarks/meta_speed.py                      # CPU, 1 thread
    python benchmarks/meta_speed.py --device cuda --batches 1 32 128 1024 4096 --paths vmap

``--family mountain-car`` times the mountain-car recipe instead (a 2-16-1 policy rolled out
for 200 steps per inner SGD step, the recipe's loss over five features); ML3's reference
figure does not apply to it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learnedloss import LearnedLoss, LossConfig
from learnedloss.families.mountain_car.recipe import MountainCarRecipe
from learnedloss.families.sine import SineTasks
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
)

REFERENCE_MS = (4.2, 5.1)


def family_setup(family: str):
    """(tasks, loss, inner lr) for a family: ML3's sine reference or the mountain car."""
    torch.manual_seed(0)
    if family == "sine":
        return SineTasks(), LearnedLoss(LossConfig()), 1e-3
    recipe = MountainCarRecipe()
    return recipe.tasks(), recipe.initial_loss(), recipe.inner_lr


def time_meta_step(
    path: str, n_tasks: int, inner_steps: int, device, repeats: int, family: str = "sine"
) -> float:
    """Median seconds of one meta-step (inner loop + meta-backward) for n_tasks tasks."""
    tasks, loss, inner_lr = family_setup(family)
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(n_tasks, generator).to(device)
    template, params = initial_params(tasks.make_model, n_tasks, generator)
    params = {k: v.to(device) for k, v in params.items()}
    loss = loss.to(device)
    inner = InnerLoop(
        template.to(device),
        learned_loss_apply(loss),
        tasks.meta_objective,
        make_inner_optimizer("sgd", inner_lr),
        path=path,
        loss_arguments=tasks.loss_arguments,
    )
    loss_params = dict(loss.named_parameters())
    times = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        inner.run(params, loss_params, batch, inner_steps).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--paths", nargs="+", default=["vmap", "loop"])
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--family", choices=["sine", "mountain-car"], default="sine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"family={args.family} device={device} threads={torch.get_num_threads()} "
        f"inner_steps={args.inner_steps} torch={torch.__version__}"
    )
    print(
        f"{'meta-batch':>10} | {'path':>5} | {'step (ms)':>10} | {'per task-step (ms)':>18} | "
        f"{'tasks/s':>9} | vs reference {REFERENCE_MS[0]}-{REFERENCE_MS[1]} ms"
    )
    for n_tasks in args.batches:
        for path in args.paths:
            seconds = time_meta_step(
                path, n_tasks, args.inner_steps, device, args.repeats, args.family
            )
            per = seconds / (n_tasks * args.inner_steps) * 1e3
            speedup = f"{REFERENCE_MS[0] / per:.1f}-{REFERENCE_MS[1] / per:.1f}x"
            if args.family != "sine":
                speedup = "n/a"
            print(
                f"{n_tasks:>10} | {path:>5} | {seconds * 1e3:10.2f} | {per:18.3f} | "
                f"{n_tasks / seconds:9.0f} | {speedup}"
            )


if __name__ == "__main__":
    main()
