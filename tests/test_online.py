"""Online loss learning (learnedloss.online): hand-computed steps, the meta-gradient against
finite differences, carried optimizer state, resume, skipped updates, argument checks and the
example."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from learnedloss import ConfigError, LearnedLoss, LossConfig
from learnedloss.online import OnlineLossTrainer, ShapeRecorder, loss_shape

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


def run_repo_script(path: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a repository script (``examples/...`` or ``benchmarks/...``) as a user would, from
    the repository root; its return code and output are for the test to check."""
    command = [sys.executable, str(ROOT / path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def smooth_loss(dtype=torch.float64) -> LearnedLoss:
    """A residual loss network with tanh hidden units (smooth, so finite differences are
    clean) and a non-zero last layer, so the loss is not MSE and its gradient reaches every
    parameter."""
    torch.manual_seed(1)
    loss = LearnedLoss(
        LossConfig(
            hidden_sizes=(4,),
            activation="tanh",
            output_activation="square",
            bias=True,
            residual=True,
            inputs=("input", "target", "residual"),
        )
    ).to(dtype)
    with torch.no_grad():
        loss.network.layers[-1].weight.normal_(0, 0.3)
        loss.network.layers[-1].bias.fill_(0.1)
    return loss


def linear_problem(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(3, 1).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=g, dtype=dtype))
        model.bias.copy_(torch.randn(1, generator=g, dtype=dtype))
    data = [
        torch.randn(n, k, generator=g, dtype=dtype) for n, k in ((8, 3), (8, 1), (6, 3), (6, 1))
    ]
    return model, data


def hand_meta(loss, phi, theta, x, y, x_val, y_val, update):
    """The look-ahead and the meta-gradient by hand with torch.autograd: ``update(grads)``
    gives the parameter change."""
    w, b = theta
    train = functional_call(loss, phi, (x @ w.T + b, y))
    gw, gb = torch.autograd.grad(train, (w, b), create_graph=True)
    dw, db = update(gw, gb)
    w1, b1 = w + dw, b + db
    objective = F.mse_loss(x_val @ w1.T + b1, y_val)
    g_phi = torch.autograd.grad(objective, list(phi.values()))
    return (w1, b1), dict(zip(phi, g_phi, strict=True)), objective


def leaves(module):
    return {k: v.detach().clone().requires_grad_(True) for k, v in module.named_parameters()}


# ---------------------------------------------------------------------- hand-computed steps


def test_sgd_step_matches_hand_computation_in_float64():
    model, (x, y, xv, yv) = linear_problem()
    loss = smooth_loss()
    lr, meta_lr = 0.1, 0.05
    phi = leaves(loss)
    theta = (
        model.weight.detach().clone().requires_grad_(),
        model.bias.detach().clone().requires_grad_(),
    )
    (w1, b1), g_phi, objective = hand_meta(
        loss, phi, theta, x, y, xv, yv, lambda gw, gb: (-lr * gw, -lr * gb)
    )
    trainer = OnlineLossTrainer(
        model, loss, optimizer="sgd", lr=lr, meta_optimizer="sgd", meta_lr=meta_lr
    )
    record = trainer.step(x, y, xv, yv)
    torch.testing.assert_close(model.weight, w1.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(model.bias, b1.detach(), rtol=0, atol=1e-14)
    for name, p in trainer.loss.named_parameters():
        torch.testing.assert_close(
            p, phi[name].detach() - meta_lr * g_phi[name], rtol=0, atol=1e-14
        )
    assert record["objective"] == pytest.approx(float(objective.detach()), rel=1e-12)
    assert record["adapted"] and not record["skipped"]


def adam_by_hand(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=1e-8):
    """Adam's update in torchopt's form, ``mu_hat / (sqrt(nu_hat + eps_root) + eps)``, with
    explicit state. torchopt computes the bias corrections ``1 - b ** count`` from an integer
    count tensor, which gives float32 whatever the parameters' dtype; so does this."""
    state = {"mu": None, "nu": None, "count": 0}

    def correction(decay, count):
        return 1 - pow(decay, torch.tensor(count))  # float32, as in torchopt

    def update(*grads):
        mu = state["mu"] or [torch.zeros_like(g) for g in grads]
        nu = state["nu"] or [torch.zeros_like(g) for g in grads]
        count = state["count"] + 1
        mu = [b1 * m + (1 - b1) * g for m, g in zip(mu, grads, strict=True)]
        nu = [b2 * v + (1 - b2) * g * g for v, g in zip(nu, grads, strict=True)]
        out = [
            -lr
            * (m / correction(b1, count))
            / (torch.sqrt(v / correction(b2, count) + eps_root) + eps)
            for m, v in zip(mu, nu, strict=True)
        ]
        update.pending = {"mu": mu, "nu": nu, "count": count}
        return out

    def commit():
        pending = update.pending
        state["mu"] = [t.detach() for t in pending["mu"]]
        state["nu"] = [t.detach() for t in pending["nu"]]
        state["count"] = pending["count"]

    return update, commit


def test_adam_steps_match_hand_computation_and_carry_state():
    model, (x, y, xv, yv) = linear_problem(seed=3)
    loss = smooth_loss()
    lr, meta_lr = 0.05, 0.02
    phi = leaves(loss)
    theta = (model.weight.detach().clone(), model.bias.detach().clone())
    update, commit = adam_by_hand(lr)
    trainer = OnlineLossTrainer(
        model, loss, optimizer="adam", lr=lr, meta_optimizer="sgd", meta_lr=meta_lr
    )
    batches = [(x, y, xv, yv), (xv, yv, x, y), (x, y, xv, yv)]
    for x_t, y_t, xv_t, yv_t in batches:
        theta = tuple(t.detach().clone().requires_grad_() for t in theta)
        theta, g_phi, _ = hand_meta(loss, phi, theta, x_t, y_t, xv_t, yv_t, update)
        commit()
        phi = {k: (v - meta_lr * g_phi[k]).detach().requires_grad_() for k, v in phi.items()}
        trainer.step(x_t, y_t, xv_t, yv_t)
        torch.testing.assert_close(model.weight, theta[0].detach(), rtol=0, atol=1e-13)
        torch.testing.assert_close(model.bias, theta[1].detach(), rtol=0, atol=1e-13)
        for name, p in trainer.loss.named_parameters():
            torch.testing.assert_close(p, phi[name].detach(), rtol=0, atol=1e-13)
    # the state really is carried: Adam's count is the number of steps taken
    counts = {int(t) for t in trainer.state_dict()["optimizer"] if t.dim() == 0}
    assert counts == {3}


def test_adam_state_is_carried_through_plain_steps_too():
    model, (x, y, xv, yv) = linear_problem(seed=4)
    # meta_lr is negligible, so the loss stays MSE and only the optimizer state matters
    trainer = OnlineLossTrainer(
        model,
        "mse",
        optimizer="adam",
        lr=0.01,
        meta_optimizer="sgd",
        meta_lr=1e-12,
        adapt_every=100,
    )
    update, commit = adam_by_hand(0.01)
    theta = [p.detach().clone() for p in model.parameters()]
    for _ in range(4):  # step 1 adapts, steps 2-4 are plain
        trainer.step(x, y, xv, yv)
        w, b = (t.requires_grad_() for t in theta)
        grads = torch.autograd.grad(F.mse_loss(x @ w.T + b, y), (w, b))
        theta = [(t + u).detach() for t, u in zip(theta, update(*grads), strict=True)]
        commit()
    for p, expected in zip(model.parameters(), theta, strict=True):
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- the meta-gradient


def test_meta_gradient_matches_finite_differences():
    model, (x, y, xv, yv) = linear_problem(seed=5)
    loss = smooth_loss()
    lr, meta_lr = 0.2, 1.0
    theta = (model.weight.detach().clone(), model.bias.detach().clone())
    before = {k: v.detach().clone() for k, v in loss.named_parameters()}
    trainer = OnlineLossTrainer(
        model, loss, optimizer="sgd", lr=lr, meta_optimizer="sgd", meta_lr=meta_lr
    )
    trainer.step(x, y, xv, yv)
    analytic = {k: (before[k] - v.detach()) / meta_lr for k, v in trainer.loss.named_parameters()}

    def objective(phi):
        w, b = (t.clone().requires_grad_() for t in theta)
        train = functional_call(loss, phi, (x @ w.T + b, y))
        gw, gb = torch.autograd.grad(train, (w, b))
        return F.mse_loss(xv @ (w - lr * gw).T + (b - lr * gb), yv).item()

    eps = 1e-6
    for name, value in before.items():
        for i in range(value.numel()):
            plus = {k: v.clone() for k, v in before.items()}
            minus = {k: v.clone() for k, v in before.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            assert analytic[name].view(-1)[i].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)


# ---------------------------------------------------------------------- the start


def test_first_step_equals_a_plain_mse_sgd_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    reference = copy.deepcopy(model)
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64)
    trainer = OnlineLossTrainer(model, "mse", optimizer="sgd", lr=0.1)
    record = trainer.step(x, y, x, y)
    assert record["train_loss"] == pytest.approx(F.mse_loss(reference(x), y).item(), rel=1e-14)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    F.mse_loss(reference(x), y).backward()
    optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_first_step_equals_a_plain_cross_entropy_sgd_step():
    torch.manual_seed(0)
    model = nn.Linear(5, 4).double()
    reference = copy.deepcopy(model)
    x, labels = torch.randn(12, 5, dtype=torch.float64), torch.randint(0, 4, (12,))
    trainer = OnlineLossTrainer(model, "cross-entropy", optimizer="sgd", lr=0.5)
    trainer.step(x, labels, x, labels)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    F.cross_entropy(reference(x), labels).backward()
    optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_pretrained_loss_is_copied_and_the_original_stays_frozen(tmp_path):
    pretrained = LearnedLoss.from_pretrained("mse-fit")
    weights = {k: v.clone() for k, v in pretrained.state_dict().items()}
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    trainer = OnlineLossTrainer(
        model, pretrained, lr=0.01, meta_lr=1e-2, description="three toy features"
    )
    assert trainer.loss is not pretrained
    assert all(p.requires_grad for p in trainer.loss.parameters())
    for _ in range(3):
        trainer.step(x, y, xv, yv)
    assert not any(p.requires_grad for p in pretrained.parameters())  # still frozen
    for k, v in pretrained.state_dict().items():
        assert torch.equal(v, weights[k])
    assert any(not torch.equal(v, weights[k]) for k, v in trainer.loss.state_dict().items())
    learned = trainer.learned_loss()
    assert not any(p.requires_grad for p in learned.parameters())
    training = learned.metadata["training"]
    assert training["learned_on"] == "three toy features"
    assert training["steps"] == 3 and training["adapt_every"] == 1
    assert training["optimizer"] == "sgd"
    assert "warm_start" in training  # the pretrained loss's own record is kept
    learned.save_pretrained(tmp_path / "online")
    loaded = LearnedLoss.from_pretrained(tmp_path / "online")
    assert loaded.metadata["training"]["learned_on"] == "three toy features"
    assert "three toy features" in (tmp_path / "online" / "README.md").read_text()
    torch.testing.assert_close(
        loaded(xv @ torch.ones(3, 1), yv), learned(xv @ torch.ones(3, 1), yv)
    )


# ---------------------------------------------------------------------- the loop


def test_adapt_every_alternates_adapting_and_plain_steps():
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    trainer = OnlineLossTrainer(model, "mse", lr=0.05, meta_lr=1e-2, adapt_every=3)
    snapshots, records = [], []
    for _ in range(5):
        snapshots.append({k: v.clone() for k, v in trainer.loss.state_dict().items()})
        records.append(trainer.step(x, y, xv, yv))
    assert [r["adapted"] for r in records] == [True, False, False, True, False]
    assert [r["objective"] is None for r in records] == [False, True, True, False, True]
    after = trainer.loss.state_dict()
    assert all(torch.equal(after[k], snapshots[4][k]) for k in after)  # step 5 was plain
    assert trainer.adapted == 2 and trainer.steps == 5


def test_validation_iterable_is_drawn_on_adapting_steps_and_restarted():
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    drawn = []

    class Loader:
        def __iter__(self):
            drawn.append("restart")
            yield xv, yv

    trainer = OnlineLossTrainer(model, "mse", lr=0.05, adapt_every=2, validation=Loader())
    for _ in range(5):
        trainer.step(x, y)
    assert drawn == ["restart"] * 3  # steps 1, 3, 5 adapt; the one-batch loader restarts
    spent = OnlineLossTrainer(model, "mse", lr=0.05, validation=iter([(xv, yv)]))
    spent.step(x, y)
    with pytest.raises(ValueError, match="no batches"):
        spent.step(x, y)


def test_batchnorm_running_statistics_follow_the_training_batch_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    reference = copy.deepcopy(model)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    xv, yv = 5 + 3 * torch.randn(16, 3), torch.randn(16, 1)
    trainer = OnlineLossTrainer(model, "mse", lr=0.05, meta_lr=1e-2)
    trainer.step(x, y, xv, yv)
    reference(x)  # one training forward pass in train mode
    for name, buffer in reference.named_buffers():
        assert torch.equal(dict(model.named_buffers())[name], buffer), name


def test_callbacks_get_every_record_and_shapes_are_recorded():
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    seen = []
    recorder = ShapeRecorder(torch.linspace(-2, 2, 9), at=(2, 4))
    trainer = OnlineLossTrainer(
        model,
        "mse",
        lr=0.05,
        meta_lr=0.05,
        callbacks=[lambda t, r: seen.append(r["step"]), recorder],
    )
    recorder.start(trainer.loss)
    for _ in range(4):
        trainer.step(x, y, xv, yv)
    assert seen == [1, 2, 3, 4] and sorted(recorder.shapes) == [0, 2, 4]
    torch.testing.assert_close(recorder.shapes[0], torch.linspace(-2, 2, 9) ** 2)
    torch.testing.assert_close(
        loss_shape(trainer.loss, torch.linspace(-2, 2, 9)), recorder.shapes[4]
    )


def test_autocast_bfloat16_runs_on_cpu():
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    trainer = OnlineLossTrainer(model, "mse", lr=0.05, autocast=torch.bfloat16)
    record = trainer.step(x, y, xv, yv)
    assert not record["skipped"]
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())


