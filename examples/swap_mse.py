"""Swap nn.MSELoss for a learned loss in an ordinary training loop, and compare.

The loop in `train` is plain PyTorch, written for `loss_fn = nn.MSELoss()`. The only change is
the line that builds `loss_fn`. It trains a small MLP on scikit-learn's bundled diabetes
regression data (442 patients, 10 features; no download), once per loss and seed, prints the
held-out MSE of each, and plots the held-out curves (needs the `plot` extra).

    python examples/swap_mse.py --plot swap_mse.png
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_diabetes
from torch import nn

from learnedloss import LearnedLoss


def load_data(seed: int):
    """Standardized (x_train, y_train, x_test, y_test) float32 tensors, 80/20 split."""
    x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
    y = y.unsqueeze(-1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    x = (x - x[:split].mean(0)) / x[:split].std(0)
    y = (y - y[:split].mean()) / y[:split].std()
    return x[:split], y[:split], x[split:], y[split:]


def train(loss_fn: nn.Module, data, seed: int, steps: int, every: int = 10) -> list[float]:
    """Train a fresh MLP with `loss_fn`; return the held-out MSE every `every` steps."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x_train.shape[1], 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    curve = []
    for step in range(steps + 1):
        if step % every == 0:
            with torch.no_grad():
                curve.append(nn.functional.mse_loss(model(x_test), y_test).item())
        if step == steps:
            break
        optimizer.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        optimizer.step()
    return curve


def plot(curves: dict[str, torch.Tensor], every: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in curves.items():
        steps = torch.arange(runs.shape[1]) * every
        mean, std = runs.mean(0), runs.std(0)
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set(
        xlabel="gradient step",
        ylabel="held-out MSE (standardized)",
        yscale="log",
        title="diabetes regression: MSE vs the swapped-in learned loss",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="mse-fit", help="bundled name, directory or Hub id")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--plot", metavar="PNG", help="write the held-out curves here")
    args = parser.parse_args()

    data = load_data(seed=0)
    print(
        f"diabetes: {len(data[0])} train / {len(data[2])} test rows, Adam lr 1e-3, "
        f"{args.steps} steps, {args.seeds} seeds"
    )
    candidates = {
        "nn.MSELoss()": nn.MSELoss,
        f"LearnedLoss.from_pretrained({args.loss!r})": lambda: LearnedLoss.from_pretrained(
            args.loss
        ),  # <- the one-line swap
    }
    curves = {}
    for name, make_loss in candidates.items():
        curves[name] = torch.tensor(
            [train(make_loss(), data, seed, args.steps) for seed in range(args.seeds)]
        )
        final = curves[name][:, -1]
        print(f"{name:42s} final held-out MSE {final.mean():.4f} ± {final.std():.4f}")
    if args.plot:
        plot(curves, every=10, path=args.plot)


if __name__ == "__main__":
    main()
