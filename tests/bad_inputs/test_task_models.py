"""Task models the inner loop cannot train (issue 30): one with no parameters, or with every
parameter frozen, is refused with a `TaskModelError` before any task is trained; frozen
parameters of a partly frozen model stay as they are."""

from __future__ import annotations

import torch
import torchopt
from torch import nn

from learnedloss.errors import TaskModelError
from learnedloss.meta.inner import InnerLoop, initial_params, learned_loss_apply, plain_objective

from .conftest import make_loss, make_trainer, refused, tiny_tasks


class NoParameters(type(tiny_tasks())):
    def make_model(self):
        return nn.Flatten()


class AllFrozen(type(tiny_tasks())):
    def make_model(self):
        return super().make_model().requires_grad_(False)


def test_a_task_model_without_parameters_is_refused():
    tasks = NoParameters(n_train=10, n_query=10, hidden=(8,))
    with refused(TaskModelError, "the task model Flatten has no parameters"):
        make_trainer(tasks=tasks)


def test_a_task_model_whose_parameters_are_all_frozen_is_refused():
    tasks = AllFrozen(n_train=10, n_query=10, hidden=(8,))
    with refused(TaskModelError, "every parameter of the task model", "is frozen"):
        make_trainer(tasks=tasks)


def test_the_frozen_parameters_of_a_partly_frozen_model_stay_frozen():
    tasks = tiny_tasks()
    generator = torch.Generator().manual_seed(0)

    def make_model():
        model = tasks.make_model()
        model[0].requires_grad_(False)  # the first layer is a frozen "backbone"
        return model

    template, params = initial_params(make_model, 2, generator)
    batch = tasks.sample(2, generator)
    inner = InnerLoop(
        template,
        learned_loss_apply(make_loss()),
        plain_objective(tasks.objective),
        torchopt.sgd(0.1),
    )
    loss_params = {k: v.detach() for k, v in make_loss().named_parameters()}
    state = inner.init_state(params)
    trained, _ = inner.steps(params, state, loss_params, batch.x_train, batch.y_train, 3)
    frozen = {name for name, p in template.named_parameters() if not p.requires_grad}
    assert frozen == {"0.weight", "0.bias"}
    for name, before in params.items():
        moved = not torch.equal(trained[name], before)
        assert moved != (name in frozen), name
