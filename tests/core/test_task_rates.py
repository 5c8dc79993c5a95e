"""Per-task inner learning rates (``inner_lr_range``) and the ``path`` setting: each task
trains at its own rate, drawn reproducibly; both settings are options that reach the trainer."""

from __future__ import annotations

import argparse

import pytest
import torch
import torchopt
from torch import nn

from learnedloss import MetaTrainer
from learnedloss.cli.options import add_recipe_options, recipe_from_options
from learnedloss.errors import ConfigError
from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
from learnedloss.families.sine import SineTasks
from learnedloss.meta.engine import BatchedInnerLoop
from learnedloss.meta.inner import plain_objective
from learnedloss.meta.rates import VALIDATION_STEP, step_rates
from learnedloss.tasks.base import TaskBatch, mse_objective

RANGE = (1e-3, 1e-1)


def _line_tasks(tasks: int = 3):
    """A float64 batch of 1-d lines and a linear model's starting weights per task."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tasks, 6, 1, generator=generator, dtype=torch.float64)
    y = 2 * x + 0.5
    xq = torch.randn(tasks, 4, 1, generator=generator, dtype=torch.float64)
    batch = TaskBatch(x, y, xq, 2 * xq + 0.5)
    params = {
        "0.weight": torch.randn(tasks, 1, 1, generator=generator, dtype=torch.float64),
        "0.bias": torch.randn(tasks, 1, generator=generator, dtype=torch.float64),
    }
    return batch, params


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_task_i_trains_at_its_own_rate_as_a_float64_step_by_hand(grad_enabled):
    batch, params = _line_tasks()
    lr = torch.tensor([0.01, 0.1, 0.5], dtype=torch.float64)
    template = nn.Sequential(nn.Linear(1, 1)).double()
    engine = BatchedInnerLoop(template, nn.MSELoss(), plain_objective(mse_objective), "sgd", 1.0)
    with torch.set_grad_enabled(grad_enabled):
        got = engine.run(params, {}, batch, 1, lr=lr)
    for t in range(3):
        w, b = params["0.weight"][t, 0, 0], params["0.bias"][t, 0]
        x, y = batch.x_train[t, :, 0], batch.y_train[t, :, 0]
        residual = w * x + b - y
        w_new = w - lr[t] * (2 * residual * x).mean()
        b_new = b - lr[t] * (2 * residual).mean()
        xq, yq = batch.x_query[t, :, 0], batch.y_query[t, :, 0]
        expected = ((w_new * xq + b_new - yq) ** 2).mean()
        torch.testing.assert_close(got[t].detach(), expected, rtol=1e-12, atol=1e-12)


def test_the_rates_are_reproducible_log_uniform_and_new_at_every_step():
    first = step_rates(RANGE, 7, 1, 64)
    assert first.dtype == torch.float64 and first.shape == (64,)
    assert torch.equal(first, step_rates(RANGE, 7, 1, 64))
    assert not torch.equal(first, step_rates(RANGE, 7, 2, 64))
    assert not torch.equal(first, step_rates(RANGE, 8, 1, 64))
    assert not torch.equal(first, step_rates(RANGE, 7, VALIDATION_STEP, 64))
    assert bool(((first >= RANGE[0]) & (first <= RANGE[1])).all())
    logs = step_rates(RANGE, 0, 3, 4000).log()  # log-uniform: the logs' mean is mid-range
    assert abs(float(logs.mean()) - sum(map(torch.log, map(torch.tensor, RANGE))) / 2) < 0.1
    assert step_rates(None, 7, 1, 64) is None


def _trainer(**overrides) -> MetaTrainer:
    recipe = RobustRegressionRecipe(sources=("synthetic",), inner_steps=3, meta_batch_size=4)
    arguments = recipe.settings.trainer_arguments()
    arguments.update(validate_every=1, validation_size=4, progress=False, path="engine")
    arguments.update(overrides)
    return MetaTrainer(recipe.initial_loss(), recipe.tasks(), **arguments)


def test_the_trainer_passes_each_step_s_rates_to_the_engine(monkeypatch):
    trainer = _trainer(inner_lr_range=RANGE, meta_gradient="es")
    assert trainer.path == "engine", trainer.path_reason
    seen = []
    run = trainer._execution.engine.run

    def recording(*args, lr=None, **kwargs):
        seen.append(lr)
        return run(*args, lr=lr, **kwargs)

    monkeypatch.setattr(trainer._execution.engine, "run", recording)
    trainer.fit(2)
    expected = [step_rates(RANGE, trainer.seed, step, 4) for step in (1, 2)]
    assert len(seen) == 2  # one stacked run of every ES pair per step, all at the step's rates
    for rates, want in zip(seen, expected, strict=True):
        assert torch.equal(rates.view(-1, 4)[0], want)
        assert torch.equal(rates.view(-1, 4), want.repeat(rates.numel() // 4, 1))
    assert trainer.describe()["inner_lr_range"] == list(RANGE)


def test_a_run_with_rates_resumes_bit_identically(tmp_path):
    _trainer(inner_lr_range=RANGE, run_dir=tmp_path / "a", checkpoint_every=1).fit(2)
    resumed = _trainer(inner_lr_range=RANGE, run_dir=tmp_path / "a", checkpoint_every=1)
    resumed.fit(3, resume=True)
    fresh = _trainer(inner_lr_range=RANGE)
    fresh.fit(3)
    for name, value in fresh.loss.state_dict().items():
        assert torch.equal(value, resumed.loss.state_dict()[name]), name
    assert [r["meta_val"] for r in resumed.history] == [r["meta_val"] for r in fresh.history]


def test_the_rates_change_the_run_and_one_rate_is_inner_lr():
    plain = _trainer(inner_lr=0.02)
    plain.fit(1)
    pinned = _trainer(inner_lr_range=(0.02, 0.02))
    pinned.fit(1)
    drawn = _trainer(inner_lr_range=RANGE)
    drawn.fit(1)
    assert plain.history[0]["meta_train"] == pytest.approx(pinned.history[0]["meta_train"])
    assert drawn.history[0]["meta_train"] != pytest.approx(plain.history[0]["meta_train"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"path": "auto"}, "path='engine'"),
        ({"path": "vmap"}, "path='engine'"),
        ({"inner_optimizer": torchopt.sgd(0.1), "inner_lr": None}, "GradientTransformation"),
        ({"inner_lr_range": (0.1, 0.01)}, "reversed"),
        ({"inner_lr_range": (0.0, 0.01)}, "> 0"),
    ],
)
def test_a_range_the_trainer_cannot_run_is_a_config_error(overrides, message):
    arguments = {"inner_lr_range": RANGE, **overrides}
    with pytest.raises(ConfigError, match=message):
        _trainer(**arguments)


def test_a_range_on_a_model_the_engine_cannot_run_is_a_config_error():
    class Normed(SineTasks):
        def make_model(self):
            return nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))

    loss = RobustRegressionRecipe().initial_loss()
    with pytest.raises(ConfigError, match="cannot run Normed"):
        MetaTrainer(loss, Normed(), inner_lr_range=RANGE, path="engine", progress=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def test_path_and_the_range_are_options_that_reach_the_trainer():
    parser = _Parser(prog="meta-train")
    add_recipe_options(parser, RobustRegressionRecipe)
    assert "--path" in parser.format_help() and "--inner-lr-range" in parser.format_help()
    args = parser.parse_args(
        ["--path", "engine", "--inner-lr-range", "0.001", "0.1", "--sources", "synthetic"]
    )
    recipe = recipe_from_options(RobustRegressionRecipe, args)
    assert recipe.to_dict()["path"] == "engine"
    assert recipe.to_dict()["inner_lr_range"] == (0.001, 0.1)
    assert RobustRegressionRecipe.from_dict(recipe.to_dict()) == recipe
    arguments = recipe.settings.trainer_arguments()
    trainer = MetaTrainer(recipe.initial_loss(), recipe.tasks(), **arguments, progress=False)
    assert trainer.path == "engine" and trainer.inner_lr_range == (0.001, 0.1)
    with pytest.raises(ValueError, match="invalid choice"):
        parser.parse_args(["--path", "fast"])


def test_a_recipe_without_the_new_settings_keeps_today_s_behaviour():
    recipe = RobustRegressionRecipe()
    assert recipe.path == "auto" and recipe.inner_lr_range is None
    arguments = recipe.settings.trainer_arguments()
    assert arguments["path"] == "auto" and arguments["inner_lr_range"] is None


def test_meta_train_on_the_command_line_runs_on_the_engine_at_drawn_rates(tmp_path, capsys):
    import json

    from learnedloss import LearnedLoss
    from learnedloss.cli import main

    out = tmp_path / "loss"
    arguments = ["meta-train", "sine", "--path", "engine", "--inner-lr-range", "0.001", "0.1"]
    tiny = ["--outer-steps", "2", "--inner-steps", "2", "--meta-batch", "2", "--hidden", "8"]
    assert main([*arguments, *tiny, "--validate-every", "1", "--out", str(out)]) == 0
    assert "on the engine path" in capsys.readouterr().out
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["path"] == "engine" and recipe["inner_lr_range"] == [0.001, 0.1]
    training = LearnedLoss.from_pretrained(out).metadata["training"]
    assert training["inner_lr_range"] == [0.001, 0.1]
