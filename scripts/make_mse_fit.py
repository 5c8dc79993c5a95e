"""Build the bundled loss ``pretrained/mse-fit``: a loss network fitted to reproduce MSE.

This is not meta-trained. It is a supervised fit of the network to the squared error
(ŷ - y)² and its gradient 2(ŷ - y) on pairs with |ŷ|, |y| <= RANGE, so that it behaves like
``nn.MSELoss`` inside that range. It exists so the drop-in path can be shown and tested with
a real checkpoint before any meta-trained loss is bundled.

Run from the repository root:

    python scripts/make_mse_fit.py            # writes pretrained/mse-fit
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from learnedloss import LearnedLoss, LossConfig

RANGE = 10.0


def sample_pairs(n: int, generator: torch.Generator) -> torch.Tensor:
    """Half uniform over the square, half near the diagonal where residuals are small."""
    uniform = (torch.rand(n // 2, 2, generator=generator) * 2 - 1) * RANGE
    y = (torch.rand(n - n // 2, generator=generator) * 2 - 1) * RANGE
    near = y + torch.randn(n - n // 2, generator=generator)
    return torch.cat([uniform, torch.stack([near.clamp(-RANGE, RANGE), y], dim=-1)])


def fit(steps: int, seed: int) -> tuple[LearnedLoss, dict]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = LossConfig(
        hidden_sizes=(50, 50), activation="elu", output_activation="square", bias=True
    )
    loss = LearnedLoss(config, reduction="none")
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        pairs = sample_pairs(4096, generator).requires_grad_(True)
        prediction, target = pairs.unbind(-1)
        value = loss(prediction, target)
        (grad,) = torch.autograd.grad(value.sum(), prediction, create_graph=True)
        true_value = (prediction - target) ** 2
        true_grad = 2 * (prediction - target)
        objective = ((value - true_value) ** 2 / (1 + true_value)).mean() + (
            (grad - true_grad) ** 2 / (1 + true_grad**2)
        ).mean()
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        schedule.step()
    return loss, measure(loss, generator)


def measure(loss: LearnedLoss, generator: torch.Generator) -> dict:
    """Fit quality on fresh pairs inside the fitted range, and in the band just outside it."""
    inside = _errors(loss, sample_pairs(100_000, generator))
    outside = _errors(loss, sample_pairs(100_000, generator) * 2)
    outside = outside[outside[:, 0] > RANGE]
    return {
        "max |value - (ŷ-y)²| where |ŷ-y| <= 1": _round(inside[inside[:, 1] <= 1, 2].max()),
        "median relative value error": _round((inside[:, 2] / (inside[:, 1] ** 2 + 1)).median()),
        "median |gradient - 2(ŷ-y)|": _round(inside[:, 3].median()),
        "90th percentile |gradient - 2(ŷ-y)|": _round(inside[:, 3].quantile(0.9)),
        f"median relative value error, {RANGE:g} < max(|ŷ|,|y|) <= {2 * RANGE:g}": _round(
            (outside[:, 2] / (outside[:, 1] ** 2 + 1)).median()
        ),
    }


def _round(value: torch.Tensor) -> float:
    return round(float(value), 4)


def _errors(loss: LearnedLoss, pairs: torch.Tensor) -> torch.Tensor:
    """One row per pair: max(|ŷ|, |y|), |ŷ-y|, value error, gradient error."""
    pairs = pairs.requires_grad_(True)
    prediction, target = pairs.unbind(-1)
    value = loss(prediction, target)
    (grad,) = torch.autograd.grad(value.sum(), prediction)
    residual = (prediction - target).detach()
    value_err = (value.detach() - residual**2).abs()
    grad_err = (grad - 2 * residual).abs()
    return torch.stack([pairs.detach().abs().amax(-1), residual.abs(), value_err, grad_err], -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("pretrained/mse-fit"))
    args = parser.parse_args()
    loss, results = fit(args.steps, args.seed)
    loss.metadata = {
        "title": "mse-fit: a loss network fitted to reproduce MSE",
        "description": (
            "**This loss is not meta-trained.** It is the ML3 loss network fitted, by "
            "supervised regression, to reproduce the squared error (ŷ-y)² and its gradient "
            f"on pairs with |ŷ|, |y| <= {RANGE:g}. Inside that range it trains models about "
            "as nn.MSELoss does; outside it the error grows (see the results). "
            "It is bundled to demonstrate and test the drop-in path with a real checkpoint; "
            "it brings no gain over MSE."
        ),
        "training": {
            "method": "supervised fit to (ŷ-y)² and 2(ŷ-y) (values and gradients)",
            "range": f"|ŷ|, |y| <= {RANGE:g}",
            "optimizer": "Adam, lr 3e-3, cosine schedule, 4096 pairs per step",
            "steps": args.steps,
            "seed": args.seed,
        },
        "results": results,
        "reproduce": f"python scripts/make_mse_fit.py --steps {args.steps} --seed {args.seed}",
    }
    loss.save_pretrained(args.out, repo_id="mse-fit")
    for key, value in results.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
