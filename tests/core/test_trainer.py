"""MetaTrainer: it learns, keeps the best copy, survives a kill, and refuses to diverge."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchopt
from torch import nn

from learnedloss import (
    LearnedLoss,
    LossConfig,
    MetaTrainer,
    MetaTrainingDiverged,
    MetaTrainingStalled,
    RunDirectoryError,
)
from learnedloss.families.recipe import meta_train
from learnedloss.families.sine import SineRecipe, SineTasks
from learnedloss.meta.state import read_state, write_state
from learnedloss.starts import huber_start_config, mse_start_config
from learnedloss.tasks import TaskFamily

TINY = dict(inner_steps=3, inner_lr=0.02, meta_batch_size=4, validation_size=4, progress=False)


def tiny_tasks(**kwargs) -> SineTasks:
    return SineTasks(n_train=20, n_query=20, hidden=(16, 8), **kwargs)


def make_loss(seed: int = 0) -> LearnedLoss:
    torch.manual_seed(seed)
    return LearnedLoss(mse_start_config(hidden=(8, 8)))


def test_residual_square_network_starts_as_exact_mse():
    loss = make_loss()
    x, y = torch.randn(7, 3) * 4, torch.randn(7, 3) * 4
    for reduction in ("mean", "sum", "none"):
        loss.reduction = reduction
        torch.testing.assert_close(
            loss(x, y), nn.MSELoss(reduction=reduction)(x, y), rtol=1e-6, atol=1e-6
        )


def test_fit_moves_the_loss_and_records_history():
    loss = make_loss()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    seen = []
    trainer = MetaTrainer(
        loss,
        tiny_tasks(outlier_fraction=0.2),
        validate_every=2,
        callbacks=[lambda t, record: seen.append(record["step"])],
        **TINY,
    )
    best = trainer.fit(4)
    assert any(not torch.equal(before[k], v) for k, v in loss.state_dict().items())
    assert [r["step"] for r in trainer.history] == [1, 2, 3, 4] == seen
    assert all("meta_val" in r for r in trainer.history if r["step"] % 2 == 0)
    assert trainer.path == "vmap"
    assert best.frozen and not list(best.parameters())
    assert best.metadata["training"]["outer_steps"] == 4
    assert best.metadata["training"]["tasks"]["outlier_fraction"] == 0.2


def test_huber_start_network_starts_as_exact_huber():
    torch.manual_seed(0)
    loss = LearnedLoss(huber_start_config(hidden=(8, 8)), reduction="none")
    x, y = torch.randn(200) * 3, torch.randn(200) * 3  # residuals on both sides of δ = 1
    torch.testing.assert_close(loss(x, y), F.huber_loss(x, y, reduction="none"), atol=0, rtol=0)


@pytest.mark.parametrize("form", ["scale", "weight"])
@pytest.mark.parametrize("output", ["square", "huber"])
def test_scaled_residual_starts_as_the_standard_loss_and_always_vanishes_at_the_target(
    output, form
):
    torch.manual_seed(0)
    config = LossConfig(
        hidden_sizes=(8, 8),
        output_activation=output,
        bias=True,
        residual=True,
        residual_form=form,
        inputs=("input", "target", "residual"),
    )
    loss = LearnedLoss(config, reduction="none")
    x, y = torch.randn(200) * 3, torch.randn(200) * 3
    standard = F.mse_loss if output == "square" else F.huber_loss
    torch.testing.assert_close(loss(x, y), standard(x, y, reduction="none"), atol=0, rtol=0)
    for layer in loss.network.layers:  # any weights: a perfect prediction costs nothing
        nn.init.normal_(layer.weight)
        nn.init.normal_(layer.bias)
    assert not torch.allclose(loss(x, y), standard(x, y, reduction="none"))
    prediction = y.clone().requires_grad_()
    value = loss(prediction, y)
    assert torch.equal(value, torch.zeros_like(y))
    (slope,) = torch.autograd.grad(value.sum(), prediction)
    assert torch.equal(slope, torch.zeros_like(y))  # and it is a stationary point
    with pytest.raises(ValueError, match=f"residual_form '{form}' needs residual=True"):
        LossConfig(residual_form=form)


@pytest.mark.parametrize("output", ["square", "huber"])
def test_weighted_residual_moves_weight_between_elements_but_keeps_the_scale(output):
    """Weights N·softmax(h) average 1 whatever the network computes: the per-element
    loss divided by the standard loss sums to N, and shifting every h by a constant (the
    last bias) changes nothing, so the loss cannot grow into a larger learning rate."""
    config = LossConfig(
        hidden_sizes=(8,),
        output_activation=output,
        bias=True,
        residual=True,
        residual_form="weight",
        inputs=("input", "target", "residual"),
    )
    loss = LearnedLoss(config, reduction="none")
    standard = F.mse_loss if output == "square" else F.huber_loss
    x, y = torch.randn(6, 50) * 4, torch.randn(6, 50) * 4  # weights span the whole call
    torch.manual_seed(1)
    for layer in loss.network.layers:
        nn.init.normal_(layer.weight)
        nn.init.normal_(layer.bias)
    weights = loss(x, y) / standard(x, y, reduction="none")
    assert weights.std() > 0.1  # the network does reweight
    torch.testing.assert_close(weights.sum(), torch.tensor(300.0))
    before = loss(x, y)
    with torch.no_grad():
        loss.network.layers[-1].bias.add_(5.0)
    torch.testing.assert_close(loss(x, y), before, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="'weight' is for regression losses"):
        LossConfig(kind="classification", residual=True, residual_form="weight")


def test_parameters_without_a_meta_gradient_are_not_a_divergence():
    """An output bias shifts the loss but not its gradient: its meta-gradient is None, which
    must neither count as a non-finite step nor stop training."""
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(hidden_sizes=(8,), output_activation="identity", bias=True))
    bias = loss.network.layers[-1].bias.detach().clone()
    trainer = MetaTrainer(loss, tiny_tasks(), validate_every=0, max_skips=1, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.fit(3)
    assert not any(r["skipped"] for r in trainer.history)
    assert torch.equal(loss.network.layers[-1].bias, bias)


def test_best_loss_is_a_real_copy_of_the_best_weights():
    loss = make_loss()
    trainer = MetaTrainer(loss, tiny_tasks(), validate_every=1, **TINY)
    trainer.fit(3)
    best_step = trainer.best_step
    best = trainer.best_loss()
    snapshot = {k: v.clone() for k, v in best.state_dict().items()}
    with torch.no_grad():  # later training must not leak into the stored copy
        for p in loss.parameters():
            p.add_(1.0)
    again = trainer.best_loss()
    assert trainer.best_step == best_step
    for k, v in again.state_dict().items():
        assert torch.equal(v, snapshot[k])
    # And it is the loss whose score was recorded: re-validating it gives the best score.
    trainer.loss.load_state_dict(snapshot)
    assert trainer.validate() == pytest.approx(trainer.best_score, rel=1e-6)


def test_validation_tasks_use_their_own_models():
    """Meta-validate on another architecture: validation builds its family's models."""
    trainer = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        validate_every=1,
        validation_tasks=SineTasks(n_train=20, n_query=20, hidden=(4,)),
        **TINY,
    )
    trainer.fit(1)
    assert math.isfinite(trainer.history[0]["meta_val"])


