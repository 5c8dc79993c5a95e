"""Time one forward+backward of a LearnedLoss against nn.MSELoss or nn.CrossEntropyLoss.

    python benchmarks/loss_overhead.py                      # CPU, 1 thread, default sizes
    python benchmarks/loss_overhead.py --device cuda --sizes 4096x1 256x1000 65536x1000
    python benchmarks/loss_overhead.py --kind classification   # (256, 10) and (256, 1000)

A regression batch is a prediction and a target of the given shape; a classification batch
is logits of the given shape (N x C) and N class indices.

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

STANDARD = {"regression": nn.MSELoss, "classification": nn.CrossEntropyLoss}
DEFAULTS = {
    "regression": ("mse-fit", ["4096x1", "256x1000"]),
    "classification": ("digits-classification", ["256x10", "256x1000"]),
}


def make_batch(kind: str, shape, device, dtype):
    """(input requiring grad, target) for one batch of this kind."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(shape, generator=generator).to(device, dtype).requires_grad_(True)
    if kind == "classification":
        target = torch.randint(0, shape[1], shape[:1], generator=generator).to(device)
    else:
        target = torch.randn(shape, generator=generator).to(device, dtype)
    return input, target


def time_forward_backward(loss_fn, batch, device, warmup: int, repeats: int) -> float:
    """Median seconds of loss_fn(input, target).backward() for one batch."""
    input, target = batch
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
    parser.add_argument("--kind", choices=list(STANDARD), default="regression")
    parser.add_argument("--loss", help="bundled name, directory or Hub id (default per kind)")
    parser.add_argument("--sizes", nargs="+", help="batch shapes (default per kind)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()

    default_loss, default_sizes = DEFAULTS[args.kind]
    args.loss = args.loss or default_loss
    args.sizes = args.sizes or default_sizes
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    learned = LearnedLoss.from_pretrained(args.loss, check_finite=False).to(device)
    checked = LearnedLoss.from_pretrained(args.loss).to(device)
    if learned.config.kind != args.kind:
        parser.error(f"--loss {args.loss} is a {learned.config.kind} loss, not {args.kind}")
    standard = STANDARD[args.kind]()
    candidates = {"learned": learned, "+finite check": checked}
    if not args.no_compile:
        candidates["torch.compile"] = torch.compile(learned)
    print(
        f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"loss={args.loss} torch={torch.__version__}"
    )
    columns = [f"{type(standard).__name__} (ms)", *(f"{name} (ms)" for name in candidates)]
    columns.append("ratios")
    print(" | ".join([f"{'batch':>10}", *(f"{c:>18}" for c in columns)]))
    for size in args.sizes:
        shape = tuple(int(d) for d in size.split("x"))
        batch = make_batch(args.kind, shape, device, dtype)
        base = time_forward_backward(standard, batch, device, args.warmup, args.repeats)
        timings = [
            time_forward_backward(fn, batch, device, args.warmup, args.repeats)
            for fn in candidates.values()
        ]
        ratios = " / ".join(f"{t / base:.0f}x" for t in timings)
        cells = [f"{t * 1e3:18.3f}" for t in (base, *timings)]
        print(" | ".join([f"{size:>10}", *cells, f"{ratios:>18}"]))


if __name__ == "__main__":
    main()
