"""Helpers the bad-input suite shares: tiny losses and trainers, a family that fails the
test if a trainer does any work with it, and checks of an error's type and message."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import pytest
import torch

from learnedloss import LearnedLoss, LossConfig, MetaTrainer
from learnedloss.families.sine import SineTasks
from learnedloss.starts import mse_start_config
from learnedloss.tasks import TaskFamily

TINY = dict(inner_steps=2, inner_lr=0.02, meta_batch_size=2, validation_size=2, progress=False)
"""Trainer settings small enough for a step to take milliseconds."""


def tiny_tasks(**kwargs) -> SineTasks:
    return SineTasks(n_train=10, n_query=10, hidden=(8,), **kwargs)


def make_loss(seed: int = 0) -> LearnedLoss:
    """A regression loss that equals MSE exactly before training."""
    torch.manual_seed(seed)
    return LearnedLoss(mse_start_config(hidden=(8,)))


def make_trainer(run_dir=None, tasks=None, loss=None, **settings) -> MetaTrainer:
    """A tiny `MetaTrainer` on sine tasks; ``settings`` override `TINY`."""
    return MetaTrainer(
        make_loss() if loss is None else loss,
        tiny_tasks() if tasks is None else tasks,
        run_dir=run_dir,
        **{"validate_every": 1, "checkpoint_every": 1, **TINY, **settings},
    )


class Untouchable(TaskFamily):
    """A family that fails the test if the trainer samples a task or builds a model: an
    error raised with it was raised before any work."""

    loss_kind = "regression"

    def sample(self, n_tasks, generator):
        raise AssertionError("sampled tasks before rejecting the settings")

    def make_model(self):
        raise AssertionError("built a model before rejecting the settings")


@contextmanager
def refused(error: type[BaseException], *fragments: str):
    """Expect ``error`` (or a subclass) whose message holds every one of ``fragments``."""
    with pytest.raises(error) as caught:
        yield caught
    message = str(caught.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{missing} not in the message: {message}"


@contextmanager
def quiet():
    """Silence the warnings a diverging run prints (each skipped step warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def saved_loss(tmp_path):
    """A small regression loss saved with save_pretrained; returns its directory."""
    torch.manual_seed(0)
    directory = tmp_path / "saved"
    LearnedLoss(LossConfig(hidden_sizes=(8, 8), bias=True)).save_pretrained(directory)
    return directory


@pytest.fixture
def used_run_dir(tmp_path):
    """A run directory that holds a finished two-step run."""
    run_dir = tmp_path / "used-run"
    make_trainer(run_dir).fit(2)
    return run_dir
