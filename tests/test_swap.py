"""An ordinary training loop written for nn.MSELoss keeps working with a one-line swap."""

from __future__ import annotations

import math

import torch
from torch import nn

from learnedloss import LearnedLoss


def make_data(seed: int):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(256, 1, generator=generator) * 10 - 5
    return x, 3 * torch.sin(x + 0.5)


def train_regressor(loss_fn: nn.Module, seed: int = 0) -> float:
    """A plain PyTorch loop, as written for `loss_fn = nn.MSELoss()`; returns test MSE."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = make_data(seed)
    for _ in range(300):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    x_test, y_test = make_data(seed + 100)
    with torch.no_grad():
        return nn.functional.mse_loss(model(x_test), y_test).item()


def test_swapping_mse_for_a_bundled_learned_loss_needs_no_other_change():
    with torch.no_grad():
        _, y_test = make_data(100)
        untrained = nn.functional.mse_loss(torch.zeros_like(y_test), y_test).item()
    with_mse = train_regressor(nn.MSELoss())
    with_learned = train_regressor(LearnedLoss.from_pretrained("mse-fit"))  # the one-line swap
    assert math.isfinite(with_learned)
    assert with_learned < 0.05 * untrained  # it really trained the model
    # mse-fit is a fit to MSE, so the outcome should be close to MSE's.
    assert with_learned < 2 * with_mse + 0.01


def test_loaded_loss_adds_nothing_to_the_models_optimizer():
    loss_fn = LearnedLoss.from_pretrained("mse-fit")
    before = [p.clone() for p in loss_fn.parameters()]
    train_regressor(loss_fn)
    for old, new in zip(before, loss_fn.parameters(), strict=True):
        assert torch.equal(old, new)