def test_vmap_and_loop_trainers_agree():
    results = []
    for path in ("vmap", "loop"):
        trainer = MetaTrainer(make_loss(), tiny_tasks(), validate_every=0, path=path, **TINY)
        trainer.fit(2)
        results.append(trainer.loss.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], rtol=1e-4, atol=1e-6)


class SignGate(nn.Module):
    """Data-dependent control flow: a branch on a tensor's value, which vmap cannot run."""

    def forward(self, h):
        return h if h.sum() > 0 else -h


class ModelTasks(TaskFamily):
    """Tiny sine tasks with a model built by ``factory``."""

    def __init__(self, factory):
        self.sine, self.factory = tiny_tasks(), factory

    def sample(self, n_tasks, generator):
        return self.sine.sample(n_tasks, generator)

    def make_model(self):
        return self.factory()


def test_models_vmap_cannot_take_fall_back_to_the_loop_and_say_so():
    tasks = ModelTasks(lambda: nn.Sequential(nn.Linear(1, 8), SignGate(), nn.Linear(8, 1)))
    trainer = MetaTrainer(make_loss(), tasks, validate_every=0, **TINY)
    with pytest.warns(UserWarning, match="cannot run under torch.func.vmap"):
        trainer.fit(2)
    assert trainer.path == "loop"
    assert "data-dependent control flow" in trainer.path_reason
    assert all(torch.isfinite(p).all() for p in trainer.loss.parameters())


