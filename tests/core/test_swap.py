"""An ordinary training loop written for nn.MSELoss keeps working with a one-line swap, and a
loss held inside the user's module changes nothing about that module."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
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
    before = {name: t.clone() for name, t in loss_fn.weights().items()}
    train_regressor(loss_fn)
    assert not list(loss_fn.parameters())
    for name, tensor in loss_fn.weights().items():
        assert torch.equal(before[name], tensor)


class Regressor(nn.Module):
    """A user's module that holds its loss, as Lightning modules and many training loops do."""

    def __init__(self, loss_name: str = "mse-fit"):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        self.loss_fn = LearnedLoss.from_pretrained(loss_name)


@pytest.mark.parametrize(
    "name", ["mse-fit", "robust-regression", "digits-classification", "noisy-labels"]
)
def test_a_held_frozen_loss_adds_no_parameters_state_or_submodules(name):
    model = Regressor(name)
    plain = Regressor.__new__(Regressor)
    nn.Module.__init__(plain)
    plain.body = model.body
    assert list(model.parameters()) == list(plain.parameters())
    assert list(model.state_dict()) == [
        "body.0.weight",
        "body.0.bias",
        "body.2.weight",
        "body.2.bias",
    ]
    assert [n for n, _ in model.named_modules()] == [
        "",
        "body",
        "body.0",
        "body.1",
        "body.2",
        "loss_fn",
    ]
    assert all(m.training for m in model.modules())  # no module left in eval mode


def test_a_parent_checkpoint_loads_whichever_loss_the_parent_holds():
    saved = Regressor("mse-fit").state_dict()
    other = Regressor("robust-regression")
    other.load_state_dict(saved)  # strict: the loss is not part of the parent's state
    x = torch.randn(4, 1)
    reference = LearnedLoss.from_pretrained("robust-regression")
    assert torch.equal(other.loss_fn(x, torch.zeros(4, 1)), reference(x, torch.zeros(4, 1)))


def test_requires_grad_and_init_functions_of_the_parent_leave_the_loss_alone():
    model = Regressor()
    reference = LearnedLoss.from_pretrained("mse-fit")
    model.requires_grad_(True)  # Lightning's unfreeze() does this

    def init(module):  # what frameworks' weight initialization does
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    model.apply(init)
    model.train()
    model.eval()
    model.train()
    x, y = torch.randn(16, 1), torch.randn(16, 1)
    assert torch.equal(model.loss_fn(x, y), reference(x, y))
    assert not any(p.requires_grad for p in model.loss_fn.network.parameters())
    # unfreeze is the one way to make it trainable (meta-training)
    model.loss_fn.unfreeze()
    assert any(name.startswith("loss_fn.") for name, _ in model.named_parameters())
    assert "loss_fn.network.layers.0.weight" in model.state_dict()


def test_a_frozen_loss_moves_casts_and_copies_with_its_parent():
    model = Regressor()
    x, y = torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    reference = LearnedLoss.from_pretrained("mse-fit").double()(x, y)
    model.double()
    assert all(t.dtype == torch.float64 for t in model.loss_fn.weights().values())
    assert torch.equal(model.loss_fn(x, y), reference)
    copied = copy.deepcopy(model)
    assert torch.equal(copied.loss_fn(x, y), reference)
    assert copied.loss_fn.network is not model.loss_fn.network
    restored = pickle.loads(pickle.dumps(model))
    assert torch.equal(restored.loss_fn(x, y), reference)


def test_a_frozen_loss_loads_under_a_meta_device_context_and_survives_to_empty():
    reference = LearnedLoss.from_pretrained("mse-fit")
    x, y = torch.randn(8, 1), torch.randn(8, 1)
    with torch.device("meta"):
        model = Regressor()
        by_name = LearnedLoss(pretrained="mse-fit")
    assert next(model.body.parameters()).is_meta
    assert torch.equal(model.loss_fn(x, y), reference(x, y))
    assert torch.equal(by_name(x, y), reference(x, y))
    # the usual way to materialize a meta model: to_empty, then load the state dict
    model.to_empty(device="cpu")
    model.load_state_dict(Regressor().state_dict())
    assert torch.equal(model.loss_fn(x, y), reference(x, y))
    # a meta input gives a meta output, with no error, as nn.MSELoss does
    meta = torch.empty(8, 1, device="meta", requires_grad=True)
    out = reference(meta, torch.empty(8, 1, device="meta"))
    assert out.is_meta and out.shape == ()
    (grad,) = torch.autograd.grad(out, meta)
    assert grad.is_meta and grad.shape == (8, 1)
    assert torch.equal(reference(x, y), LearnedLoss.from_pretrained("mse-fit")(x, y))


def test_a_frozen_loss_round_trips_through_save_pretrained(tmp_path):
    loss = LearnedLoss.from_pretrained("robust-regression")
    loss.save_pretrained(tmp_path / "copy")
    again = LearnedLoss.from_pretrained(tmp_path / "copy")
    for name, tensor in loss.weights().items():
        assert torch.equal(again.weights()[name], tensor)
