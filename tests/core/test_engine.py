"""The batched inner-loop engine: it agrees with the vmap path and with float64 steps done by
hand, keeps no graph under ES, and refuses what it cannot run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.meta.engine import (
    BatchedInnerLoop,
    EngineUnsupported,
    StackedAdam,
    StackedSGD,
    compile_model,
    engine_refusal,
    minibatch_indices,
)
from learnedloss.meta.engine.execution import tile_batch
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
    plain_objective,
)
from learnedloss.tasks.base import TaskBatch, default_loss_arguments, mse_objective
from learnedloss.tasks.models import mlp

STEPS, LR = 4, 1e-2


def _sine_batch(n_tasks: int, generator: torch.Generator) -> TaskBatch:
    amplitude = torch.rand(n_tasks, 1, 1, generator=generator) * 4 + 1
    phase = torch.rand(n_tasks, 1, 1, generator=generator) * 6
    x = torch.rand(n_tasks, 40, 1, generator=generator) * 10 - 5
    y = amplitude * torch.sin(x + phase)
    return TaskBatch(x[:, :20], y[:, :20], x[:, 20:], y[:, 20:])


def _sine_setup():
    generator = torch.Generator().manual_seed(0)
    batch = _sine_batch(4, generator)
    template, params = initial_params(lambda: mlp((1, 16, 8, 1)), 4, generator)
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(hidden_sizes=(8, 8), bias=True))
    return plain_objective(mse_objective), batch, template, params, loss


@pytest.fixture
def setup():
    return _sine_setup()


def _meta_gradient(run, loss):
    loss_params = dict(loss.named_parameters())
    for p in loss_params.values():
        p.grad = None
    objectives = run(loss_params)
    objectives.mean().backward()
    return objectives.detach(), [p.grad.clone() for p in loss_params.values()]


def _vmap_run(setup, optimizer, indices=None, truncate=None, steps=STEPS):
    """The vmap path, fed each step's rows by hand when ``indices`` is given."""
    objective, batch, template, params, loss = setup
    inner = InnerLoop(
        template, learned_loss_apply(loss), objective, make_inner_optimizer(optimizer, LR)
    )

    def run(loss_params):
        if indices is None:
            return inner.run(params, loss_params, batch, steps, truncate=truncate)
        p, state = params, inner.init_state(params)
        for rows in indices:
            x = torch.stack([batch.x_train[t, r] for t, r in enumerate(rows)])
            y = torch.stack([batch.y_train[t, r] for t, r in enumerate(rows)])
            p, state = inner.steps(p, state, loss_params, x, y, 1)
        return inner.score(p, state, batch.x_query, batch.y_query)

    return _meta_gradient(run, loss)


def _engine_run(setup, optimizer, indices=None, truncate=None, checkpointed=False, steps=STEPS):
    objective, batch, template, params, loss = setup
    engine = BatchedInnerLoop(template, loss, objective, optimizer, lr=LR)

    def run(loss_params):
        return engine.run(
            params,
            loss_params,
            batch,
            steps,
            truncate=truncate,
            checkpointed=checkpointed,
            indices=indices,
        )

    return _meta_gradient(run, loss)


def _assert_same(expected, got):
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-6)
    for e, g in zip(expected[1], got[1], strict=True):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("minibatch", [False, True])
def test_engine_matches_the_vmap_path(setup, optimizer, minibatch):
    indices = None
    if minibatch:
        indices = minibatch_indices(4, 20, 8, STEPS, torch.Generator().manual_seed(1))
    _assert_same(_vmap_run(setup, optimizer, indices), _engine_run(setup, optimizer, indices))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_truncation_and_checkpointing_match_the_vmap_path(setup, optimizer):
    expected = _vmap_run(setup, optimizer, truncate=2)
    _assert_same(expected, _engine_run(setup, optimizer, truncate=2))
    _assert_same(_vmap_run(setup, optimizer), _engine_run(setup, optimizer, checkpointed=True))


def test_es_mode_builds_no_graph(setup):
    objective, batch, template, params, loss = setup
    engine = BatchedInnerLoop(template, loss, objective, "adam", lr=LR)
    loss_params = dict(loss.named_parameters())
    with torch.no_grad():
        trained = engine.train(params, loss_params, batch, STEPS)
        objectives = engine.run(params, loss_params, batch, STEPS)
    assert all(p.grad_fn is None and not p.requires_grad for p in trained.values())
    assert objectives.grad_fn is None and torch.isfinite(objectives).all()
    _, graphed = _engine_run(setup, "adam")
    torch.testing.assert_close(objectives, engine.run(params, loss_params, batch, STEPS).detach())
    assert all(g is not None for g in graphed)