def test_batchnorm_models_train_per_task_on_both_paths():
    def model():
        return nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    results = []
    for path in ("vmap", "loop"):
        # Plain SGD outside, so the weights after one step compare the meta-gradients
        # (Adam would magnify rounding differences in near-zero gradients).
        trainer = MetaTrainer(
            make_loss(),
            ModelTasks(model),
            validate_every=0,
            path=path,
            meta_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1),
            **TINY,
        )
        trainer.fit(1)
        assert trainer.path == path  # per-task buffers run under vmap: no fallback needed
        results.append(trainer.loss.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], rtol=1e-4, atol=1e-6)


class NaNTasks(TaskFamily):
    def __init__(self):
        self.sine = tiny_tasks()

    def sample(self, n_tasks, generator):
        return self.sine.sample(n_tasks, generator)

    def make_model(self):
        return self.sine.make_model()

    def objective(self, prediction, target):
        return ((prediction - target) ** 2).mean() * torch.tensor(float("nan"))


def test_non_finite_meta_gradients_are_skipped_then_stop_training(tmp_path):
    loss = make_loss()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    trainer = MetaTrainer(
        loss,
        NaNTasks(),
        validate_every=0,
        max_skips=3,
        run_dir=tmp_path,
        checkpoint_every=1,
        **TINY,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(MetaTrainingDiverged, match="not finite for 3 consecutive"):
            trainer.fit(10)
    assert sum("update skipped" in str(w.message) for w in caught) == 3
    for k, v in loss.state_dict().items():  # no NaN ever reached the weights
        assert torch.equal(v, before[k])
    assert all(r["skipped"] for r in trainer.history)


RUN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from test_trainer import TINY, make_loss, tiny_tasks
    from learnedloss import MetaTrainer

    def kill_at_step_7(trainer, record):
        if record["step"] == 7:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), validate_every=2,
                          run_dir={run_dir!r}, checkpoint_every=3, callbacks=[kill_at_step_7],
                          **TINY)
    trainer.fit(10)
    """
)


def test_a_killed_run_resumes_bit_identically(tmp_path):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    script = RUN_SCRIPT.format(tests=os.path.dirname(__file__), run_dir=str(run_dir))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (run_dir / "latest").read_text() == "step-0000006"

    resumed = MetaTrainer(
        make_loss(seed=99),
        tiny_tasks(outlier_fraction=0.2),
        validate_every=2,
        run_dir=run_dir,
        checkpoint_every=3,
        **TINY,
    )
    resumed_best = resumed.fit(10, resume=True)
    uninterrupted = MetaTrainer(
        make_loss(), tiny_tasks(outlier_fraction=0.2), validate_every=2, checkpoint_every=3, **TINY
    )
    best = uninterrupted.fit(10)

    for k, v in uninterrupted.loss.state_dict().items():
        assert torch.equal(resumed.loss.state_dict()[k], v), k
    for k, v in best.state_dict().items():
        assert torch.equal(resumed_best.state_dict()[k], v), k
    assert resumed.history == uninterrupted.history
    assert resumed.best_step == uninterrupted.best_step


RUN_0_1 = os.path.join(os.path.dirname(__file__), os.pardir, "data", "run-0.1")
"""A run directory release 0.1 wrote: two outer steps of `RUN_0_1_RECIPE`, checkpointed at each."""
RUN_0_1_RECIPE = dict(inner_steps=2, meta_batch_size=2, validate_every=1, validation_size=2)


def test_a_run_directory_of_release_0_1_resumes(tmp_path):
    run_dir = tmp_path / "run-0.1"
    shutil.copytree(RUN_0_1, run_dir)
    saved = read_state(run_dir)
    assert saved["step"] == 2

    _, resumed = meta_train(
        SineRecipe(outer_steps=3, **RUN_0_1_RECIPE), run_dir=run_dir, resume=True, progress=False
    )
    assert resumed.step == 3 and [r["step"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == saved["history"]  # continued from step 2, not from scratch
    assert (run_dir / "latest").read_text() == "step-0000003"
    _, fresh = meta_train(SineRecipe(outer_steps=3, **RUN_0_1_RECIPE), progress=False)
    for k, v in fresh.loss.state_dict().items():
        assert torch.equal(resumed.loss.state_dict()[k], v), k
    assert resumed.history == fresh.history


def test_resuming_with_other_settings_is_refused(tmp_path):
    trainer = MetaTrainer(
        make_loss(), tiny_tasks(), validate_every=0, run_dir=tmp_path, checkpoint_every=1, **TINY
    )
    trainer.fit(1)
    other = MetaTrainer(
        make_loss(), tiny_tasks(), validate_every=0, run_dir=tmp_path, **{**TINY, "inner_lr": 0.5}
    )
    with pytest.raises(ValueError, match="cannot resume"):
        other.fit(2, resume=True)
    settings = {k: v for k, v in TINY.items() if k != "inner_lr"}
    custom = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        validate_every=0,
        run_dir=tmp_path,
        inner_optimizer=torchopt.sgd(0.02),  # not recorded as "sgd": its lr cannot be read
        **settings,
    )
    with pytest.raises(ValueError, match="cannot resume"):
        custom.fit(2, resume=True)


def test_bad_trainer_arguments_are_rejected():
    with pytest.raises(ValueError, match="score_on"):
        MetaTrainer(make_loss(), tiny_tasks(), score_on="test")
    with pytest.raises(ValueError, match="inner optimizer must be one of"):
        MetaTrainer(make_loss(), tiny_tasks(), inner_optimizer="lbfgs")
    with pytest.raises(ValueError, match="carries its own learning rate"):
        MetaTrainer(make_loss(), tiny_tasks(), inner_optimizer=torchopt.sgd(0.1), inner_lr=0.1)
    with pytest.raises(ValueError, match="truncate"):
        MetaTrainer(make_loss(), tiny_tasks(), truncate=0)


def test_meta_trained_loss_saves_and_loads_with_its_training_record(tmp_path):
    trainer = MetaTrainer(make_loss(), tiny_tasks(), validate_every=1, **TINY)
    best = trainer.fit(2)
    best.save_pretrained(tmp_path / "loss")
    loaded = LearnedLoss.from_pretrained(tmp_path / "loss")
    assert loaded.metadata["training"]["inner_steps"] == 3
    assert loaded.config == LossConfig(
        hidden_sizes=(8, 8),
        activation="relu",
        output_activation="square",
        bias=True,
        residual=True,
        inputs=("input", "target", "residual"),
    )
    assert "inner_steps" in (tmp_path / "loss" / "README.md").read_text()


def test_keep_last_returns_the_final_loss_and_keep_best_the_best_one():
    settings = dict(TINY, validate_every=1)
    best_run = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), **settings)
    best = best_run.fit(5)
    last_run = MetaTrainer(make_loss(), tiny_tasks(outlier_fraction=0.2), keep="last", **settings)
    last = last_run.fit(5)
    assert best_run.history == last_run.history  # keep changes what is returned, not the run
    for k, v in last.state_dict().items():
        assert torch.equal(v, last_run.loss.state_dict()[k]), k
    for k, v in best.state_dict().items():
        assert torch.equal(v, best_run._best_weights[k]), k
    assert last.metadata["training"]["kept"] == "last" and "kept" not in best.metadata["training"]
    with pytest.raises(ValueError, match="keep must be 'best' or 'last'"):
        MetaTrainer(make_loss(), tiny_tasks(), keep="first")


# ----------------------------------------------------------------- run directories and resume


def _run(run_dir, steps=2, **overrides):
    settings = {**TINY, "validate_every": 1, "checkpoint_every": 1, **overrides}
    trainer = MetaTrainer(make_loss(), tiny_tasks(), run_dir=run_dir, **settings)
    trainer.fit(steps)
    return trainer


def test_a_fresh_run_refuses_a_directory_that_holds_another_run(tmp_path):
    """Before: the new run's pruning kept the old run's two highest steps, deleted its own
    checkpoint and left ``latest`` naming nothing."""
    _run(tmp_path, steps=5)
    before = sorted(p.name for p in tmp_path.iterdir())
    fresh = MetaTrainer(
        make_loss(), tiny_tasks(), run_dir=tmp_path, validate_every=1, checkpoint_every=1, **TINY
    )
    with pytest.raises(RunDirectoryError, match="not empty: it holds the checkpoints of another"):
        fresh.fit(2)
    assert fresh.step == 0 and fresh.history == []  # nothing ran
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was touched
    (other := tmp_path.parent / "notes-only").mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"holds files \(notes.txt\)"):
        MetaTrainer(make_loss(), tiny_tasks(), run_dir=other, **TINY).fit(1)


def test_overwrite_replaces_only_the_trainers_own_files(tmp_path):
    _run(tmp_path, steps=5)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".step-0000009.tmp").mkdir()  # a write a kill interrupted
    trainer = MetaTrainer(
        make_loss(), tiny_tasks(), run_dir=tmp_path, validate_every=1, checkpoint_every=1, **TINY
    )
    trainer.fit(2, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest",
        "notes.txt",
        "step-0000001",
        "step-0000002",
    ]
    assert (tmp_path / "latest").read_text() == "step-0000002"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # and it is the run an uninterrupted trainer makes, bit for bit
    plain = MetaTrainer(make_loss(), tiny_tasks(), validate_every=1, **TINY)
    plain.fit(2)
    assert trainer.history == plain.history
    with pytest.raises(ValueError, match="pass one of them"):
        trainer.fit(3, resume=True, overwrite=True)


def test_pruning_never_deletes_the_checkpoint_it_wrote_or_a_later_one(tmp_path):
    state = {"x": torch.ones(2)}
    for step in (4, 5):
        write_state(tmp_path, step, state)
    write_state(tmp_path, 2, state)  # a lower step than the ones there
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-0000002",
        "step-0000004",
        "step-0000005",
    ]
    assert torch.equal(read_state(tmp_path)["x"], torch.ones(2))
    write_state(tmp_path, 3, state)
    write_state(tmp_path, 4, state)  # now step 2 is the oldest at or below 4
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-0000003",
        "step-0000004",
        "step-0000005",
    ]


def test_resuming_with_other_meta_optimizer_settings_is_refused(tmp_path):
    """Before: the checkpoint's param groups silently replaced the new optimizer's (a run
    resumed with Adam(lr=0.5) went on at the checkpoint's 0.001)."""
    _run(tmp_path, steps=1)
    custom = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        run_dir=tmp_path,
        validate_every=1,
        meta_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5),
        **TINY,
    )
    with pytest.raises(RunDirectoryError, match=r"lr=0.001 in the checkpoint, 0.5 now"):
        custom.fit(2, resume=True)
    assert custom.meta_optimizer.param_groups[0]["lr"] == 0.5 and custom.step == 0
    same = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        run_dir=tmp_path,
        validate_every=1,
        meta_optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-3),
        **TINY,
    )
    same.fit(2, resume=True)  # the same settings, spelled out: resumes
    assert same.step == 2