# ---------------------------------------------------------------------- resume and failure


def test_state_dict_round_trip_resumes_bit_identically():
    def fresh(seed):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
        return model, OnlineLossTrainer(
            model, "mse", optimizer="adam", lr=0.01, meta_lr=1e-2, adapt_every=2
        )

    g = torch.Generator().manual_seed(0)
    batches = [[torch.randn(16, k, generator=g) for k in (3, 1, 3, 1)] for _ in range(6)]
    model_a, straight = fresh(0)
    records_a = [straight.step(*b) for b in batches]

    _, first = fresh(0)
    records_b = [first.step(*b) for b in batches[:3]]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    model_c, resumed = fresh(1)  # different initialization, overwritten by the load
    resumed.load_state_dict(torch.load(buffer))
    records_b += [resumed.step(*b) for b in batches[3:]]

    assert records_a == records_b
    for (name, a), b in zip(
        model_a.state_dict().items(), model_c.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for a, b in zip(straight.loss.parameters(), resumed.loss.parameters(), strict=True):
        assert torch.equal(a, b)
    sa, sb = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(sa["optimizer"], sb["optimizer"], strict=True))


def test_load_state_dict_refuses_a_different_optimizer():
    model, _ = linear_problem(dtype=torch.float32)
    saved = OnlineLossTrainer(model, "mse", optimizer="adam", lr=0.01).state_dict()
    other = OnlineLossTrainer(model, "mse", optimizer="sgd", lr=0.01)
    with pytest.raises(ValueError, match="built differently"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"model": {}})


