"""Learn the loss while you train: online loss learning vs MSE on the diabetes data.

scikit-learn's bundled diabetes regression data (442 patients, 10 features, no download),
standardized and split 64/16/20 into train / validation / test. With ``--outliers 0.2`` a
fifth of the *training* targets are replaced by draws from N(0, 5²) (the validation and test
targets stay clean). A small MLP is trained with

- ``nn.MSELoss()``, the usual loop;
- `OnlineLossTrainer`, starting from exactly MSE and adapting the loss every
  ``--adapt-every`` steps so that the looked-ahead model does well on the validation split;

each at its own learning rate, picked from ``--lrs`` by the final validation MSE (the
online method also picks its meta-learning rate from ``--meta-lrs``), and prints the clean
test MSE over ``--seeds`` seeds. About a minute on one CPU core:

    python examples/online_regression.py --outliers 0.2
    python examples/online_regression.py --shapes docs/online-loss-shapes.png

``--shapes`` plots the learned loss over the residual at a few steps of one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from sklearn.datasets import load_diabetes
from torch import nn

from learnedloss.online import OnlineLossTrainer, ShapeRecorder


def load_data(seed: int = 0, outliers: float = 0.0, outlier_scale: float = 5.0) -> dict:
    """Standardized float32 splits ``{"train": (x, y), "val": ..., "test": ...}``.

    A fraction ``outliers`` of the training targets is replaced by N(0, outlier_scale²)."""
    x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
    y = y.unsqueeze(-1)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    x, y = x[order], y[order]
    n_train, n_val = int(0.64 * len(x)), int(0.16 * len(x))
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    y_mean, y_std = y[:n_train].mean(), y[:n_train].std()
    x, y = (x - mean) / std, (y - y_mean) / y_std
    x_train, y_train = x[:n_train], y[:n_train].clone()
    n_bad = round(outliers * n_train)
    if n_bad:
        bad = torch.randperm(n_train, generator=g)[:n_bad]
        y_train[bad] = outlier_scale * torch.randn(n_bad, 1, generator=g)
    return {
        "train": (x_train, y_train),
        "val": (x[n_train : n_train + n_val], y[n_train : n_train + n_val]),
        "test": (x[n_train + n_val :], y[n_train + n_val :]),
    }


def make_model(seed: int, width: int = 64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, width), nn.ReLU(), nn.Linear(width, 1))


def batches(x, y, batch_size: int, seed: int):
    """Endless shuffled minibatches."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]


def mse(model, x, y) -> float:
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def train_standard(loss_fn, data, lr, seed, steps, batch_size=32, optimizer="sgd"):
    """The usual loop with a fixed loss; returns (validation MSE, test MSE)."""
    model = make_model(seed)
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = make(model.parameters(), lr=lr)
    stream = batches(*data["train"], batch_size, seed)
    for _ in range(steps):
        x, y = next(stream)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return mse(model, *data["val"]), mse(model, *data["test"])


def train_online(
    data, lr, meta_lr, seed, steps, batch_size=32, optimizer="sgd", adapt_every=1, callbacks=()
):
    """Train with `OnlineLossTrainer` from exactly MSE; the whole validation split is the
    validation batch. Returns (validation MSE, test MSE, trainer)."""
    model = make_model(seed)
    trainer = OnlineLossTrainer(
        model,
        "mse",
        optimizer=optimizer,
        lr=lr,
        meta_lr=meta_lr,
        adapt_every=adapt_every,
        validation=[data["val"]],
        callbacks=callbacks,
        description="diabetes regression (scikit-learn), examples/online_regression.py",
        seed=seed,
    )
    stream = batches(*data["train"], batch_size, seed)
    for _ in range(steps):
        trainer.step(*next(stream))
    return mse(model, *data["val"]), mse(model, *data["test"]), trainer


def tuned(run, grid, seeds):
    """Pick the setting in ``grid`` with the best mean validation MSE over ``seeds``; return
    (setting, test MSEs of that setting)."""
    best = None
    for setting in grid:
        results = [run(setting, seed) for seed in seeds]
        val = statistics.fmean(r[0] for r in results)
        if best is None or val < best[0]:
            best = (val, setting, [r[1] for r in results])
    return best[1], best[2]


def mean_std(values) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def plot_shapes(shapes: dict, residuals: torch.Tensor, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(residuals, residuals**2, "k--", lw=1, label="MSE")
    for step, values in sorted(shapes.items()):
        ax.plot(residuals, values, label=f"after step {step}")
    ax.set(xlabel="residual (prediction − target, standardized)", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--outliers", type=float, default=0.0, help="fraction of bad targets")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--meta-lrs", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--adapt-every", type=int, default=1)
    parser.add_argument("--shapes", metavar="PNG", help="plot the learned loss's shapes here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_data(outliers=args.outliers)
    seeds = range(args.seeds)
    print(
        f"diabetes: {len(data['train'][0])} train ({args.outliers:.0%} outlier targets) / "
        f"{len(data['val'][0])} val / {len(data['test'][0])} test; {args.optimizer}, "
        f"{args.steps} steps of 32, {args.seeds} seeds"
    )
    start = time.perf_counter()
    rows = []
    lr, tests = tuned(
        lambda lr, s: train_standard(
            nn.MSELoss(), data, lr, s, args.steps, optimizer=args.optimizer
        ),
        args.lrs,
        seeds,
    )
    rows.append(("MSE", f"lr {lr:g}", tests))
    grid = [(lr, m) for lr in args.lrs for m in args.meta_lrs]
    (lr, meta_lr), tests = tuned(
        lambda setting, s: train_online(
            data, *setting, s, args.steps, optimizer=args.optimizer, adapt_every=args.adapt_every
        )[:2],
        grid,
        seeds,
    )
    rows.append((f"online (adapt every {args.adapt_every})", f"lr {lr:g}, meta {meta_lr:g}", tests))
    print(f"\n| loss | tuned | clean test MSE (mean ± std over {args.seeds} seeds) |")
    print("|---|---|---|")
    for name, setting, values in rows:
        print(f"| {name} | {setting} | {mean_std(values)} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")

    if args.shapes:
        residuals = torch.linspace(-4, 4, 161)
        at = sorted({args.steps // 10, args.steps // 2, args.steps})
        recorder = ShapeRecorder(residuals, at=at)
        _, _, trainer = train_online(
            data,
            lr,
            meta_lr,
            0,
            args.steps,
            optimizer=args.optimizer,
            adapt_every=args.adapt_every,
            callbacks=[recorder],
        )
        title = (
            f"online loss on diabetes, {args.outliers:.0%} outliers "
            f"({args.optimizer} lr {lr:g}, meta lr {meta_lr:g})"
        )
        plot_shapes(recorder.shapes, residuals, args.shapes, title)
        del trainer


if __name__ == "__main__":
    main()