def _tiny_mlp_by_hand(optimizer: str):
    """One float64 step of a 2-3-1 tanh MLP with MSE, written out, for two tasks."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(2, 5, 1, generator=generator, dtype=torch.float64)
    w1 = torch.randn(2, 3, 2, generator=generator, dtype=torch.float64)
    b1 = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    w2 = torch.randn(2, 1, 3, generator=generator, dtype=torch.float64)
    b2 = torch.randn(2, 1, generator=generator, dtype=torch.float64)
    lr = torch.tensor([0.1, 0.3], dtype=torch.float64)
    expected = {}
    for t in range(2):
        hidden = torch.tanh(x[t] @ w1[t].T + b1[t])
        error = 2 * (hidden @ w2[t].T + b2[t] - y[t]) / 5  # d mean((ŷ - y)²) / dŷ
        back = (error @ w2[t]) * (1 - hidden**2)
        grads = {
            "0.weight": back.T @ x[t],
            "0.bias": back.sum(0),
            "2.weight": error.T @ hidden,
            "2.bias": error.sum(0),
        }
        for name, g in grads.items():
            if optimizer == "adam":  # first step: m̂ = g, v̂ = g²
                g = g / (torch.sqrt(g**2 + 1e-8) + 1e-8)
            start = {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2}[name][t]
            expected.setdefault(name, []).append(start - lr[t] * g)
    params = {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2}
    return TaskBatch(x, y, x, y), params, lr, {k: torch.stack(v) for k, v in expected.items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_matches_a_float64_step_by_hand(optimizer):
    batch, params, lr, expected = _tiny_mlp_by_hand(optimizer)
    template = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    spec = StackedAdam(1.0) if optimizer == "adam" else StackedSGD(1.0)
    engine = BatchedInnerLoop(template, nn.MSELoss(), plain_objective(mse_objective), spec)
    with torch.no_grad():
        trained = engine.train(params, {}, batch, 1, lr=lr)
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-12, atol=1e-12)


def test_the_digits_cnn_runs_as_it_does_alone():
    from learnedloss.families.digits.tasks import SmallCNN

    model = SmallCNN(5)
    plan = compile_model(model, (64,))
    x = torch.rand(3, 7, 64)
    params = {k: torch.stack([v.detach()] * 3) for k, v in model.named_parameters()}
    with torch.no_grad():
        torch.testing.assert_close(plan.forward(params, x), model(x.reshape(-1, 64)).view(3, 7, 5))


class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.head = nn.Linear(128, 2)

    def forward(self, x):  # a forward the engine's plan does not guess
        return self.head(torch.tanh(self.conv(x.reshape(-1, 1, 8, 8))).flatten(1))


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)), "buffers"),
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(), nn.Linear(4, 1)), "Dropout"),
        (_Skip(), "forward"),
    ],
)
def test_other_models_are_refused_with_a_reason(model, reason):
    with pytest.raises(EngineUnsupported, match=reason):
        compile_model(model, (4,) if isinstance(model, nn.Sequential) else (64,))


def test_a_torchopt_optimizer_is_refused_and_a_batch_dependent_loss_is_not():
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1))
    objective = plain_objective(mse_objective)
    with pytest.raises(EngineUnsupported, match="sgd"):
        BatchedInnerLoop(model, nn.MSELoss(), objective, make_inner_optimizer("sgd", 0.1))
    weighted = LearnedLoss(LossConfig(residual=True, residual_form="weight"))
    BatchedInnerLoop(model, weighted, objective, "sgd", lr=0.1)  # runs task by task


def test_minibatch_indices_walk_every_row_once_an_epoch():
    indices = minibatch_indices(3, 10, 5, 4, torch.Generator().manual_seed(0))
    assert indices.shape == (4, 3, 5)
    for task in range(3):
        assert sorted(indices[:2, task].flatten().tolist()) == list(range(10))
    assert not torch.equal(indices[:, 0], indices[:, 1])


def test_the_digits_cnn_trains_as_on_the_vmap_path():
    from learnedloss.families.digits.tasks import SmallCNN

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 12, 64, generator=generator)
    y = torch.randint(0, 3, (2, 12), generator=generator)
    batch = TaskBatch(x[:, :6], y[:, :6], x[:, 6:], y[:, 6:])
    template, params = initial_params(lambda: SmallCNN(3), 2, generator)
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(kind="classification", hidden_sizes=(8,)))
    objective = plain_objective(nn.functional.cross_entropy)
    setup = (objective, batch, template, params, loss)
    _assert_same(_vmap_run(setup, "adam", steps=2), _engine_run(setup, "adam", steps=2))


@pytest.mark.parametrize(
    "activation", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.ELU(0.7), nn.LeakyReLU(0.1)]
)
def test_the_written_out_backward_is_autograd_s(activation):
    model = nn.Sequential(nn.Linear(3, 5), activation, nn.Linear(5, 2)).double()
    plan = compile_model(model, (3,))
    assert plan.has_manual_backward
    generator = torch.Generator().manual_seed(0)
    params = {
        name: torch.randn(2, *p.shape, generator=generator, dtype=torch.float64).requires_grad_()
        for name, p in model.named_parameters()
    }
    x = torch.randn(2, 7, 3, generator=generator, dtype=torch.float64)
    output, kept = plan.forward_kept(params, x)
    expected = torch.autograd.grad(output.sin().sum(), list(params.values()))
    written = plan.backward(params, kept, output.cos())
    for e, w in zip(expected, written, strict=True):
        torch.testing.assert_close(w, e)


def test_engine_refusal_says_why_in_one_line_or_nothing(setup):
    _, batch, template, _, loss = setup
    assert engine_refusal(template, loss, "adam", LR, default_loss_arguments, batch) is None
    with_norm = nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    reason = engine_refusal(with_norm, loss, "adam", LR, default_loss_arguments, batch)
    assert "buffers" in reason and "\n" not in reason


def test_the_parameters_widths_count_not_the_template_s(setup):
    objective, batch, template, params, loss = setup
    narrow = mlp((1, 3, 2, 1))  # the same layers, other widths (a family may draw widths)
    loss_params = {k: v.detach() for k, v in loss.named_parameters()}
    with torch.no_grad():
        expected = BatchedInnerLoop(template, loss, objective, "adam", lr=LR)
        got = BatchedInnerLoop(narrow, loss, objective, "adam", lr=LR)
        torch.testing.assert_close(
            got.run(params, loss_params, batch, 2), expected.run(params, loss_params, batch, 2)
        )


def test_an_mlp_plan_serves_tasks_of_another_input_width_than_the_template():
    """A family's tasks may differ in input width (robust-regression's tables): the plan
    takes its widths from the parameters, and is checked on the template's own width."""
    from learnedloss.meta.engine.models import compile_model

    plan = compile_model(mlp((8, 16, 1)), (2,))
    narrow = mlp((2, 16, 1))
    params = {name: p.detach().unsqueeze(0) for name, p in narrow.named_parameters()}
    x = torch.randn(1, 5, 2)
    with torch.no_grad():
        assert torch.allclose(plan.forward(params, x)[0], narrow(x[0]), atol=1e-6)


