"""Bad settings and run directories for `MetaTrainer`: each is refused before any work with
the library's error, and a run that cannot train fails instead of returning an untrained
loss."""

from __future__ import annotations

import math

import pytest
import torch

from learnedloss import (
    LearnedLoss,
    LossConfig,
    MetaTrainer,
    MetaTrainingDiverged,
    MetaTrainingStalled,
    RunDirectoryError,
)
from learnedloss.families.digits import DigitsTasks
from tests.bad_inputs.conftest import (
    TINY,
    Untouchable,
    make_loss,
    make_trainer,
    quiet,
    refused,
    tiny_tasks,
)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("inner_steps", 0, "inner_steps must be a positive integer, got 0"),
        ("inner_steps", 2.5, "inner_steps must be an integer, got 2.5"),
        ("inner_steps", True, "inner_steps must be an integer, got True"),
        ("meta_batch_size", 0, "meta_batch_size must be a positive integer, got 0"),
        ("validation_size", 0, "validation_size must be a positive integer, got 0"),
        ("validate_every", -1, "validate_every must be an integer >= 0 (0: never), got -1"),
        ("checkpoint_every", 0, "checkpoint_every must be a positive integer, got 0"),
        ("max_skips", 0, "max_skips must be a positive integer, got 0"),
        ("seed", "0", "seed must be an integer, got '0'"),
        ("truncate", 0, "truncate must be a positive number of steps, got 0"),
    ],
)
def test_counts_out_of_range_are_refused_before_any_work(setting, value, message):
    with refused(ValueError, message):
        MetaTrainer(make_loss(), Untouchable(), progress=False, **{setting: value})


@pytest.mark.parametrize("setting", ["inner_lr", "meta_lr"])
@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan, math.inf, "0.1"])
def test_learning_rates_must_be_finite_and_positive(setting, value):
    with refused(ValueError, f"{setting} must be a finite number > 0, got {value!r}"):
        MetaTrainer(make_loss(), Untouchable(), progress=False, **{setting: value})


def test_a_loss_of_another_kind_than_the_tasks_is_refused():
    torch.manual_seed(0)
    classifier = LearnedLoss(LossConfig(kind="classification", hidden_sizes=(8,)))
    with refused(
        ValueError,
        "a classification loss cannot be meta-trained on SineTasks",
        "train regression losses",
        "LossConfig(kind='regression', ...)",
    ):
        MetaTrainer(classifier, tiny_tasks(), **TINY)
    with refused(ValueError, "a regression loss cannot be meta-trained on DigitsTasks"):
        MetaTrainer(make_loss(), DigitsTasks(), **TINY)
    with refused(ValueError, "cannot be meta-trained on DigitsTasks"):  # validation too
        MetaTrainer(make_loss(), tiny_tasks(), validation_tasks=DigitsTasks(), **TINY)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(steps=0), "steps must be a positive integer, got 0"),
        (dict(steps=-1), "steps must be a positive integer, got -1"),
        (dict(steps=2.0), "steps must be an integer, got 2.0"),
        (dict(steps=2, max_seconds=-1), "max_seconds must be a number >= 0 or None, got -1"),
        (dict(steps=2, max_seconds=math.nan), "max_seconds must be a number >= 0 or None"),
        (dict(steps=2, overwrite=True), "overwrite=True needs run_dir"),
    ],
)
def test_bad_fit_arguments_are_refused_before_any_step(arguments, message):
    trainer = make_trainer()
    with refused(ValueError, message):
        trainer.fit(**arguments)
    assert trainer.step == 0 and trainer.history == []


def test_a_fresh_run_in_a_used_run_dir_is_refused(used_run_dir):
    before = sorted(p.name for p in used_run_dir.iterdir())
    trainer = make_trainer(used_run_dir)
    with refused(
        RunDirectoryError,
        "is not empty: it holds the checkpoints of another run (latest: step-0000002)",
        "fit(..., resume=True)",
        "fit(..., overwrite=True)",
    ):
        trainer.fit(1)
    assert trainer.step == 0
    assert sorted(p.name for p in used_run_dir.iterdir()) == before
    assert issubclass(RunDirectoryError, ValueError)


def test_a_fresh_run_in_a_directory_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with refused(RunDirectoryError, "is not empty: it holds files (notes.txt)"):
        make_trainer(tmp_path).fit(1)
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "a-file").write_text("x")
    with refused(RunDirectoryError, "is a file, not a directory"):
        make_trainer(tmp_path / "a-file").fit(1)


def test_resume_and_overwrite_together_are_refused(used_run_dir):
    with refused(ValueError, "resume=True continues the run", "pass one of them"):
        make_trainer(used_run_dir).fit(3, resume=True, overwrite=True)


def test_resuming_with_another_meta_optimizer_is_refused(used_run_dir):
    trainer = make_trainer(used_run_dir, meta_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5))
    with refused(
        RunDirectoryError,
        "cannot resume: the meta-optimizer's settings differ",
        "lr=0.001 in the checkpoint, 0.5 now",
    ):
        trainer.fit(3, resume=True)
    betas = make_trainer(
        used_run_dir, meta_optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.5, 0.9))
    )
    with refused(RunDirectoryError, "betas=[0.9, 0.999] in the checkpoint, [0.5, 0.9] now"):
        betas.fit(3, resume=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(validation_size=3), "size 2 in the checkpoint, 3 now"),
        (
            dict(validation_tasks=tiny_tasks(outlier_fraction=0.3)),
            "tasks' outlier_fraction 0.0 in the checkpoint, 0.3 now",
        ),
    ],
)
def test_resuming_with_another_validation_set_is_refused(used_run_dir, change, message):
    with refused(RunDirectoryError, "cannot resume: the meta-validation set differs", message):
        make_trainer(used_run_dir, **change).fit(3, resume=True)


def test_resuming_with_other_settings_is_refused(used_run_dir):
    with refused(RunDirectoryError, "cannot resume: the checkpoint in", "was made with"):
        make_trainer(used_run_dir, inner_steps=3).fit(3, resume=True)


def test_resuming_from_nothing_is_refused(tmp_path):
    with refused(FileNotFoundError, "holds no trainer checkpoint (no 'latest' file)"):
        make_trainer(tmp_path).fit(1, resume=True)


def test_a_run_whose_every_step_diverged_fails():
    trainer = make_trainer(inner_lr=1e6, max_skips=10)
    with quiet(), refused(MetaTrainingDiverged, "none of the 3 outer steps updated the loss"):
        trainer.fit(3)


def test_a_run_that_never_changes_the_loss_fails():
    """A classification loss on regression tasks whose family declares no kind: the trainer
    cannot refuse it up front, its meta-gradient is zero, and the run fails at the end."""
    torch.manual_seed(0)
    classifier = LearnedLoss(LossConfig(kind="classification", hidden_sizes=(8,)))
    undeclared = tiny_tasks()
    undeclared.loss_kind = None
    with refused(
        MetaTrainingStalled,
        "did not change the loss in 2 outer steps",
        "the loss's kind ('classification')",
    ):
        make_trainer(loss=classifier, tasks=undeclared, validate_every=0).fit(2)