def test_resuming_with_another_validation_set_is_refused(tmp_path):
    _run(tmp_path, steps=1)
    for change, reason in (
        (dict(validation_size=8), "size 4 in the checkpoint, 8 now"),
        (
            dict(validation_tasks=tiny_tasks(outlier_fraction=0.5)),
            "tasks' outlier_fraction 0.0 in the checkpoint, 0.5 now",
        ),
    ):
        settings = {**TINY, "validate_every": 1, **change}
        other = MetaTrainer(make_loss(), tiny_tasks(), run_dir=tmp_path, **settings)
        with pytest.raises(RunDirectoryError, match="meta-validation set differs") as error:
            other.fit(2, resume=True)
        assert reason in str(error.value)


def test_a_run_whose_every_step_was_skipped_fails():
    trainer = MetaTrainer(make_loss(), NaNTasks(), validate_every=0, max_skips=5, **TINY)
    with (
        pytest.warns(UserWarning, match="update skipped"),
        pytest.raises(MetaTrainingDiverged, match="none of the 2 outer steps updated"),
    ):
        trainer.fit(2)


def test_a_run_that_never_changes_the_loss_fails():
    """Before: a classification loss on regression tasks 'trained' with a zero
    meta-gradient and came back untrained. Undeclared families accept any kind, so the
    trainer notices after the run."""
    torch.manual_seed(0)
    loss = LearnedLoss(LossConfig(kind="classification", hidden_sizes=(8,)))
    tasks = ModelTasks(lambda: tiny_tasks().make_model())  # declares no loss_kind
    trainer = MetaTrainer(loss, tasks, validate_every=0, **TINY)
    with pytest.raises(MetaTrainingStalled, match="did not change the loss in 2 outer steps"):
        trainer.fit(2)
    with pytest.raises(ValueError, match="cannot be meta-trained on SineTasks"):
        MetaTrainer(loss, tiny_tasks(), **TINY)  # a family that declares its kind