def test_non_finite_meta_gradient_is_skipped_and_reported():
    model, (x, y, xv, yv) = linear_problem(dtype=torch.float32)
    calls = []

    def objective(prediction, target):
        calls.append(1)
        value = F.mse_loss(prediction, target)
        return value * float("nan") if len(calls) == 1 else value

    trainer = OnlineLossTrainer(model, "mse", lr=0.05, meta_lr=1e-2, objective=objective)
    weights = {k: v.clone() for k, v in trainer.loss.state_dict().items()}
    model_before = model.weight.detach().clone()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        record = trainer.step(x, y, xv, yv)
    assert record["skipped"] and trainer.skipped == 1
    assert all(torch.equal(v, weights[k]) for k, v in trainer.loss.state_dict().items())
    assert not torch.equal(model.weight, model_before)  # the model still took its step
    assert all(torch.isfinite(p).all() for p in trainer.loss.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not trainer.step(x, y, xv, yv)["skipped"]
    assert trainer.learned_loss().metadata["training"]["skipped_updates"] == 1


# ---------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "rmsprop", "lr": 0.1}, ValueError, "optimizer must be one of"),
        ({"optimizer": "sgd"}, ValueError, "needs a learning rate"),
        ({"lr": -1.0}, ValueError, "lr must be a finite number > 0"),
        ({"lr": float("nan")}, ValueError, "lr must be a finite number > 0"),
        ({"lr": 0.1, "meta_lr": 0}, ValueError, "meta_lr must be a finite number > 0"),
        ({"lr": 0.1, "adapt_every": 0}, ValueError, "adapt_every must be an int >= 1"),
        ({"lr": 0.1, "adapt_every": 1.5}, ValueError, "adapt_every must be an int >= 1"),
        ({"lr": 0.1, "meta_optimizer": "lbfgs"}, ValueError, "meta_optimizer must be"),
        ({"lr": 0.1, "objective": "mse"}, TypeError, "objective must be a callable"),
        ({"lr": 0.1, "autocast": torch.float64}, ValueError, "autocast must be"),
        ({"lr": 0.1, "validation": torch.zeros(3)}, TypeError, "validation must be an iterable"),
        ({"lr": 0.1, "callbacks": [1]}, TypeError, "callbacks must be callables"),
        ({"lr": 0.1, "description": 3}, TypeError, "description must be a str"),
        ({"lr": 0.1, "loss": "huber"}, ValueError, "loss must be one of"),
        ({"lr": 0.1, "loss": nn.MSELoss()}, TypeError, "nothing to learn"),
    ],
)
def test_arguments_are_checked_before_any_work(kwargs, error, match):
    model = nn.Linear(2, 1)
    loss = kwargs.pop("loss", "mse")
    with pytest.raises(error, match=match):
        OnlineLossTrainer(model, loss, **kwargs)


