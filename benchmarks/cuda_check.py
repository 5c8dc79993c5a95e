"""Check the drop-in contract on a CUDA device and print a table (no GPU needed for CI).

    python benchmarks/cuda_check.py [--loss mse-fit]

For each case it compares the CUDA result with a float64 CPU reference of the same loss and
reports the relative error, and whether the input gradient is finite. It exits non-zero if a
case fails its tolerance.
"""

from __future__ import annotations

import argparse
import sys

import torch

from learnedloss import LearnedLoss

TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4, torch.float64: 1e-10}


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double().cpu() - reference).abs().max() / reference.abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="mse-fit")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()} torch={torch.__version__}")

    generator = torch.Generator().manual_seed(0)
    input64 = torch.randn(512, 7, generator=generator, dtype=torch.float64) * 3
    target64 = torch.randn(512, 7, generator=generator, dtype=torch.float64) * 3
    reference_loss = LearnedLoss.from_pretrained(args.loss, reduction="none").double()
    reference = reference_loss(input64, target64)

    cases = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        loss = LearnedLoss.from_pretrained(args.loss, reduction="none", map_location="cuda")
        cases.append((f"weights fp32, input {dtype}", loss, dtype, None, TOLERANCE[dtype]))
        cases.append(
            (f"weights+input {dtype}", loss_to(args.loss, dtype), dtype, None, TOLERANCE[dtype])
        )
    for dtype in (torch.float16, torch.bfloat16):
        loss = LearnedLoss.from_pretrained(args.loss, reduction="none", map_location="cuda")
        cases.append((f"autocast {dtype}", loss, torch.float32, dtype, TOLERANCE[dtype]))
    compiled = torch.compile(
        LearnedLoss.from_pretrained(args.loss, reduction="none", map_location="cuda")
    )
    cases.append(("torch.compile fp32", compiled, torch.float32, None, TOLERANCE[torch.float32]))

    failed = 0
    print(f"{'case':40s} | {'out dtype':>14} | {'rel. error':>10} | {'grad finite':>11} | ok")
    for name, loss, dtype, autocast, tol in cases:
        input = input64.to(device, dtype).requires_grad_(True)
        target = target64.to(device, dtype)
        with torch.autocast("cuda", dtype=autocast or torch.float16, enabled=autocast is not None):
            out = loss(input, target)
        out.sum().backward()
        error = relative_error(out.detach(), reference)
        grad_ok = bool(torch.isfinite(input.grad).all())
        ok = error <= tol and grad_ok and out.dtype == dtype
        failed += not ok
        print(f"{name:40s} | {out.dtype!s:>14} | {error:10.2e} | {grad_ok!s:>11} | {ok}")
    return 1 if failed else 0


def loss_to(name: str, dtype: torch.dtype) -> LearnedLoss:
    return LearnedLoss.from_pretrained(name, reduction="none").to("cuda", dtype)


if __name__ == "__main__":
    sys.exit(main())
