"""Time data-parallel meta-training: one outer step and task-steps/s for 1, 2, ... processes.

Each row starts ``torchrun --standalone --nproc-per-node N`` on this file; every process runs a
`MetaTrainer` (ML3's sine reference sizes: model 1-100-10-1 ReLU, loss 2-50-50-1, 100 points)
with the same meta-batch, split over the N ranks, and rank 0 times its outer steps (the
whole step: sampling, inner loop, meta-backward, all-reduce, meta-optimizer).

    python benchmarks/distributed_scaling.py                                  # CPU: 1 and 2
    python benchmarks/distributed_scaling.py --meta-batch 64 --inner-steps 5
    python benchmarks/distributed_scaling.py --estimator es --pairs 8
    python benchmarks/distributed_scaling.py --device cuda --processes 1 2 4 8 --meta-batch 1024

Task-steps/s counts inner-loop steps of one task: meta-batch x inner steps per outer step
(x 2 pairs for evolution strategies). On CUDA the processes share the GPUs round-robin
(``cuda:LOCAL_RANK mod count``; gloo when a GPU holds several ranks, else nccl). "sampling"
is the host-side part every rank repeats in full: drawing the meta-batch's tasks and
initializing its models (every rank draws them all, so that N ranks compute the meta-gradient
one process does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--estimator", choices=["backprop", "es"], default="backprop")
    parser.add_argument("--pairs", type=int, default=8, help="ES pairs (with --estimator es)")
    parser.add_argument("--steps", type=int, default=20, help="timed outer steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--worker", metavar="RESULT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args: argparse.Namespace) -> None:
    from learnedloss import LearnedLoss, LossConfig, MetaTrainer
    from learnedloss.families.sine import SineTasks
    from learnedloss.meta import EvolutionStrategies
    from learnedloss.meta.inner import initial_params

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tasks = SineTasks()
    meta_gradient = (
        EvolutionStrategies(pairs=args.pairs, sigma=0.05) if args.estimator == "es" else "backprop"
    )
    ends: list[float] = []

    def clock(trainer, record):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        ends.append(time.perf_counter())

    trainer = MetaTrainer(
        LearnedLoss(LossConfig()),  # ML3's reference network, 2-50-50-1
        tasks,
        inner_steps=args.inner_steps,
        meta_batch_size=args.meta_batch,
        meta_gradient=meta_gradient,
        validate_every=0,
        device=args.device,
        callbacks=[clock],
        progress=False,
        cuda_graph=args.cuda_graph,
    )
    start = time.perf_counter()
    trainer.fit(args.warmup + args.steps)
    steps = [b - a for a, b in zip([start, *ends], ends, strict=False)][args.warmup :]
    if trainer.rank != 0:
        return
    generator = torch.Generator().manual_seed(1)
    sampling = []
    for _ in range(5):
        begin = time.perf_counter()
        tasks.sample(args.meta_batch, generator)
        initial_params(tasks.make_model, args.meta_batch, generator)
        sampling.append(time.perf_counter() - begin)
    Path(args.worker).write_text(
        json.dumps(
            {
                "world_size": trainer.world_size,
                "step": statistics.median(steps),
                "sampling": statistics.median(sampling),
                "device": str(trainer.device),
            }
        )
    )


def run(args: argparse.Namespace, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            __file__,
            *_without_processes(sys.argv[1:]),
            "--worker",
            str(result),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{processes} processes failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return json.loads(result.read_text())


def _without_processes(argv: list[str]) -> list[str]:
    kept, skipping = [], False
    for item in argv:
        if item.startswith("--processes"):
            skipping = "=" not in item
            continue
        if skipping and not item.startswith("--"):
            continue
        skipping = False
        kept.append(item)
    return kept


def main() -> None:
    args = arguments()
    if args.worker:
        worker(args)
        return
    per_step = args.meta_batch * args.inner_steps
    if args.estimator == "es":
        per_step *= 2 * args.pairs
    print(
        f"device={args.device} estimator={args.estimator} meta-batch={args.meta_batch} "
        f"inner-steps={args.inner_steps} threads/process={args.threads} "
        f"cuda-graph={args.cuda_graph} torch={torch.__version__} cpus={os.cpu_count()}"
    )
    print(
        f"{'processes':>9} | {'step (ms)':>9} | {'speed-up':>8} | {'task-steps/s':>12} | "
        f"{'sampling (ms)':>13}"
    )
    first = None
    for processes in args.processes:
        result = run(args, processes)
        first = first or result["step"]
        print(
            f"{processes:>9} | {result['step'] * 1e3:9.2f} | {first / result['step']:7.2f}x | "
            f"{per_step / result['step']:12.0f} | {result['sampling'] * 1e3:13.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