# -- batch-dependent losses: every task's batch statistics are its own -----------------------


def _robust_regression_setup():
    """Robust-regression tasks of different target scales (0.5 to 3, small enough for SGD at
    `LR` not to diverge) and the recipe's scale-free, batch-dependent loss, its weights moved
    off the start (at the start it is exactly MSE, so its batch statistics would not show in
    the inner loop)."""
    import dataclasses

    from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe

    recipe = RobustRegressionRecipe(sources=("synthetic",))
    tasks = recipe.tasks()
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(4, generator)
    scale = torch.tensor([0.5, 1.0, 2.0, 3.0]).view(4, 1, 1)
    scale = scale / batch.y_train.std(dim=1, keepdim=True)
    batch = dataclasses.replace(batch, y_train=batch.y_train * scale, y_query=batch.y_query * scale)
    template, params = initial_params(tasks.make_model, 4, generator)
    loss = recipe.initial_loss()
    with torch.no_grad():
        for p in loss.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    assert loss.batch_dependent
    return tasks.meta_objective, batch, template, params, loss


def _noisy_labels_setup():
    """Noisy-label tasks and a noisy-labels recipe's loss over ``log_relative_ce`` (each
    sample's cross-entropy over the call's median: batch-dependent)."""
    from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe

    recipe = NoisyLabelsRecipe(
        sources=("synthetic",),
        n_classes=(5,),
        widths=(16,),
        parameterization="grid",
        inputs=("log_relative_ce",),
        start_truncation=(1.0, 3.0),
    )
    tasks = recipe.tasks()
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(4, generator)
    template, params = initial_params(tasks.make_model, 4, generator)
    loss = recipe.initial_loss()
    assert loss.batch_dependent
    return tasks.meta_objective, batch, template, params, loss


@pytest.mark.parametrize("make_setup", [_robust_regression_setup, _noisy_labels_setup])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_batch_dependent_loss_trains_as_on_the_vmap_path(make_setup, optimizer):
    setup = make_setup()
    _assert_same(_vmap_run(setup, optimizer), _engine_run(setup, optimizer))