def test_more_argument_checks():
    import torchopt

    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        OnlineLossTrainer(lambda x: x, "mse", lr=0.1)
    with pytest.raises(ValueError, match="no trainable"):
        OnlineLossTrainer(nn.Linear(2, 1).requires_grad_(False), "mse", lr=0.1)
    with pytest.raises(ValueError, match="drop lr="):
        OnlineLossTrainer(nn.Linear(2, 1), "mse", optimizer=torchopt.sgd(0.1), lr=0.1)
    shaped = LearnedLoss(LossConfig(inputs=("input", "target", "x")))
    with pytest.raises(ConfigError, match="side inputs"):
        OnlineLossTrainer(nn.Linear(2, 1), shaped, lr=0.1)
    trainer = OnlineLossTrainer(nn.Linear(2, 1), "mse", optimizer=torchopt.sgd(0.1, momentum=0.9))
    x, y = torch.randn(4, 2), torch.randn(4, 1)
    with pytest.raises(ValueError, match="needs a validation batch"):
        trainer.step(x, y)
    with pytest.raises(ValueError, match="both x_val and y_val"):
        trainer.step(x, y, x_val=x)
    with pytest.raises(ValueError, match="same number of samples"):
        trainer.step(x, y[:3], x, y)
    assert trainer.steps == 0
    assert not trainer.step(x, y, x, y)["skipped"]


