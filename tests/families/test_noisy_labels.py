"""The broad noisy-label family (issue 17): tasks, recipe and transfer evaluation."""

from __future__ import annotations

import pytest
import statsmodels  # noqa: F401  (the data extra: the real tables ship with it)
import torch

from learnedloss.families.noisy_labels import (
    HELD_OUT_TABLES,
    META_TRAIN_TABLES,
    TABLES,
    NoisyLabelsRecipe,
    NoisyLabelTasks,
)
from learnedloss.families.noisy_labels.tasks import flip_labels, load_table
from learnedloss.families.noisy_labels.transfer import held_out_tasks, summary, transfer


def test_held_out_tables_are_never_meta_trained_on(check_held_out_split):
    check_held_out_split(HELD_OUT_TABLES, META_TRAIN_TABLES, TABLES, NoisyLabelsRecipe())


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_load_offline(name):
    x, labels = load_table(name)
    assert x.shape[0] == labels.shape[0] and labels.min() == 0
    assert torch.isfinite(x).all()


def test_flips_hit_the_fraction_asked_and_never_keep_the_class():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (2, 100), generator=generator)
    fraction = torch.tensor([0.4, 0.6])
    out = flip_labels(labels, 10, fraction, ["symmetric", "pair"], generator)
    assert (out != labels).sum(dim=1).tolist() == [40, 60]
    pair = out[1] != labels[1]
    assert torch.equal(out[1][pair], (labels[1][pair] + 1) % 10)


def test_tasks_vary_class_count_and_models_fit_them():
    family = NoisyLabelTasks(sources=("synthetic",), label_noise=(0.4, 0.4))
    generator = torch.Generator().manual_seed(0)
    counts = set()
    for _ in range(6):
        batch = family.sample(2, generator)
        model = family.make_model()
        n_classes = model(batch.x_train[0]).shape[-1]
        counts.add(n_classes)
        assert int(batch.y_train.max()) < n_classes and int(batch.y_query.max()) < n_classes
    assert len(counts) > 1


def test_held_out_tables_take_a_subset_of_classes_and_the_cnn():
    tasks = held_out_tasks("digits", 2, 0.4, model="cnn")
    batch = tasks.sample(2, torch.Generator().manual_seed(0))
    assert set(batch.y_query.unique().tolist()) == {0, 1}
    assert tasks.make_model()(batch.x_train[0]).shape == (tasks.n_train, 2)


def test_recipe_meta_trains_with_es(meta_train_tiny_es):
    meta_train_tiny_es(NoisyLabelsRecipe, "noisy-labels", n_classes=(3,), widths=(8,))


def test_transfer_evaluation_runs_and_summarizes():
    loss = NoisyLabelsRecipe().initial_loss()  # exactly cross-entropy
    results = transfer(
        {"count-free CE": loss},
        conditions=("breast-cancer:2",),
        optimizers=("sgd",),
        seeds=1,
        steps=2,
        n_tasks=1,
        tune_tasks=1,
    )
    (seed,) = results[0]["seeds"]
    assert seed["count-free CE"]["accuracy"] == pytest.approx(seed["CE"]["accuracy"])
    assert "points over best baseline" in summary(results)
