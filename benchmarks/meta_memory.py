"""Peak memory of one meta-step against the number of inner steps, for the memory knobs.

Each configuration runs in a fresh subprocess. On CPU it reports the peak resident set size
above a baseline process that builds the same tasks and models but takes no meta-step; on
CUDA it reports torch.cuda.max_memory_allocated.

    python benchmarks/meta_memory.py                           # CPU, meta-batch 32
    python benchmarks/meta_memory.py --device cuda --meta-batch 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
from learnedloss import LearnedLoss, LossConfig
from learnedloss.meta.inner import (InnerLoop, initial_params, learned_loss_apply,
                                    make_inner_optimizer)
from learnedloss.families.sine import SineTasks
steps, truncate, checkpointed, n_tasks, device, run = json.loads(sys.argv[1])
torch.set_num_threads(1)
device = torch.device(device)
tasks = SineTasks()
generator = torch.Generator().manual_seed(0)
batch = tasks.sample(n_tasks, generator).to(device)
template, params = initial_params(tasks.make_model, n_tasks, generator)
params = {k: v.to(device) for k, v in params.items()}
loss = LearnedLoss(LossConfig()).to(device)
inner = InnerLoop(template.to(device), learned_loss_apply(loss), tasks.meta_objective,
                  make_inner_optimizer("sgd", 1e-3))
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
if run:
    inner.run(params, dict(loss.named_parameters()), batch, steps, truncate=truncate,
              checkpointed=checkpointed).mean().backward()
if device.type == "cuda":
    print(torch.cuda.max_memory_allocated() / 2**20)
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_mib(steps, truncate, checkpointed, n_tasks, device, run=True) -> float:
    arg = json.dumps([steps, truncate, checkpointed, n_tasks, device, run])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, arg], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 20, 100])
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--truncate", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    baseline = peak_mib(1, None, False, args.meta_batch, args.device, run=False)
    unit = "MiB above baseline" if args.device == "cpu" else "MiB allocated"
    print(
        f"device={args.device} meta-batch={args.meta_batch} (model 1-100-10-1, loss "
        f"2-50-50-1, 100 points); peak {unit}; baseline {baseline:.0f} MiB"
    )
    configs = {
        "full": (None, False),
        f"truncate={args.truncate}": (args.truncate, False),
        "checkpointed": (None, True),
        f"truncate={args.truncate}+ckpt": (args.truncate, True),
    }
    print(f"{'inner steps':>11} | " + " | ".join(f"{name:>18}" for name in configs))
    for steps in args.steps:
        cells = []
        for truncate, checkpointed in configs.values():
            peak = peak_mib(steps, truncate, checkpointed, args.meta_batch, args.device)
            cells.append(peak - (baseline if args.device == "cpu" else 0.0))
        print(f"{steps:>11} | " + " | ".join(f"{c:18.1f}" for c in cells))


if __name__ == "__main__":
    main()
