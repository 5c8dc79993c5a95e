"""torch.func with a learned loss, as users write per-sample-gradient code (Opacus-style
clipping, influence functions): ``vmap(grad(...))`` over samples with the default settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from learnedloss import LearnedLoss


def per_sample_and_batch_gradients(loss_fn, model, x, y):
    params = {name: p.detach() for name, p in model.named_parameters()}

    def sample_loss(params, xi, yi):
        prediction = functional_call(model, params, (xi.unsqueeze(0),))
        return loss_fn(prediction, yi.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    batch = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    return per_sample, dict(zip(params, batch, strict=True))


@pytest.mark.parametrize("name", ["mse-fit", "sine-regression"])
def test_per_sample_gradients_average_to_the_batch_gradient(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    x, y = torch.randn(12, 3), torch.randn(12, 2)
    loss_fn = LearnedLoss.from_pretrained(name)
    assert not loss_fn.batch_dependent
    per_sample, batch = per_sample_and_batch_gradients(loss_fn, model, x, y)
    for key, value in per_sample.items():
        assert value.shape == (12, *batch[key].shape)
        torch.testing.assert_close(value.mean(0), batch[key], rtol=1e-5, atol=1e-6)


def test_the_opt_in_strict_check_steps_aside_under_vmap():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    strict = LearnedLoss.from_pretrained("mse-fit", check_finite=True)
    per_sample, batch = per_sample_and_batch_gradients(
        strict, model, torch.randn(6, 3), torch.randn(6, 1)
    )
    torch.testing.assert_close(per_sample["weight"].mean(0), batch["weight"])


@pytest.mark.parametrize("name", ["sine-outliers-40", "robust-regression-20"])
def test_weight_form_per_sample_gradients_are_each_sample_on_its_own(name):
    """A "weight"-form loss normalizes its weights over each call: a per-sample gradient is the
    gradient of the loss evaluated on that sample alone, which need not average to the batch
    gradient (the weights move loss between samples)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    x, y = torch.randn(8, 3), torch.randn(8, 4)
    y[0] += 20.0  # an outlier, which the weights discount within a batch
    loss_fn = LearnedLoss.from_pretrained(name)
    assert loss_fn.batch_dependent and "batch_dependent=True" in repr(loss_fn)
    per_sample, batch = per_sample_and_batch_gradients(loss_fn, model, x, y)
    for i in range(len(x)):
        alone = torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), model.weight)[0]
        torch.testing.assert_close(per_sample["weight"][i], alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_sample["weight"].mean(0), batch["weight"], rtol=1e-3)


def test_grad_of_a_frozen_loss_under_vmap_over_tasks():
    """Stacked tasks, as the inner loop runs them: a frozen loss's constants broadcast."""
    loss_fn = LearnedLoss.from_pretrained("mse-fit")
    predictions, targets = torch.randn(4, 10, 1), torch.randn(4, 10, 1)
    grads = vmap(grad(loss_fn))(predictions, targets)
    for task in range(4):
        expected = torch.func.grad(loss_fn)(predictions[task], targets[task])
        torch.testing.assert_close(grads[task], expected)


def test_per_sample_gradients_of_the_classification_drop_in():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 5))
    x, y = torch.randn(12, 3), torch.randint(0, 5, (12,))
    loss_fn = LearnedLoss.from_pretrained("noisy-labels")
    assert not loss_fn.batch_dependent
    per_sample, batch = per_sample_and_batch_gradients(loss_fn, model, x, y)
    for key, value in per_sample.items():
        torch.testing.assert_close(value.mean(0), batch[key], rtol=1e-5, atol=1e-6)
