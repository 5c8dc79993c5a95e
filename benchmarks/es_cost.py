"""Time and peak memory of one outer step: exact backprop against evolution strategies.

Sizes are those of the bundled `sine-outliers-40` recipe: 32 sine tasks with 40% outliers,
1-100-10-1 ReLU models trained 100 SGD steps at lr 0.2, a (16, 16) weighted-Huber loss.
Each configuration runs in a fresh subprocess; memory is the peak resident set size above a
process that builds the same trainer and takes no step (CPU only).

    python benchmarks/es_cost.py
    python benchmarks/es_cost.py --pairs 4 12 32 --meta-batch 32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys, time, torch
from learnedloss import Backprop, EvolutionStrategies, LearnedLoss, MetaTrainer
from learnedloss.starts import huber_start_config
from learnedloss.families.sine import SineTasks
mode, pairs, n_tasks, inner_steps, repeats, run = json.loads(sys.argv[1])
torch.set_num_threads(1)
torch.manual_seed(0)
loss = LearnedLoss(huber_start_config((16, 16), residual_form="weight"))
trainer = MetaTrainer(loss, SineTasks(outlier_fraction=0.4), inner_steps=inner_steps,
                      inner_lr=0.2, meta_batch_size=n_tasks, aggregate="log-mean",
                      validate_every=0, progress=False,
                      meta_gradient=Backprop() if mode == "backprop"
                      else EvolutionStrategies(pairs=max(pairs, 1)), max_skips=10**6)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
if run:
    for i in range(repeats + 1):
        start = time.perf_counter()
        trainer.fit(i + 1)
        if i:
            times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": statistics.median(times) if times else 0.0,
                  "peak_kib": peak, "before_kib": before}))
"""


def measure(mode: str, pairs: int, n_tasks: int, inner_steps: int, repeats: int, run=True):
    args = json.dumps([mode, pairs, n_tasks, inner_steps, repeats, run])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[4, 12])
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    common = (args.meta_batch, args.inner_steps, args.repeats)
    baseline = measure("backprop", 0, *common, run=False)["peak_kib"]
    print(f"meta-batch {args.meta_batch}, {args.inner_steps} inner steps, 1 thread, CPU")
    print(f"{'meta-gradient':>22} | {'outer step (s)':>14} | {'peak memory (MiB)':>17}")
    rows = [("backprop", 0)] + [("es", p) for p in args.pairs]
    for mode, pairs in rows:
        result = measure(mode, pairs, *common)
        label = "backprop (exact)" if mode == "backprop" else f"ES, {pairs} pairs"
        mib = (result["peak_kib"] - baseline) / 1024
        print(f"{label:>22} | {result['seconds']:14.2f} | {mib:17.0f}")


if __name__ == "__main__":
    main()
