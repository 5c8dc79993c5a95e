"""Swap nn.CrossEntropyLoss for a learned loss in an ordinary training loop, and compare.

The loop in `train` is plain PyTorch, written for `loss_fn = nn.CrossEntropyLoss()`: a small
MLP learns all ten classes of scikit-learn's bundled handwritten digits (1797 8x8 images; no
download) with SGD. The only change is the line that builds `loss_fn`. With
`--label-noise 0.4`, 40% of the training labels are flipped to another class first; the
test labels stay clean.

    python examples/swap_cross_entropy.py
    python examples/swap_cross_entropy.py --loss noisy-labels --label-noise 0.4

`noisy-labels` never saw these images (digits is held out from its selection pool), so the
second line is a held-out check in a regime its selection did not use either: minibatches of
64 over 1,257 images for 20 epochs. `digits-classification` and `digits-noisy-labels` were
meta-trained on digits, so for them the table shows the swap, not a measurement.

Each loss is run at each learning rate of `--lrs` (the learned loss is not tuned for this
10-way problem, so pick its lr as you would for cross-entropy), over `--seeds` seeds; the
table gives the test accuracy and cross-entropy, mean ± std over seeds, at the best lr of
each loss by mean test accuracy. The held-out comparisons with tuned robust baselines are
`learnedloss evaluate noisy-labels` (docs/noisy-labels.md) and `learnedloss evaluate
digits-noisy-labels` (docs/classification.md).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from learnedloss import LearnedLoss


def load_data(seed: int, label_noise: float):
    """(x_train, y_train, x_test, y_test): a 70/30 split, images scaled to [0, 1], and
    ``label_noise`` of the training labels flipped to a uniformly drawn other class."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16.0, torch.tensor(y)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    x, y = x[order], y[order]
    split = int(0.7 * len(x))
    y_train = y[:split].clone()
    flip = torch.rand(split, generator=generator) < label_noise
    shift = torch.randint(1, 10, (split,), generator=generator)
    y_train[flip] = (y_train[flip] + shift[flip]) % 10
    return x[:split], y_train, x[split:], y[split:]


def train(loss_fn: nn.Module, data, seed: int, lr: float, epochs: int) -> tuple[float, float]:
    """Train a fresh MLP with ``loss_fn``; return its test accuracy and cross-entropy."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for batch in torch.randperm(len(x_train)).split(64):
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        logits = model(x_test)
    accuracy = (logits.argmax(dim=1) == y_test).float().mean().item()
    return accuracy, F.cross_entropy(logits, y_test).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="digits-classification", help="name, dir or Hub id")
    parser.add_argument("--label-noise", type=float, default=0.0)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    losses = {
        "nn.CrossEntropyLoss": nn.CrossEntropyLoss(),  # the original line
        args.loss: LearnedLoss.from_pretrained(args.loss),  # the swapped-in line
    }
    print(f"10-way digits, {args.label_noise:.0%} flipped training labels, {args.epochs} epochs")
    print(f"{'loss':24s} | {'lr':>5} | {'test accuracy':>16} | {'test CE':>16}")
    for name, loss_fn in losses.items():
        runs = {
            lr: torch.tensor(
                [
                    train(loss_fn, load_data(seed, args.label_noise), seed, lr, args.epochs)
                    for seed in range(args.seeds)
                ]
            )
            for lr in args.lrs
        }
        lr, best = max(runs.items(), key=lambda item: item[1][:, 0].mean())
        mean, std = best.mean(0), best.std(0) if args.seeds > 1 else torch.zeros(2)
        print(
            f"{name:24s} | {lr:5.2g} | {mean[0]:8.4f} ± {std[0]:.4f} | "
            f"{mean[1]:8.4f} ± {std[1]:.4f}"
        )


if __name__ == "__main__":
    main()
