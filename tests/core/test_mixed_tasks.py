"""Mixed meta-batches (`MixedTasks`): tasks of several families, widths, input sizes and
class counts in one batch train on the engine as each would alone on the vmap path."""

from __future__ import annotations

import pytest
import torch
import torchopt
from torch import nn

from learnedloss import MetaTrainer
from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe
from learnedloss.families.noisy_labels.tasks import NoisyLabelTasks
from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
from learnedloss.families.robust_regression.tasks import RobustRegressionTasks
from learnedloss.families.sine import SineTasks
from learnedloss.meta.engine import EngineExecution
from learnedloss.meta.execution import InnerExecution
from learnedloss.meta.inner import InnerLoop, initial_params, learned_loss_apply
from learnedloss.tasks.base import TaskBatch
from learnedloss.tasks.mixed import MixedTasks, TaskGroup

STEPS, LR = 3, 0.05


def _noisy_labels(classes: int, width: int, inputs: int) -> NoisyLabelTasks:
    return NoisyLabelTasks(
        sources=("synthetic",),
        n_classes=(classes,),
        widths=(width,),
        synthetic_inputs=(inputs, inputs),
        n_train=24,
        n_query=16,
    )


def _mixed_classification() -> MixedTasks:
    return MixedTasks(
        [_noisy_labels(3, 16, 4), _noisy_labels(7, 32, 9), _noisy_labels(5, 8, 6)],
        weights=(1.0, 2.0, 1.0),
    )


def _draw(mixed: MixedTasks, tasks: int = 8):
    generator = torch.Generator().manual_seed(3)
    batch = mixed.sample(tasks, generator)
    _, params = initial_params(mixed.make_model, tasks, generator)
    return batch, params


def _unpadded(batch: TaskBatch, params: dict, group: TaskGroup):
    """The group's tasks and models cut back to their own shapes."""
    shapes = {name: p.shape for name, p in group.template.named_parameters()}
    own = {
        name: params[name][group.tasks][(slice(None), *map(slice, shape))]
        for name, shape in shapes.items()
    }
    width = shapes["0.weight"][1]
    return (
        TaskBatch(
            batch.x_train[group.tasks, :, :width],
            batch.y_train[group.tasks],
            batch.x_query[group.tasks, :, :width],
            batch.y_query[group.tasks],
            {k: v[group.tasks] for k, v in batch.extra.items()},
        ),
        own,
    )


def _alone(mixed, batch, params, loss, loss_params) -> torch.Tensor:
    """Each group on the vmap path with its own unpadded models: ``(T,)`` objectives."""
    values = []
    for group in mixed.task_groups():
        family = mixed.families[group.family]
        own_batch, own_params = _unpadded(batch, params, group)
        loop = InnerLoop(
            group.template,
            learned_loss_apply(loss),
            family.meta_objective,
            torchopt.adam(LR, eps_root=1e-8),
        )
        values.append(loop.run(own_params, loss_params, own_batch, STEPS))
    return torch.cat(values)


def _meta_gradient(values: torch.Tensor, loss_params: dict) -> list[torch.Tensor]:
    return torch.autograd.grad(values.mean(), list(loss_params.values()), allow_unused=True)


def test_a_mixed_batch_stacks_several_shapes_and_class_counts():
    mixed = _mixed_classification()
    batch, params = _draw(mixed)
    groups = mixed.task_groups()
    assert len(groups) == 3 and groups[-1].tasks.stop == len(batch) == 8
    assert batch.x_train.shape[-1] == 9 and params["0.weight"].shape == (8, 32, 9)
    assert params["2.bias"].shape == (8, 7)
    for group in groups:  # padding: zero weights, masked (-inf) classes
        classes = group.template[-1].out_features
        width, inputs = group.template[0].weight.shape
        assert torch.isinf(params["2.bias"][group.tasks, classes:]).all()
        assert not params["0.weight"][group.tasks, width:].any()
        assert not params["0.weight"][group.tasks, :, inputs:].any()
        assert not batch.x_train[group.tasks, :, inputs:].any()


