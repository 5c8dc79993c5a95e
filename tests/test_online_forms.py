"""The online learner's forms and horizon (issue 29): the scale-normalized ``"shape"`` form is
invariant to the loss's scale, the Meta-Weight-Net ``"sample-weights"`` form starts as the
standard loss and trains, a start from a bundled loss, and the k-step look-ahead (k=1 is
today's step bit for bit; k=2 matches finite differences)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchopt
from test_online import linear_problem, run_repo_script, smooth_loss
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.online import OnlineLossTrainer
from learnedloss.online import lookahead as la
from learnedloss.online.forms import SampleWeightedLoss, ScaleNormalizedLoss

torch.set_num_threads(1)


def leaves(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def fresh_model() -> nn.Module:
    return linear_problem()[0]


class Scaled(nn.Module):
    """``factor`` times ``loss``, sharing its parameters."""

    def __init__(self, loss: nn.Module, factor: float) -> None:
        super().__init__()
        self.loss, self.factor = loss, factor

    def forward(self, prediction, target):
        return self.factor * self.loss(prediction, target)


def outlier_batches(seed=0, n=32, steps=30):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 1, generator=g, dtype=torch.float64)
    out = []
    for _ in range(steps):
        x = torch.randn(n, 3, generator=g, dtype=torch.float64)
        y = x @ w
        noisy = y.clone()
        noisy[: n // 4] += 5 * torch.randn(n // 4, 1, generator=g, dtype=torch.float64)
        out.append((x, noisy, x, y))
    return out


@pytest.mark.parametrize("optimizer", [torchopt.sgd(0.1), torchopt.adam(0.05, eps_root=1e-8)])
def test_shape_form_ignores_the_loss_scale(optimizer):
    """Multiplying the learned loss by a constant changes neither the model's update nor the
    meta-gradient under the ``"shape"`` form (SGD and Adam)."""
    loss = smooth_loss()
    model, (x, y, x_val, y_val) = linear_problem()
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    state = optimizer.init({n: p.detach() for n, p in params.items()})
    results = []
    for factor in (1.0, 7.5, 0.01):
        normalized = ScaleNormalizedLoss(Scaled(loss, factor), "regression")
        new_params, _, _ = la.lookahead(model, params, normalized, optimizer, state, x, y)
        value = la.validation_objective(model, new_params, F.mse_loss, x_val, y_val)
        grads = la.meta_gradient(value, dict(loss.named_parameters()))
        results.append(({n: p.detach() for n, p in new_params.items()}, grads))
    for new_params, grads in results[1:]:
        for name, p in new_params.items():
            torch.testing.assert_close(p, results[0][0][name], rtol=1e-10, atol=1e-12)
        for name, g in grads.items():
            torch.testing.assert_close(g, results[0][1][name], rtol=1e-8, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in results[0][1].values())


def test_shape_form_from_mse_starts_as_mse_and_trains():
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    reference = nn.Linear(3, 1).double()
    reference.load_state_dict(model.state_dict())
    trainer = OnlineLossTrainer(model, "mse", optimizer="sgd", lr=0.05, meta_lr=1e-2, form="shape")
    batches = outlier_batches()
    x, y, x_val, y_val = batches[0]
    trainer.step(x, y, x_val, y_val)
    F.mse_loss(reference(x), y).backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.05 * p.grad
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    before = leaves(trainer.loss)
    records = [trainer.step(*batch) for batch in batches[1:]]
    assert all(not r["skipped"] for r in records)
    assert records[-1]["objective"] < records[0]["objective"]
    assert any(not torch.equal(a, b) for a, b in zip(before, leaves(trainer.loss), strict=True))
    assert trainer.describe()["form"] == "shape"
    assert isinstance(trainer.learned_loss(), LearnedLoss)


@pytest.mark.parametrize(
    ("name", "outputs", "labels"), [("robust-regression", 1, False), ("noisy-labels", 4, True)]
)
def test_start_from_a_bundled_loss(name, outputs, labels):
    torch.manual_seed(0)
    model, x = nn.Linear(3, outputs), torch.randn(16, 3)
    y = torch.randint(0, outputs, (16,)) if labels else torch.randn(16, 1)
    bundled = LearnedLoss.from_pretrained(name)
    expected = float(bundled(model(x), y).detach())
    trainer = OnlineLossTrainer(model, name, optimizer="sgd", lr=0.1)
    record = trainer.step(x, y, x, y)
    assert record["train_loss"] == pytest.approx(expected, rel=1e-6)
    assert name in trainer.started_from
    assert any(p.requires_grad for p in trainer.loss.parameters())
    assert not any(True for _ in LearnedLoss.from_pretrained(name).parameters())  # still frozen


def test_unknown_start_names_the_choices():
    with pytest.raises(ValueError, match="robust-regression"):
        OnlineLossTrainer(nn.Linear(3, 1), "robust-regresion", optimizer="sgd", lr=0.1)


def run(trainer, batches):
    return [trainer.step(*batch) for batch in batches]


@pytest.mark.parametrize("adapt_every", [1, 3])
def test_one_step_lookahead_is_todays_step_bit_for_bit(adapt_every):
    batches = outlier_batches(steps=7)
    trained = []
    for extra in ({}, {"lookahead_steps": 1, "form": "loss"}):
        model = fresh_model()
        trainer = OnlineLossTrainer(
            model, smooth_loss(), optimizer="adam", lr=0.01, adapt_every=adapt_every, **extra
        )
        records = run(trainer, batches)
        trained.append((leaves(model) + leaves(trainer.loss), records))
    for a, b in zip(trained[0][0], trained[1][0], strict=True):
        assert torch.equal(a, b)
    assert trained[0][1] == trained[1][1]


def k_step_objective(loss, model, batches, lr):
    """The validation MSE after SGD steps on each batch but the last's validation pair."""
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    for x, y, *_ in batches:
        params = {n: p.requires_grad_(True) for n, p in params.items()}
        value = loss(torch.func.functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(value, list(params.values()), create_graph=True)
        params = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
    x_val, y_val = batches[-1][2:]
    return F.mse_loss(torch.func.functional_call(model, params, (x_val,)), y_val)


def test_two_step_lookahead_meta_gradient_matches_finite_differences():
    batches = outlier_batches(steps=2)
    model = fresh_model()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = OnlineLossTrainer(
        model, smooth_loss(), optimizer="sgd", lr=0.1, meta_optimizer="sgd", meta_lr=1.0,
        lookahead_steps=2,
    )  # fmt: skip
    phi = [p.detach().clone() for p in trainer.loss.parameters()]
    first, second = run(trainer, batches)
    assert not first["adapted"] and first["objective"] is None
    assert second["adapted"] and not second["skipped"]
    after = trainer.loss.parameters()
    meta_grad = [old - new.detach() for old, new in zip(phi, after, strict=True)]
    assert all(torch.isfinite(g).all() for g in meta_grad)

    probe_model = fresh_model()
    probe_model.load_state_dict(start)
    probe = smooth_loss()
    eps = 1e-6
    for index in (0, len(phi) - 2):  # the first and last weight matrices
        for flat in (0, phi[index].numel() - 1):
            values = []
            for sign in (1, -1):
                with torch.no_grad():
                    for p, v in zip(probe.parameters(), phi, strict=True):
                        p.copy_(v)
                    list(probe.parameters())[index].view(-1)[flat] += sign * eps
                values.append(k_step_objective(probe, probe_model, batches, 0.1).item())
            numeric = (values[0] - values[1]) / (2 * eps)
            assert meta_grad[index].view(-1)[flat].item() == pytest.approx(
                numeric, rel=1e-4, abs=1e-9
            )


def test_lookahead_windows_follow_adapt_every_and_resume():
    batches = outlier_batches(steps=8)
    model = fresh_model()
    trainer = OnlineLossTrainer(
        model, smooth_loss(), optimizer="adam", lr=0.01, adapt_every=3, lookahead_steps=2
    )
    records = run(trainer, batches[:6])
    assert [r["adapted"] for r in records] == [False, True, False, False, True, False]
    saved = trainer.state_dict()  # at a window's end
    tail = run(trainer, batches[6:])
    resumed_model = fresh_model()
    resumed = OnlineLossTrainer(
        resumed_model, smooth_loss(), optimizer="adam", lr=0.01, adapt_every=3, lookahead_steps=2
    )
    resumed.load_state_dict(saved)
    assert run(resumed, batches[6:]) == tail
    for a, b in zip(leaves(model), leaves(resumed_model), strict=True):
        assert torch.equal(a, b)


def test_sample_weights_form_starts_as_the_standard_loss_and_trains():
    batches = outlier_batches(steps=40)
    model = fresh_model()
    reference = fresh_model()
    trainer = OnlineLossTrainer(
        model, "mse", optimizer="sgd", lr=0.05, meta_lr=1e-2, form="sample-weights"
    )
    assert isinstance(trainer.loss, SampleWeightedLoss)
    x, y, *_ = batches[0]
    assert trainer.loss(reference(x), y).item() == pytest.approx(F.mse_loss(reference(x), y).item())
    records = run(trainer, batches)
    assert all(r["adapted"] and not r["skipped"] for r in records)
    assert records[-1]["objective"] < records[0]["objective"]
    per_sample = torch.linspace(0, 10, 11, dtype=torch.float64)
    weights = trainer.loss.weights(per_sample)
    assert weights.mean().item() == pytest.approx(1.0)
    assert not torch.allclose(weights, torch.ones_like(weights))  # it learned a weighting
    with pytest.raises(TypeError, match="not a LearnedLoss"):
        trainer.learned_loss()


def test_sample_weights_form_for_classification_and_its_checks():
    torch.manual_seed(0)
    trainer = OnlineLossTrainer(
        nn.Linear(3, 4), "cross-entropy", optimizer="sgd", lr=0.1, form="sample-weights"
    )
    x, labels = torch.randn(8, 3), torch.randint(0, 4, (8,))
    assert torch.isfinite(torch.tensor(trainer.step(x, labels, x, labels)["objective"]))
    with pytest.raises(ValueError, match="form must be one of"):
        OnlineLossTrainer(nn.Linear(3, 1), "mse", optimizer="sgd", lr=0.1, form="scale")
    with pytest.raises(ValueError, match="pass loss='mse' or 'cross-entropy'"):
        OnlineLossTrainer(
            nn.Linear(3, 1), smooth_loss(), optimizer="sgd", lr=0.1, form="sample-weights"
        )


def test_loops_example_runs_in_a_plain_loop_and_in_lightning(tmp_path):
    png = tmp_path / "weights.png"
    result = run_repo_script(
        "examples/online_loops.py",
        *("--seeds", "1", "--steps", "10", "--forms", "sample-weights", "shape"),
        *("--lightning", "--weights", str(png)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| online, sample-weights + early stopping |" in result.stdout
    assert "Lightning, online sample-weights: test MSE" in result.stdout
    assert png.stat().st_size > 0


@pytest.mark.parametrize("data", ["diabetes", "digits"])
def test_fair_benchmark_prints_its_table(data, tmp_path):
    png = tmp_path / "shapes.png"
    result = run_repo_script(
        "benchmarks/online_fair.py",
        *("--data", data, "--seeds", "2", "--steps", "4", "--eval-every", "2"),
        *("--optimizers", "adam", "--online", "shape", "sample-weights", "--shapes", str(png)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "**(best baseline)**" in result.stdout and "| online, sample-weights |" in result.stdout
    assert "cosine lr" in result.stdout and "(control)" in result.stdout
    assert png.exists() == (data == "diabetes")


def test_cost_benchmark_times_the_forms():
    result = run_repo_script(
        "benchmarks/online_cost.py",
        *("--widths", "8", "--steps", "4", "--repeats", "1", "--adapt-every", "1", "2"),
        *("--form", "shape", "--lookahead-steps", "2", "--val-batch", "16"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "form 'shape', look-ahead 2, validation batch 16" in result.stdout
    assert "| 8 |" in result.stdout