# ---------------------------------------------------------------------- the example


def test_online_regression_example_runs(tmp_path):
    result = run_repo_script(
        "examples/online_regression.py",
        "--steps",
        "20",
        "--seeds",
        "1",
        "--lrs",
        "0.1",
        "--meta-lrs",
        "0.001",
        "--outliers",
        "0.2",
        "--shapes",
        str(tmp_path / "shapes.png"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "online" in result.stdout and "MSE" in result.stdout
    assert (tmp_path / "shapes.png").stat().st_size > 0


def test_cost_and_results_benchmarks_print_their_tables():
    cost = run_repo_script(
        "benchmarks/online_cost.py",
        "--widths",
        "8",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--adapt-every",
        "1",
        "2",
        timeout=120,
    )
    assert cost.returncode == 0, cost.stderr
    assert "| 8 |" in cost.stdout and "adapt every 2" in cost.stdout
    results = run_repo_script(
        "benchmarks/online_results.py",
        "--seeds",
        "1",
        "--steps",
        "3",
        "--optimizers",
        "adam",
        "--outliers",
        "0.2",
        timeout=120,
    )
    assert results.returncode == 0, results.stderr
    assert "| MSE + early stopping (control) |" in results.stdout
    assert "| online, adapt every 1 |" in results.stdout


def test_results_benchmark_runs_named_rows_and_bundled_drop_ins():
    result = run_repo_script(
        "benchmarks/online_results.py",
        "--seeds",
        "1",
        "--steps",
        "3",
        "--optimizers",
        "sgd",
        "--outliers",
        "0.2",
        "--methods",
        "robust-regression-20",
        "--adapt-every",
        "5",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows == [
        "| method",
        "| MSE",
        "| robust-regression-20 (offline, drop-in)",
        "| online, adapt every 5",
    ]
    unknown = run_repo_script("benchmarks/online_results.py", "--methods", "nope", timeout=120)
    assert unknown.returncode != 0 and "unknown --methods ['nope']" in unknown.stderr


def test_classification_benchmark_prints_its_table_and_shapes():
    result = run_repo_script(
        "benchmarks/online_classification.py",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--models",
        "cnn",
        "--optimizers",
        "adam",
        "--noise",
        "0.4",
        "--noisy-validation",
        "--adapt-every",
        "5",
        "--shapes",
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "CNN, ADAM, 40% flipped training labels, 40% noisy validation labels" in out
    for row in ("| CE |", "| 1.5 x CE (control) |", "| GCE (tuned q) |", "| SCE (tuned a, b=1) |"):
        assert row in out
    assert "| digits-noisy-labels (offline, drop-in) |" in out
    assert "| online, adapt every 5 |" in out
    assert "| online, adapt every 1 |" not in out
    assert "dL/dz_y relative to cross-entropy's" in out
    only = run_repo_script(
        "benchmarks/online_classification.py",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--models",
        "mlp",
        "--optimizers",
        "sgd",
        "--noise",
        "0",
        "--methods",
        "GCE (tuned q)",
        "digits-noisy-labels",
        "--adapt-every",
        timeout=180,
    )
    assert only.returncode == 0, only.stderr
    rows = [line.split(" | ")[0] for line in only.stdout.splitlines() if line.startswith("| ")]
    assert rows == [
        "| method",
        "| CE",
        "| GCE (tuned q)",
        "| digits-noisy-labels (offline, drop-in)",
    ]


def test_classification_benchmark_flips_exactly_the_asked_fraction():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from online_classification import load_data
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    clean = load_data(0)
    noisy = load_data(0, noise=0.4)
    both = load_data(0, noise=0.4, noisy_validation=True)
    n_train, n_val = len(clean["train"][1]), len(clean["val"][1])
    assert torch.equal(clean["train"][0], noisy["train"][0])
    flipped = (clean["train"][1] != noisy["train"][1]).sum().item()
    assert flipped == round(0.4 * n_train)
    assert torch.equal(clean["val"][1], noisy["val"][1])
    assert (clean["val"][1] != both["val"][1]).sum().item() == round(0.4 * n_val)
    for data in (noisy, both):
        assert torch.equal(clean["test"][1], data["test"][1])
