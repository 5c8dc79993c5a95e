"""Time one forward+backward of a LearnedLoss against nn.MSELoss and print a table.

    python benchmarks/loss_overhead.py                      # CPU, 1 thread, default sizes
    python benchmarks/loss_overhead.py --device cuda --sizes 4096x1 256x1000 65536x1000

Each cell is the median of `--repeats` timed calls after `--warmup` untimed ones. Ratios are
measured in the same run; absolute times drift on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from learnedloss import LearnedLoss


def time_forward_backward(loss_fn, shape, device, dtype, warmup: int, repeats: int) -> float:
    """Median seconds of loss_fn(input, target).backward() for one batch."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(shape, generator=generator).to(device, dtype).requires_grad_(True)
    target = torch.randn(shape, generator=generator).to(device, dtype)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss_fn(input, target).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        input.grad = None
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="mse-fit", help="bundled name, directory or Hub id")
    parser.add_argument("--sizes", nargs="+", default=["4096x1", "256x1000"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    learned = LearnedLoss.from_pretrained(args.loss, check_finite=False).to(device)
    checked = LearnedLoss.from_pretrained(args.loss).to(device)
    mse = nn.MSELoss()
    candidates = {"learned": learned, "+finite check": checked}
    if not args.no_compile:
        candidates["torch.compile"] = torch.compile(learned)
    print(
        f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"loss={args.loss} torch={torch.__version__}"
    )
    columns = ["MSELoss (ms)"] + [f"{name} (ms)" for name in candidates] + ["ratios"]
    print(" | ".join([f"{'batch':>10}", *(f"{c:>18}" for c in columns)]))
    for size in args.sizes:
        shape = tuple(int(d) for d in size.split("x"))
        base = time_forward_backward(mse, shape, device, dtype, args.warmup, args.repeats)
        timings = [
            time_forward_backward(fn, shape, device, dtype, args.warmup, args.repeats)
            for fn in candidates.values()
        ]
        ratios = " / ".join(f"{t / base:.0f}x" for t in timings)
        cells = [f"{t * 1e3:18.3f}" for t in (base, *timings)]
        print(" | ".join([f"{size:>10}", *cells, f"{ratios:>18}"]))


if __name__ == "__main__":
    main()
