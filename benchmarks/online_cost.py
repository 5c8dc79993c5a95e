"""Time per training step of `OnlineLossTrainer` against a plain step with nn.MSELoss or
nn.CrossEntropyLoss.

    python benchmarks/online_cost.py                                  # CPU, 1 thread
    python benchmarks/online_cost.py --kind classification --classes 10
    python benchmarks/online_cost.py --widths 64 256 1024 --adapt-every 1 5 10 --optimizer adam
    python benchmarks/online_cost.py --device cuda --widths 1024 4096 --batch 512
    python benchmarks/online_cost.py --form sample-weights --val-batch 32 --adapt-every 1 5 10

The model is an MLP ``in -> width -> width -> out`` (ReLU) on a random batch of ``--batch``
rows. The plain step is the usual ``zero_grad(); loss_fn(model(x), y).backward();
optimizer.step()`` with ``torch.optim`` SGD or Adam. An online step with ``adapt_every=k``
is averaged over runs of ``--steps`` consecutive steps (a multiple of every k), so one in k
steps adapts the loss (the look-ahead and the second-order meta-gradient) and the rest are
plain steps with the learned loss. Each cell is the median over ``--repeats`` such runs,
after one untimed warm-up run. Ratios come from one run; absolute times drift on a shared
machine.

``--form`` and ``--lookahead-steps`` pick the online learner's form and horizon
(`OnlineLossTrainer`); ``--val-batch`` the rows of its validation batch (default: as many
as the training batch). Per-step cost leaves out what a whole run also pays (validation
checks for early stopping); benchmarks/online_fair.py times whole runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from learnedloss.online import OnlineLossTrainer


def make_model(n_in: int, width: int, n_out: int, device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(n_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, n_out),
    ).to(device)


def make_batch(kind: str, batch: int, n_in: int, n_out: int, device, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_in, generator=g)
    y = (
        torch.randint(0, n_out, (batch,), generator=g)
        if kind == "classification"
        else (torch.randn(batch, n_out, generator=g))
    )
    return x.to(device), y.to(device)


def timed(step, steps: int, repeats: int, device) -> float:
    """Median over ``repeats`` runs of the mean seconds per step of ``steps`` steps."""
    results = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run warms up
            results.append((time.perf_counter() - start) / steps)
    return statistics.median(results)


def plain_step(kind, model, optimizer_name, lr, batch):
    loss_fn = nn.CrossEntropyLoss() if kind == "classification" else nn.MSELoss()
    make = torch.optim.SGD if optimizer_name == "sgd" else torch.optim.Adam
    optimizer = make(model.parameters(), lr=lr)
    x, y = batch

    def step():
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def online_step(kind, model, optimizer_name, lr, adapt_every, batch, val_batch, **options):
    trainer = OnlineLossTrainer(
        model,
        "cross-entropy" if kind == "classification" else "mse",
        optimizer=optimizer_name,
        lr=lr,
        meta_lr=1e-4,
        adapt_every=adapt_every,
        **options,
    )
    x, y = batch

    def step():
        trainer.step(x, y, *val_batch)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("regression", "classification"), default="regression")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--inputs", type=int, default=32, help="input features")
    parser.add_argument("--classes", type=int, default=10, help="outputs (classes)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--adapt-every", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--form", choices=("loss", "shape", "sample-weights"), default="loss")
    parser.add_argument("--lookahead-steps", type=int, default=1)
    parser.add_argument("--val-batch", type=int, help="validation rows (default: --batch)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n_out = args.classes if args.kind == "classification" else 1
    lr = 1e-3

    print(
        f"{args.kind}, {args.optimizer}, batch {args.batch}, MLP {args.inputs}-w-w-{n_out}, "
        f"{device}, {args.threads} thread(s); median of {args.repeats} runs of {args.steps} "
        f"steps; form {args.form!r}, look-ahead {args.lookahead_steps}, validation batch "
        f"{args.val_batch or args.batch}"
    )
    header = (
        "| width | parameters | plain step | "
        + " | ".join(f"online, adapt every {k}" for k in args.adapt_every)
        + " |"
    )
    print(header)
    print("|" + "---|" * (3 + len(args.adapt_every)))
    batch = make_batch(args.kind, args.batch, args.inputs, n_out, device, 0)
    val_batch = make_batch(args.kind, args.val_batch or args.batch, args.inputs, n_out, device, 1)
    options = {"form": args.form, "lookahead_steps": args.lookahead_steps}
    for width in args.widths:
        model = make_model(args.inputs, width, n_out, device)
        n_params = sum(p.numel() for p in model.parameters())
        plain = timed(
            plain_step(args.kind, model, args.optimizer, lr, batch),
            args.steps,
            args.repeats,
            device,
        )
        cells = [f"{plain * 1e3:.3f} ms"]
        for k in args.adapt_every:
            if args.steps % k:
                raise SystemExit(f"--steps ({args.steps}) must be a multiple of {k}")
            model = make_model(args.inputs, width, n_out, device)
            step = online_step(args.kind, model, args.optimizer, lr, k, batch, val_batch, **options)
            online = timed(step, args.steps, args.repeats, device)
            cells.append(f"{online * 1e3:.3f} ms ({online / plain:.1f}×)")
        print(f"| {width} | {n_params:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
