"""Task families and the task protocol."""

from __future__ import annotations

import math

import pytest
import torch

from learnedloss.families.sine import SineTasks
from learnedloss.tasks import TaskBatch


def test_sine_tasks_follow_their_distribution():
    batch = SineTasks().sample(64, torch.Generator().manual_seed(0))
    assert batch.x_train.shape == (64, 100, 1) and batch.x_query.shape == (64, 100, 1)
    amplitude, phase = batch.extra["amplitude"], batch.extra["phase"]
    assert amplitude.min() >= 0.2 and amplitude.max() <= 5.0
    assert phase.abs().max() <= math.pi
    assert batch.x_train.abs().max() <= 5.0
    expected = amplitude.view(-1, 1, 1) * torch.sin(batch.x_query + phase.view(-1, 1, 1))
    torch.testing.assert_close(batch.y_query, expected)


def test_outliers_replace_exactly_that_fraction_of_training_targets_only():
    tasks = SineTasks(outlier_fraction=0.2)
    batch = tasks.sample(16, torch.Generator().manual_seed(1))
    amplitude = batch.extra["amplitude"].view(-1, 1, 1)
    clean = amplitude * torch.sin(batch.x_train + batch.extra["phase"].view(-1, 1, 1))
    corrupted = (batch.y_train - clean).abs() > 1e-6
    assert (corrupted.sum(dim=(1, 2)) == 20).all()  # 20% of 100, in every task
    assert batch.y_train[corrupted].abs().max() <= 10.0
    clean_query = amplitude * torch.sin(batch.x_query + batch.extra["phase"].view(-1, 1, 1))
    torch.testing.assert_close(batch.y_query, clean_query)


def test_sampling_depends_only_on_the_generator():
    a = SineTasks(outlier_fraction=0.4).sample(4, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG must not matter
    b = SineTasks(outlier_fraction=0.4).sample(4, torch.Generator().manual_seed(5))
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_query, b.x_query)


def test_model_architecture_is_configurable():
    assert [m.out_features for m in SineTasks().make_model() if hasattr(m, "out_features")] == [
        100,
        10,
        1,
    ]
    model = SineTasks(hidden=(40, 40), activation="tanh").make_model()
    assert isinstance(model[1], torch.nn.Tanh)


def test_task_batch_checks_the_task_dimension():
    with pytest.raises(ValueError, match="same task dimension"):
        TaskBatch(
            torch.zeros(3, 5, 1), torch.zeros(3, 5, 1), torch.zeros(2, 5, 1), torch.zeros(2, 5, 1)
        )
    with pytest.raises(ValueError, match="score_on must be 'query' or 'train'"):
        TaskBatch(*(torch.zeros(1, 2, 1) for _ in range(4))).scored("test")


def test_bad_family_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"outlier_fraction must be in \[0, 1\)"):
        SineTasks(outlier_fraction=1.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        SineTasks(activation="sigmoid")
