"""The differentiable inner loop: paths agree, second order reaches the loss, memory knobs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.families.sine import SineTasks
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
    plain_loss_apply,
)


@pytest.fixture
def setup():
    tasks = SineTasks(n_train=20, n_query=20, hidden=(16, 8))
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(4, generator)
    template, params = initial_params(tasks.make_model, 4, generator)
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(hidden_sizes=(8, 8), bias=True), check_finite=False)
    return tasks, batch, template, params, loss


def meta_gradient(setup, path, optimizer="sgd", truncate=None, checkpointed=False, steps=4):
    tasks, batch, template, params, loss = setup
    inner = InnerLoop(
        template,
        learned_loss_apply(loss),
        tasks.meta_objective,
        make_inner_optimizer(optimizer, 1e-2),
        path=path,
    )
    loss_params = dict(loss.named_parameters())
    for p in loss_params.values():
        p.grad = None
    objective = inner.run(
        params, loss_params, batch, steps, truncate=truncate, checkpointed=checkpointed
    ).mean()
    objective.backward()
    return objective.detach(), [p.grad.clone() for p in loss_params.values()]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(("truncate", "checkpointed"), [(None, False), (2, False), (None, True)])
def test_vmap_and_loop_paths_give_the_same_meta_gradient(setup, optimizer, truncate, checkpointed):
    v_obj, v_grads = meta_gradient(setup, "vmap", optimizer, truncate, checkpointed)
    l_obj, l_grads = meta_gradient(setup, "loop", optimizer, truncate, checkpointed)
    torch.testing.assert_close(v_obj, l_obj)
    for v, lo in zip(v_grads, l_grads, strict=True):
        torch.testing.assert_close(v, lo, rtol=1e-4, atol=1e-7)


def test_meta_gradient_reaches_every_loss_parameter_and_is_finite(setup):
    _, grads = meta_gradient(setup, "vmap", steps=3)
    for g in grads:
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_checkpointing_changes_memory_not_gradients(setup):
    _, plain = meta_gradient(setup, "vmap")
    _, checkpointed = meta_gradient(setup, "vmap", checkpointed=True)
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)


def test_truncation_drops_the_early_steps_from_the_gradient(setup):
    _, full = meta_gradient(setup, "vmap", steps=4)
    _, truncated = meta_gradient(setup, "vmap", steps=4, truncate=1)
    _, same = meta_gradient(setup, "vmap", steps=4, truncate=4)
    assert not torch.allclose(full[0], truncated[0])
    torch.testing.assert_close(full[0], same[0])


def test_adam_inner_loop_has_finite_meta_gradient_when_a_gradient_is_zero(setup):
    tasks, batch, template, params, loss = setup
    params = dict(params)
    params["0.bias"] = params["0.bias"].clone()
    # A dead ReLU unit: its incoming weights get exactly zero gradient.
    params["0.weight"] = params["0.weight"].clone()
    params["0.weight"][:, 0] = 0.0
    params["0.bias"][:, 0] = -100.0
    _, grads = meta_gradient((tasks, batch, template, params, loss), "vmap", optimizer="adam")
    assert all(torch.isfinite(g).all() for g in grads)


def test_sgd_step_matches_a_hand_computed_update():
    """One inner SGD step with MSE equals params - lr * dMSE/dparams."""
    model = nn.Linear(1, 1)
    params = {"weight": torch.tensor([[[0.5]]]), "bias": torch.tensor([[0.1]])}
    x = torch.tensor([[[1.0], [2.0]]])
    y = torch.tensor([[[1.0], [3.0]]])
    inner = InnerLoop(
        model,
        plain_loss_apply(nn.MSELoss()),
        lambda params, p, t, extra: ((p - t) ** 2).mean(),
        make_inner_optimizer("sgd", 0.1),
    )
    new, _ = inner.steps(params, inner.init_state(params), {}, x, y, 1)
    # residuals: 0.6-1 = -0.4, 1.1-3 = -1.9; dMSE/dw = mean(2 r x) = -4.2, dMSE/db = -2.3
    torch.testing.assert_close(new["weight"], torch.tensor([[[0.92]]]))
    torch.testing.assert_close(new["bias"], torch.tensor([[0.33]]))


def test_initial_params_are_reproducible_and_leave_the_global_rng_alone():
    tasks = SineTasks()
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    _, a = initial_params(tasks.make_model, 3, torch.Generator().manual_seed(1))
    after = torch.rand(1)
    _, b = initial_params(tasks.make_model, 3, torch.Generator().manual_seed(1))
    assert torch.equal(before, after)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"][0], a["0.weight"][1])  # distinct models per task


def test_meta_gradient_matches_finite_differences():
    """The second-order meta-gradient is the derivative of the meta-objective (float64)."""
    tasks = SineTasks(n_train=12, n_query=12, hidden=(8,), outlier_fraction=0.25)
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(3, generator)
    batch = type(batch)(
        *(t.double() for t in (batch.x_train, batch.y_train, batch.x_query, batch.y_query))
    )
    template, params = initial_params(tasks.make_model, 3, generator)
    params = {k: v.double() for k, v in params.items()}
    torch.manual_seed(1)
    loss = LearnedLoss(
        LossConfig(hidden_sizes=(6,), bias=True, activation="elu"), check_finite=False
    ).double()
    inner = InnerLoop(
        template.double(),
        learned_loss_apply(loss),
        tasks.meta_objective,
        make_inner_optimizer("sgd", 0.05),
    )
    loss_params = dict(loss.named_parameters())
    objective = inner.run(params, loss_params, batch, 5).mean()
    grads = torch.autograd.grad(objective, list(loss_params.values()))
    direction = [torch.randn_like(p) for p in loss_params.values()]

    def shifted(eps):
        with torch.no_grad():
            moved = {
                k: p + eps * d for (k, p), d in zip(loss_params.items(), direction, strict=True)
            }
            return inner.run(params, moved, batch, 5).mean()

    finite_difference = (shifted(1e-6) - shifted(-1e-6)) / 2e-6
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
    assert abs(analytic) > 1e-6
    torch.testing.assert_close(analytic, finite_difference, rtol=1e-5, atol=1e-9)
