"""The broad robust-regression family (issue 17): tasks, recipe and transfer evaluation."""

from __future__ import annotations

import json

import pytest
import statsmodels  # noqa: F401  (the data extra: the real tables ship with it)
import torch

from learnedloss.families.robust_regression import (
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    TABLES,
    RobustRegressionRecipe,
    RobustRegressionTasks,
)
from learnedloss.families.robust_regression.tasks import (
    corrupt,
    load_table,
    robust_standardize,
)
from learnedloss.families.robust_regression.transfer import summary, transfer


def test_held_out_tables_are_never_meta_trained_on(check_held_out_split):
    check_held_out_split(HELD_OUT_TABLES, META_TRAIN_TABLES, TABLES, RobustRegressionRecipe())


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_load_offline(name):
    x, y = load_table(name)
    assert x.dim() == 2 and y.shape == (x.shape[0],) and x.shape[0] >= 150
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    z = robust_standardize(y)
    assert abs(float(z.median())) < 1e-5 and torch.isfinite(z).all()


def test_corruption_hits_the_fraction_asked_and_only_training_targets():
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(3, 100)
    fraction = torch.tensor([0.0, 0.2, 0.4])
    out = corrupt(y, fraction, ["uniform", "heavy", "one-sided"], generator)
    changed = (out != y).sum(dim=1).tolist()
    assert changed == [0, 20, 40]
    assert (out[2] >= y[2]).all()  # one-sided outliers lie above the truth


def test_tasks_vary_source_width_and_scale_and_models_fit_them():
    family = RobustRegressionTasks(outlier_fraction=(0.2, 0.2))
    generator = torch.Generator().manual_seed(0)
    shapes = set()
    for _ in range(6):
        batch = family.sample(4, generator)
        model = family.make_model()
        assert model(batch.x_train[0]).shape == batch.y_train[0].shape
        shapes.add((batch.x_train.shape[-1], model[0].out_features))
        assert batch.y_query.shape == (4, family.n_query, 1)
    assert len(shapes) > 1
    assert set(family.describe()["sources"]) == {"synthetic", *META_TRAIN_TABLES}


def test_recipe_meta_trains_with_es_and_records_itself(meta_train_tiny_es):
    loss = meta_train_tiny_es(RobustRegressionRecipe, "robust-regression", widths=(8,))
    assert RobustRegressionRecipe.from_loss(loss).widths == (8,)


def test_recipe_meta_trains_a_grid_that_starts_as_mse(meta_train_tiny_es):
    grid = dict(
        parameterization="grid",
        inputs=("scaled_residual",),
        grid_knots=(9,),
        grid_range=((-6.0, 6.0),),
    )
    start = RobustRegressionRecipe(**grid).initial_loss()
    assert start.config.parameterization == "grid" and start.config.residual_form == "scale"
    x, y = torch.randn(40), torch.randn(40)
    torch.testing.assert_close(start(x, y), torch.nn.functional.mse_loss(x, y))
    loss = meta_train_tiny_es(RobustRegressionRecipe, "robust-regression", widths=(8,), **grid)
    assert loss.config.grid_range == ((-6.0, 6.0),)
    assert (
        RobustRegressionRecipe.from_loss(loss).initial_loss().config == start.config
    )  # the metadata round trip


def test_transfer_evaluation_runs_and_summarizes():
    loss = RobustRegressionRecipe().initial_loss()  # exactly MSE
    results = transfer(
        {"scale-free MSE": loss},
        tables=("diabetes",),
        optimizers=("adam",),
        seeds=1,
        steps=2,
        n_tasks=1,
        n_inits=1,
        tune_tasks=1,
        deltas=(1.0,),
        n_train=32,
        n_query=16,
    )
    (seed,) = results[0]["seeds"]
    # a loss that starts as MSE trains exactly as MSE does
    assert seed["scale-free MSE"]["score"] == pytest.approx(seed["MSE"]["score"], rel=1e-4)
    assert "ratio to best baseline" in summary(results)


def test_the_demo_scores_the_bundled_loss_on_the_held_out_table(tmp_path, capsys):
    """`learnedloss demo`: the README's main job, at a tiny size."""
    from learnedloss.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "3", "--n-tasks", "1"]) == 0
    printed = capsys.readouterr().out
    assert "robust-regression" in printed and "diabetes" in printed
    assert "/ best tuned" in printed and "/ best default" in printed
    results = json.loads((out / "results.json").read_text())
    for optimizer in ("sgd", "adam"):
        scores = results[optimizer]["losses"]
        tuned = {"MSE", "L1", "Huber (tuned d)", "Cauchy (tuned c)", "Adaptive robust"}
        defaults = {"Huber d=1", "Cauchy c=1"}
        assert tuned | defaults | {"robust-regression"} <= set(scores)
        assert (out / f"demo-{optimizer}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_lr_range_in_raw_units_covers_squared_and_absolute_losses():
    """Targets 100x larger need an L1 loss's lr 100x larger and a squared loss's 100x smaller:
    the tuned range widens both ways, so neither kind is tuned against the grid's edge."""
    from learnedloss.families.robust_regression.transfer import LR_RANGES, lr_range

    low, high = LR_RANGES["sgd"]
    for scale in (100.0, 0.01):
        wide_low, wide_high = lr_range("sgd", scale)
        assert wide_low == pytest.approx(low / 100) and wide_high == pytest.approx(high * 100)
    assert lr_range("adam", 1.0) == LR_RANGES["adam"]
