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


def _gce_start(q=0.7, knots=17):
    return NoisyLabelsRecipe(
        parameterization="grid",
        inputs=("log_prob",),
        grid_knots=(knots,),
        grid_range=((-8.0, 0.0),),
        start_gce_q=q,
    ).initial_loss()


@pytest.mark.parametrize("n_classes", [2, 10, 100])
@pytest.mark.parametrize("q", [0.3, 0.7, 1.0])
def test_gce_start_is_generalized_cross_entropy_at_any_class_count(n_classes, q):
    from learnedloss.evaluation.baselines import generalized_cross_entropy

    loss, reference = _gce_start(q), generalized_cross_entropy(q)
    generator = torch.Generator().manual_seed(n_classes)
    logits = (2 * torch.randn(512, n_classes, generator=generator)).requires_grad_()
    target = torch.randint(0, n_classes, (512,), generator=generator)
    # inside the grid, away from its first interval (flat at -8, where GCE still slopes)
    inside = torch.log_softmax(logits, -1).gather(1, target[:, None]).squeeze(1) > -7.5
    logits_in = logits.detach()[inside].requires_grad_()
    ours, theirs = loss(logits_in, target[inside]), reference(logits_in, target[inside])
    torch.testing.assert_close(ours, theirs, rtol=2e-3, atol=1e-5)
    (g_ours,) = torch.autograd.grad(ours, logits_in)
    (g_theirs,) = torch.autograd.grad(theirs, logits_in)
    torch.testing.assert_close(g_ours, g_theirs, rtol=2e-2, atol=2e-4)


def test_gce_start_needs_a_log_prob_grid():
    with pytest.raises(ValueError, match="start_gce_q"):
        NoisyLabelsRecipe(start_gce_q=0.7).initial_loss()
    with pytest.raises(ValueError, match="q must be"):
        _gce_start(q=0.0)


def test_error_meta_objective_is_the_query_error_rate():
    tasks = NoisyLabelTasks(meta_objective="error")
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([0, 0, 0, 1])
    assert tasks.meta_objective(None, logits, target, {}).item() == 0.25
    with pytest.raises(ValueError, match="meta_objective"):
        NoisyLabelTasks(meta_objective="accuracy")


@pytest.mark.parametrize("n_classes", [2, 10, 100])
def test_cluster_tasks_use_every_class_and_fit_a_model(n_classes):
    tasks = NoisyLabelTasks(
        sources=("clusters",),
        n_classes=(n_classes,),
        n_train=300,
        n_query=100,
        label_noise=(0.0, 0.0),
        synthetic_inputs=(4, 4),
    )
    batch = tasks.sample(3, torch.Generator().manual_seed(n_classes))
    labels = torch.cat([batch.y_train, batch.y_query], dim=1)
    assert labels.min() >= 0 and labels.max() == n_classes - 1
    assert len(labels[0].unique()) == n_classes  # make_classification balances the classes
    # the inputs grow to hold a cluster per class (4 asked, 2**k >= 2 * n_classes)
    assert batch.x_train.shape[-1] >= (2 * n_classes - 1).bit_length()
    logits = tasks.make_model()(batch.x_train[0])
    assert logits.shape == (300, n_classes)


def test_selection_refuses_held_out_conditions():
    from learnedloss.families.noisy_labels.select import evaluate_candidates

    with pytest.raises(ValueError, match="held out"):
        evaluate_candidates(["wine:3", "digits:10"], [0.4])


def test_selection_scores_gains_over_cross_entropy_across_noises():
    from learnedloss.families.noisy_labels.select import choose, scores, selection_table

    def result(noise, ce, gce):
        seeds = [
            {"cross-entropy": {"accuracy": c}, "GCE": {"accuracy": g}}
            for c, g in zip(ce, gce, strict=True)
        ]
        return {"noise": noise, "seeds": seeds}

    # GCE wins by 4 points at 40% noise but loses 3 on clean labels: +0.5 overall
    results = [result(0.4, [80.0, 70.0], [84.0, 74.0]), result(0.0, [90.0, 92.0], [87.0, 89.0])]
    assert scores(results)["GCE"][0] == pytest.approx(0.5)
    assert choose(results) == "GCE"
    results.append(result(0.0, [90.0, 90.0], [85.0, 85.0]))
    assert choose(results) == "cross-entropy"
    assert "40% noise" in selection_table(results)


def test_selection_saves_the_chosen_start(tmp_path):
    from learnedloss import LearnedLoss
    from learnedloss.families.noisy_labels.select import candidates, main

    out = tmp_path / "chosen"
    main(
        ["--conditions", "wine:3", "--noises", "0.4", "--seeds", "1", "--steps", "5",
         "--tasks", "2", "--tune-tasks", "2", "--optimizers", "sgd", "--out", str(out),
         "--json", str(tmp_path / "results.json")]
    )  # fmt: skip
    loss = LearnedLoss.from_pretrained(out)
    chosen = loss.metadata["training"]["chosen"]
    reference = candidates()[chosen].initial_loss()
    logits, labels = torch.randn(32, 7), torch.randint(0, 7, (32,))
    torch.testing.assert_close(loss(logits, labels), reference(logits, labels))
    merged = tmp_path / "merged"
    main(["--merge", str(tmp_path / "results.json"), "--out", str(merged)])
    assert LearnedLoss.from_pretrained(merged).metadata["training"]["chosen"] == chosen


@pytest.mark.parametrize("q", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("knots", [9, 17])
def test_gce_start_falls_strictly_and_stays_positive_far_beyond_its_grid(q, knots):
    loss = _gce_start(q=q, knots=knots).double()
    logits = torch.zeros(4001, 10, dtype=torch.float64)
    logits[:, 0] = torch.linspace(-60.0, 12.0, 4001, dtype=torch.float64)
    logits.requires_grad_(True)
    loss.reduction = "none"
    values = loss(logits, torch.zeros(4001, dtype=torch.long))
    (gradient,) = torch.autograd.grad(values.sum(), logits)
    assert (values > 0).all()
    assert (gradient[:, 0] < 0).all()  # a higher labelled logit always costs less
