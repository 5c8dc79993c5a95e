"""Forward+backward time of learned losses against nn.MSELoss, nn.HuberLoss, nn.CrossEntropyLoss.

    python benchmarks/loss_speed.py                         # CPU, 1 thread, eager + compile
    python benchmarks/loss_speed.py --no-compile --repeats 200
    python benchmarks/loss_speed.py --device cuda

Rows are batches: regression (prediction, target) of shape 4096x1, 256x1000 and 65536x1, and
classification logits 256x10 and 256x1000 with class-index targets. Columns are losses; each
cell is the median time of one ``loss(input, target).backward()`` and, in brackets, the median
over rounds of its ratio to the reference (nn.HuberLoss for regression, nn.CrossEntropyLoss for
classification). All losses of a row are called in turn within every round, so load on a
shared machine hits them alike. Learned losses are frozen (as loaded with from_pretrained) and
called with the default check_finite=False, so frozen grid losses take their fast path
(learnedloss/networks/fast.py); the "+check" column turns on the opt-in strict finite-value
check, which the fast path leaves to the general one. ``--general-path`` adds columns that
time the grid losses with the fast path turned off (the code path before it existed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from learnedloss import LearnedLoss, bundled_names
from learnedloss.networks import fast
from learnedloss.starts import grid_start_config, taylor_start_config

REGRESSION_SIZES = ["4096x1", "256x1000", "65536x1"]
CLASSIFICATION_SIZES = ["256x10", "256x1000"]


def learned(config, check_finite: bool = False) -> LearnedLoss:
    torch.manual_seed(0)
    loss = LearnedLoss(config, check_finite=check_finite)
    with torch.no_grad():  # a non-trivial shape, as after meta-training
        for p in loss.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return loss.freeze()


class GeneralPath(nn.Module):
    """A frozen loss called with the fast path turned off."""

    def __init__(self, loss: LearnedLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, input, target):
        with fast.disabled():
            return self.loss(input, target)


def bundled_of_kind(kind: str) -> list[str]:
    """The bundled losses of a kind that read no side inputs (drop-ins for the standard loss)."""
    names = []
    for name in bundled_names():
        loss = LearnedLoss.from_pretrained(name)
        if loss.config.kind == kind and not loss.config.side_inputs:
            names.append(name)
    return names


def regression_losses(bundled: list[str], general: bool = False) -> dict[str, nn.Module]:
    losses: dict[str, nn.Module] = {
        "HuberLoss": nn.HuberLoss(),
        "MSELoss": nn.MSELoss(),
        "grid 1-D": learned(grid_start_config("huber")),
        "grid 1-D +check": learned(grid_start_config("huber"), check_finite=True),
        "grid 2-D": learned(grid_start_config("huber", inputs=("residual", "target"))),
        "grid scale-free": learned(
            grid_start_config(
                "mse", inputs=("scaled_residual",), residual_form="scale", knots=(17,)
            )
        ),
        "taylor": learned(taylor_start_config("mse")),
    }
    if general:
        losses["grid 1-D general"] = GeneralPath(losses["grid 1-D"])
        losses["grid 2-D general"] = GeneralPath(losses["grid 2-D"])
    for name in bundled:
        losses[name] = LearnedLoss.from_pretrained(name, check_finite=False)
    return losses


def classification_losses(bundled: list[str], general: bool = False) -> dict[str, nn.Module]:
    losses: dict[str, nn.Module] = {
        "CrossEntropyLoss": nn.CrossEntropyLoss(),
        "grid": learned(grid_start_config("cross_entropy")),
        "grid +check": learned(grid_start_config("cross_entropy"), check_finite=True),
        "taylor": learned(taylor_start_config("cross_entropy")),
    }
    if general:
        losses["grid general"] = GeneralPath(losses["grid"])
    for name in bundled:
        losses[name] = LearnedLoss.from_pretrained(name, check_finite=False)
    return losses


def make_batch(kind: str, shape, device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
    if kind == "classification":
        target = torch.randint(0, shape[1], shape[:1], generator=generator).to(device)
    else:
        target = torch.randn(shape, generator=generator).to(device)
    return input, target


def time_round(losses, batch, device) -> list[float]:
    """One forward+backward of each loss, in turn; seconds."""
    input, target = batch
    out = []
    for fn in losses:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(input, target).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
        input.grad = None
    return out


def table(kind, sizes, losses, device, warmup, repeats, label):
    names = list(losses)
    fns = [fn.to(device) for fn in losses.values()]
    print(f"\n{kind}, {label}: median ms (median ratio to {names[0]})")
    print("| batch | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for size in sizes:
        shape = tuple(int(d) for d in size.split("x"))
        batch = make_batch(kind, shape, device)
        for _ in range(warmup):
            time_round(fns, batch, device)
        rounds = [time_round(fns, batch, device) for _ in range(repeats)]
        cells = []
        for k in range(len(fns)):
            ms = statistics.median(r[k] for r in rounds) * 1e3
            ratio = statistics.median(r[k] / r[0] for r in rounds)
            cells.append(f"{ms:.3f}" if k == 0 else f"{ms:.3f} ({ratio:.1f}×)")
        print(f"| {size.replace('x', ' × ')} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds per batch")
    parser.add_argument("--repeats", type=int, default=100, help="timed rounds per batch")
    parser.add_argument(
        "--regression-sizes", nargs="+", default=REGRESSION_SIZES, help="regression shapes"
    )
    parser.add_argument(
        "--classification-sizes", nargs="+", default=CLASSIFICATION_SIZES, help="logit shapes"
    )
    parser.add_argument(
        "--regression-losses",
        nargs="*",
        help="bundled regression losses to add (default: all without side inputs)",
    )
    parser.add_argument(
        "--classification-losses", nargs="*", help="bundled classification losses (default: all)"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile tables")
    parser.add_argument(
        "--general-path", action="store_true", help="also time grid losses without the fast path"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    modes = [("eager", lambda fn: fn)]
    if not args.no_compile:
        # every loss shares LearnedLoss.forward's code: room for one graph per loss and shape
        torch._dynamo.config.recompile_limit = 256
        torch._dynamo.config.accumulated_recompile_limit = 4096
        modes.append(("torch.compile", lambda fn: torch.compile(fn)))
    bundled_regression = args.regression_losses
    if bundled_regression is None:
        bundled_regression = bundled_of_kind("regression")
    bundled_classification = args.classification_losses
    if bundled_classification is None:
        bundled_classification = bundled_of_kind("classification")
    for label, wrap in modes:
        general = args.general_path
        reg = {k: wrap(v) for k, v in regression_losses(bundled_regression, general).items()}
        table("regression", args.regression_sizes, reg, device, args.warmup, args.repeats, label)
        cls = {
            k: wrap(v) for k, v in classification_losses(bundled_classification, general).items()
        }
        table(
            "classification",
            args.classification_sizes,
            cls,
            device,
            args.warmup,
            args.repeats,
            label,
        )


if __name__ == "__main__":
    main()
