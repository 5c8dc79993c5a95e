"""`OnlineLossTrainer`'s API edges (issues 29 and 30): a ``validation=(x_val, y_val)`` pair is
refused at construction; numpy and 0-dim tensor scalars are numbers for ``lr`` and
``meta_lr``; the default objective takes the validation batch as the training loss takes its
batch (no broadcasting of a ``(N,)`` target against ``(N, 1)`` outputs, class labels as class
indices of any integer dtype)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from learnedloss.errors import LossInputError
from learnedloss.online import OnlineLossTrainer

from .conftest import refused


def regression(**kwargs) -> OnlineLossTrainer:
    torch.manual_seed(0)
    return OnlineLossTrainer(nn.Linear(3, 1), "mse", optimizer="sgd", **{"lr": 0.1, **kwargs})


def classification() -> OnlineLossTrainer:
    torch.manual_seed(0)
    return OnlineLossTrainer(nn.Linear(3, 4), "cross-entropy", optimizer="sgd", lr=0.1)


def test_one_validation_pair_is_refused_at_construction_with_the_fix():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    with refused(TypeError, "one (x_val, y_val) pair", "pass [(x_val, y_val)]"):
        regression(validation=(x, y))
    assert regression(validation=[(x, y)]).step(x, y)["adapted"]


@pytest.mark.parametrize(
    "value", [np.float32(0.1), np.float64(0.1), np.int64(1), torch.tensor(0.1)], ids=repr
)
def test_numpy_and_0_dim_tensor_scalars_are_learning_rates(value):
    trainer = regression(lr=value, meta_lr=value)
    assert type(trainer.lr) is float and type(trainer.meta_lr) is float
    assert trainer.lr == pytest.approx(float(value))
    json.dumps(trainer.describe())  # the metadata stays JSON


@pytest.mark.parametrize("value", [np.bool_(True), torch.tensor([0.1]), "0.1"], ids=repr)
def test_other_learning_rates_are_still_refused(value):
    with pytest.raises(TypeError, match="lr must be a positive number"):
        regression(lr=value)


def test_a_validation_target_of_another_shape_is_refused_as_the_training_loss_does():
    trainer = regression()
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    with refused(LossInputError, "validation batch", "same shape", "(8, 1)", "(8,)"):
        trainer.step(x, y, x, y[:, 0])
    assert trainer.steps == 0
    with refused(LossInputError, "same shape"):  # the training loss refuses the same
        trainer.loss(torch.randn(8, 1), y[:, 0])


def test_class_labels_in_the_validation_batch():
    trainer = classification()
    x, labels = torch.randn(8, 3), torch.randint(0, 4, (8,))
    record = trainer.step(x, labels, x, labels.int())  # int32 indices are class indices
    assert record["adapted"] and np.isfinite(record["objective"])
    with refused(LossInputError, "validation batch", "class-probability targets"):
        trainer.step(x, labels, x, labels.float())
    assert trainer.describe()["objective"] == "CrossEntropyLoss()"
