"""CMA-ES population search (`learnedloss.meta.CMAES`) and the engine path of `MetaTrainer`:
a generation is scored in one stacked engine run, the search is seeded, and it improves a
loss that starts far from good."""

from __future__ import annotations

import pytest
import torch

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.errors import RunDirectoryError
from learnedloss.families.sine import SineTasks
from learnedloss.meta import CMAES, EvolutionStrategies, meta_gradient_from
from learnedloss.meta.engine import BatchedInnerLoop, EngineExecution
from learnedloss.starts import grid_start_config


def grid_trainer(meta_gradient, path="engine", **settings):
    """A 5-knot grid loss (flat at its zero start: the models do not train) on sine tasks."""
    torch.manual_seed(0)
    loss = LearnedLoss(grid_start_config("mse", knots=(5,)))
    arguments = dict(
        inner_steps=8,
        inner_optimizer="adam",
        inner_lr=3e-2,
        meta_batch_size=4,
        validation_size=8,
        validate_every=0,
        meta_parameters=("network.values",),
        meta_gradient=meta_gradient,
        path=path,
        progress=False,
    )
    arguments.update(settings)
    tasks = SineTasks(n_train=20, n_query=20, hidden=(16,))
    return MetaTrainer(loss, tasks, **arguments)


def test_cmaes_improves_a_loss_that_starts_far_from_good():
    trainer = grid_trainer(CMAES(population=8, sigma=0.5), inner_steps=20, inner_lr=0.1)
    with torch.no_grad():  # ((1 + v) * residual)^2 with v = -1: a loss that is zero
        trainer.loss.network.values.fill_(-1.0)
    before = trainer.validate()
    trainer.fit(6)
    assert trainer.validate() < 0.85 * before


def test_cmaes_is_seeded():
    runs = []
    for _ in range(2):
        trainer = grid_trainer(CMAES(population=6, sigma=0.3))
        trainer.fit(2)
        runs.append((trainer.loss.network.values.detach().clone(), trainer.history))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize(
    ("meta_gradient", "models"),
    [(CMAES(population=6, sigma=0.3), 6 * 4), (EvolutionStrategies(pairs=3, sigma=0.1), 6 * 4)],
)
def test_a_generation_trains_in_one_stacked_call(monkeypatch, meta_gradient, models):
    calls = []
    train = BatchedInnerLoop.train

    def counted(self, params, *args, **kwargs):
        calls.append(next(iter(params.values())).shape[0])
        return train(self, params, *args, **kwargs)

    monkeypatch.setattr(BatchedInnerLoop, "train", counted)
    trainer = grid_trainer(meta_gradient)
    trainer.fit(2)
    assert calls == [models, models]  # one call per outer step, candidates x tasks stacked


@pytest.mark.parametrize("meta_gradient", ["backprop", EvolutionStrategies(pairs=3, sigma=0.1)])
def test_the_engine_gives_the_meta_gradient_of_the_vmap_path(meta_gradient):
    gradients = {}
    for path in ("vmap", "engine"):
        trainer = grid_trainer(meta_gradient, path=path)
        batch, params, total = trainer._step_tasks()
        weights = trainer._meta_weights()
        value = trainer._meta_gradient_step(batch, params, weights, total)
        gradients[path] = (value, weights["network.values"].grad.clone())
        assert trainer.path == path
    assert gradients["engine"][0] == pytest.approx(gradients["vmap"][0], rel=1e-5)
    torch.testing.assert_close(gradients["engine"][1], gradients["vmap"][1], rtol=1e-4, atol=1e-6)


def test_a_set_up_the_engine_refuses_falls_back_to_vmap_with_its_reason():
    import torchopt

    trainer = grid_trainer("backprop", inner_optimizer=torchopt.sgd(1e-2), inner_lr=None)
    assert trainer.path == "vmap"
    assert "the engine cannot run this" in trainer.path_reason
    assert "GradientTransformation" in trainer.path_reason or "lr=" in trainer.path_reason
    trainer.fit(1)
    assert trainer.path == "vmap"


def test_the_engine_is_chosen_only_when_asked():
    assert isinstance(grid_trainer("backprop")._execution, EngineExecution)
    assert not isinstance(grid_trainer("backprop", path="auto")._execution, EngineExecution)


def test_cmaes_is_a_string_shorthand_and_checks_its_settings():
    assert meta_gradient_from("cmaes", sigma=0.2, population=4) == CMAES(population=4, sigma=0.2)
    assert CMAES().describe()["meta_gradient"] == "cmaes"
    with pytest.raises(ValueError, match="population"):
        CMAES(population=1)
    with pytest.raises(ValueError, match="sigma"):
        CMAES(sigma=0.0)


def test_a_cmaes_run_refuses_to_resume(tmp_path):
    trainer = grid_trainer(CMAES(population=4, sigma=0.3), run_dir=tmp_path, checkpoint_every=1)
    trainer.fit(1)
    again = grid_trainer(CMAES(population=4, sigma=0.3), run_dir=tmp_path, checkpoint_every=1)
    with pytest.raises(RunDirectoryError, match="CMA-ES run cannot resume"):
        again.fit(2, resume=True)


def _small_cmaes_trainer(meta_gradient, **options) -> MetaTrainer:
    return MetaTrainer(
        LearnedLoss(grid_start_config("mse")),
        SineTasks(n_train=10, n_query=10, hidden=(8,)),
        meta_gradient=meta_gradient,
        meta_batch_size=2,
        validate_every=0,
        progress=False,
        **options,
    )


def test_a_generation_without_a_finite_score_leaves_the_loss_as_it_was(monkeypatch):
    import learnedloss.meta.gradients as gradients
    from learnedloss.errors import MetaTrainingDiverged

    monkeypatch.setattr(
        gradients, "evaluate_population", lambda objective, c: [float("nan")] * len(c)
    )
    trainer = _small_cmaes_trainer(CMAES(population=4), max_skips=2)
    before = {k: v.clone() for k, v in trainer.loss.state_dict().items()}
    with pytest.raises(MetaTrainingDiverged):
        trainer.fit(3)
    assert all(record["skipped"] for record in trainer.history)
    assert all(torch.equal(before[k], v) for k, v in trainer.loss.state_dict().items())


def test_trainers_given_one_cmaes_never_share_its_search():
    shared = CMAES(population=4)
    first, second = _small_cmaes_trainer(shared), _small_cmaes_trainer(shared)
    first.fit(1)
    second.fit(1)
    assert shared._searches == {}
    assert first.meta_gradient is not second.meta_gradient
    assert len(first.meta_gradient._searches) == len(second.meta_gradient._searches) == 1