@pytest.mark.parametrize("path", ["engine", "vmap"])
def test_a_mixed_batch_trains_as_each_task_alone(path):
    mixed = _mixed_classification()
    batch, params = _draw(mixed)
    loss = NoisyLabelsRecipe().initial_loss()
    loss_params = dict(loss.named_parameters())
    expected = _alone(mixed, batch, params, loss, loss_params)
    if path == "engine":
        execution = EngineExecution(mixed, loss, "adam", LR, inner_steps=STEPS, device="cpu")
    else:
        optimizer = torchopt.adam(LR, eps_root=1e-8)
        execution = InnerExecution(mixed, loss, optimizer, inner_steps=STEPS, device="cpu")
    got = execution.objectives(batch, params, loss_params)
    assert execution.path == path
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(
        _meta_gradient(got, loss_params), _meta_gradient(expected, loss_params), strict=True
    ):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-6)


def test_padded_units_stay_silent_through_training():
    mixed = _mixed_classification()
    batch, params = _draw(mixed)
    loss = NoisyLabelsRecipe().initial_loss()
    execution = EngineExecution(mixed, loss, "adam", LR, inner_steps=STEPS, device="cpu")
    with torch.no_grad():
        loss_params = {k: v.detach() for k, v in loss.named_parameters()}
        trained = execution.engine.train(params, loss_params, batch, STEPS)
    for group in mixed.task_groups():
        classes = group.template[-1].out_features
        width, inputs = group.template[0].weight.shape
        assert torch.isneginf(trained["2.bias"][group.tasks, classes:]).all()
        assert not trained["2.weight"][group.tasks, classes:].any()
        assert not trained["0.weight"][group.tasks, width:].any()
        assert not trained["0.weight"][group.tasks, :, inputs:].any()
        moved = trained["0.weight"][group.tasks, :width, :inputs]
        assert not torch.equal(moved, params["0.weight"][group.tasks, :width, :inputs])


def test_an_es_run_meta_trains_on_mixed_regression_tasks_on_the_engine():
    families = [
        RobustRegressionTasks(sources=("synthetic",), widths=(w,), n_train=32, n_query=16)
        for w in (8, 16)
    ]
    recipe = RobustRegressionRecipe()
    trainer = MetaTrainer(
        recipe.initial_loss(),
        MixedTasks(families),
        inner_steps=3,
        inner_lr=0.01,
        inner_optimizer="adam",
        meta_batch_size=6,
        meta_gradient="es",
        validate_every=1,
        validation_size=4,
        path="engine",
        progress=False,
    )
    assert trainer.path == "engine", trainer.path_reason
    before = [p.detach().clone() for p in trainer.loss.parameters()]
    trainer.fit(2)
    assert all(torch.isfinite(torch.tensor(r["meta_val"])) for r in trainer.history)
    after = list(trainer.loss.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_the_weights_decide_each_task_s_family():
    mixed = MixedTasks([_noisy_labels(3, 16, 4), _noisy_labels(7, 32, 9)], weights=(0.0, 1.0))
    mixed.sample(5, torch.Generator().manual_seed(0))
    assert [g.family for g in mixed.task_groups()] == [1]


class _BatchNormed(SineTasks):
    def make_model(self):
        return nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))


@pytest.mark.parametrize(
    ("families", "weights", "message"),
    [
        ([], None, "at least one"),
        ([SineTasks()], (1.0, 1.0), "weights"),
        ([SineTasks()], (0.0,), "all be zero"),
        ([SineTasks(), _noisy_labels(3, 16, 4)], None, "loss kinds"),
        ([_noisy_labels(3, 16, 4), NoisyLabelTasks(meta_objective="error")], None, "score"),
    ],
)
def test_families_that_cannot_mix_are_refused(families, weights, message):
    with pytest.raises(ValueError, match=message):
        MixedTasks(families, weights)


def test_a_model_padding_would_change_is_refused():
    mixed = MixedTasks([_BatchNormed()])
    with pytest.raises(ValueError, match="BatchNorm1d"):
        mixed.sample(2, torch.Generator().manual_seed(0))