def test_a_batch_dependent_loss_is_each_task_s_own():
    """One call over all tasks' rows would give each task the pooled median's scale."""
    from learnedloss.meta.engine.losses import stacked_loss_apply

    _, batch, _, _, loss = _robust_regression_setup()
    scales = torch.tensor([0.01, 1.0, 100.0, 1e4]).view(4, 1, 1)
    target = batch.y_train * scales
    prediction = target + torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    loss_params = {k: v.detach() for k, v in loss.named_parameters()}
    with torch.no_grad():
        got = stacked_loss_apply(loss)(loss_params, prediction, target, {"x": batch.x_train})
        alone = torch.stack([loss(prediction[t], target[t]) for t in range(4)])
    torch.testing.assert_close(got, alone, rtol=1e-5, atol=1e-6)


def test_a_batch_dependent_population_trains_as_each_candidate_alone():
    objective, batch, template, params, loss = _robust_regression_setup()
    engine = BatchedInnerLoop(template, loss, objective, "adam", lr=LR)
    generator = torch.Generator().manual_seed(2)
    population = [
        {
            k: v.detach() + 0.1 * torch.randn(v.shape, generator=generator)
            for k, v in loss.named_parameters()
        }
        for _ in range(3)
    ]
    with torch.no_grad():
        alone = torch.cat([engine.run(params, own, batch, STEPS) for own in population])
        tiled = {k: v.repeat(3, *[1] * (v.dim() - 1)) for k, v in params.items()}
        together = engine.run(tiled, population, tile_batch(batch, 3), STEPS)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("estimator", ["es", "cmaes"])
def test_the_robust_regression_recipe_s_loss_meta_trains_on_the_engine(estimator):
    from learnedloss import MetaTrainer
    from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
    from learnedloss.meta import CMAES, EvolutionStrategies

    estimators = {
        "es": EvolutionStrategies(pairs=2, sigma=0.05),
        "cmaes": CMAES(population=4, sigma=0.1),
    }

    recipe = RobustRegressionRecipe(sources=("synthetic",), inner_steps=5, meta_batch_size=2)
    arguments = recipe.settings.trainer_arguments()
    arguments.update(
        validate_every=0,
        path="engine",
        progress=False,
        meta_gradient=estimators[estimator],
    )
    trainer = MetaTrainer(recipe.initial_loss(), recipe.tasks(), **arguments)
    assert trainer.path == "engine", trainer.path_reason
    before = [p.detach().clone() for p in trainer.loss.parameters()]
    trainer.fit(2)
    assert trainer.path == "engine"
    assert len(trainer.history) == 2
    after = list(trainer.loss.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


class _WriteRecorder:
    """Records every attribute set on one module while installed."""

    def __init__(self, monkeypatch, module: nn.Module):
        self.names: list[str] = []
        original = type(module).__setattr__

        def recording(obj, name, value):
            if obj is module:
                self.names.append(name)
            original(obj, name, value)

        monkeypatch.setattr(type(module), "__setattr__", recording)


@pytest.mark.parametrize("kind", ["learned", "learned-frozen", "mse"])
def test_the_engine_computes_the_loss_without_changing_the_loss_module(monkeypatch, kind):
    objective, batch, template, params, loss = _sine_setup()
    if kind == "mse":
        loss = nn.MSELoss(reduction="sum")
    else:
        loss = LearnedLoss(loss.config, reduction="sum", check_finite=True)
        loss.load_state_dict(_sine_setup()[-1].state_dict())
        if kind == "learned-frozen":
            loss.freeze()
    loss_params = {k: v.detach() for k, v in loss.named_parameters()}
    engine = BatchedInnerLoop(template, loss, objective, "adam", lr=LR)
    recorder = _WriteRecorder(monkeypatch, loss)
    with torch.no_grad():
        got = engine.run(params, loss_params, batch, STEPS)
    assert recorder.names == []  # no reduction='none' and back, no check_finite toggled
    assert loss.reduction == "sum"
    monkeypatch.undo()
    twin = nn.MSELoss() if kind == "mse" else LearnedLoss(loss.config)
    if kind != "mse":
        twin.load_state_dict(loss.state_dict())
        if kind == "learned-frozen":
            twin.freeze()
    twin_params = {k: v.detach() for k, v in twin.named_parameters()}
    with torch.no_grad():  # the per-task mean, whatever the module's own reduction
        expected = BatchedInnerLoop(template, twin, objective, "adam", lr=LR).run(
            params, twin_params, batch, STEPS
        )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_loss_with_weights_outside_its_network_is_refused():
    from learnedloss.meta.engine.losses import stacked_loss_apply

    loss = LearnedLoss(LossConfig())
    loss.temperature = nn.Parameter(torch.ones(()))
    with pytest.raises(EngineUnsupported, match="outside its network"):
        stacked_loss_apply(loss)
