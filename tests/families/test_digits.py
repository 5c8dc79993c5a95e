"""Digits tasks, classification baselines, metric-aware evaluation and meta-training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnedloss import LearnedLoss, evaluate
from learnedloss.evaluation.baselines import (
    classification_losses,
    generalized_cross_entropy,
    scaled_cross_entropy,
)
from learnedloss.families.digits.recipe import (
    DigitsRecipe,
    MetaTrainingDigits,
    evaluate_classification,
)
from learnedloss.families.digits.tasks import DigitsTasks, digit_pools
from learnedloss.families.recipe import meta_train
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    make_inner_optimizer,
)
from learnedloss.starts import cross_entropy_start_config


def test_meta_train_and_meta_test_pools_are_disjoint_real_digits():
    from sklearn.datasets import load_digits

    pools = digit_pools()
    assert sum(len(p) for split in pools.values() for p in split) == len(load_digits().data)
    for digit in range(10):
        train, test = pools["meta-train"][digit], pools["meta-test"][digit]
        assert 0.55 < len(train) / (len(train) + len(test)) < 0.65
        same = (train[:, None, :] == test[None, :, :]).all(-1)
        assert not same.any()
        assert train.min() >= 0 and train.max() <= 1


def test_tasks_have_the_promised_shapes_labels_and_exact_noise():
    tasks = DigitsTasks(n_way=4, n_shot=10, n_query=5, label_noise=0.3)
    batch = tasks.sample(6, torch.Generator().manual_seed(0))
    assert batch.x_train.shape == (6, 40, 64) and batch.x_query.shape == (6, 20, 64)
    clean_train = torch.arange(4).repeat_interleave(10)
    assert torch.equal(batch.y_query[0], torch.arange(4).repeat_interleave(5))
    flipped = batch.y_train != clean_train
    assert (flipped.sum(dim=1) == 12).all()  # round(0.3 * 40), every flip to another class
    assert batch.y_train.min() >= 0 and batch.y_train.max() < 4


def test_tasks_are_reproducible_and_differ_by_seed():
    tasks = DigitsTasks()
    a = tasks.sample(3, torch.Generator().manual_seed(1))
    b = tasks.sample(3, torch.Generator().manual_seed(1))
    c = tasks.sample(3, torch.Generator().manual_seed(2))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_tasks_refuse_impossible_settings():
    with pytest.raises(ValueError, match="n_shot \\+ n_query must be at most 70"):
        DigitsTasks(split="meta-test", n_shot=60, n_query=20)
    with pytest.raises(ValueError, match="n_way must be in"):
        DigitsTasks(n_way=4, classes=(1, 2, 3))
    with pytest.raises(ValueError, match="label_noise"):
        DigitsTasks(label_noise=1.0)
    with pytest.raises(ValueError, match="model must be one of"):
        DigitsTasks(model="resnet")


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_models_give_logits_per_class(model):
    tasks = DigitsTasks(n_way=3, model=model)
    logits = tasks.make_model()(torch.rand(5, 64))
    assert logits.shape == (5, 3)


def test_generalized_cross_entropy_follows_its_formula():
    logits = torch.randn(6, 4)
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    p_y = torch.softmax(logits, 1)[torch.arange(6), target]
    expected = ((1 - p_y**0.7) / 0.7).mean()
    torch.testing.assert_close(generalized_cross_entropy(0.7)(logits, target), expected)
    # q -> 0 recovers cross-entropy; q = 1 is 1 - p_y
    torch.testing.assert_close(
        generalized_cross_entropy(1e-4)(logits, target),
        F.cross_entropy(logits, target),
        rtol=1e-3,
        atol=1e-3,
    )
    torch.testing.assert_close(generalized_cross_entropy(1.0)(logits, target), (1 - p_y).mean())
    torch.testing.assert_close(
        scaled_cross_entropy(1.5)(logits, target), 1.5 * F.cross_entropy(logits, target)
    )
    with pytest.raises(ValueError, match="q must be in"):
        generalized_cross_entropy(0.0)


def test_evaluate_reports_metrics_and_tunes_by_one():
    tasks = DigitsTasks(n_way=3, n_shot=5, n_query=5, split="meta-test")
    result = evaluate(
        {"CE": nn.CrossEntropyLoss()},
        tasks,
        steps=5,
        n_tasks=4,
        n_inits=1,
        lrs=[0.001, 0.5],
        tune_tasks=4,
        select_by="error",
    )
    score = result.scores["CE"]
    error = score.metrics["error"]
    assert error.shape == (4,) and ((error >= 0) & (error <= 1)).all()
    tuned_errors = score.tuning
    assert score.lr == min(tuned_errors, key=tuned_errors.get)
    assert "error" in result.table() and "error" in result.to_dict()["losses"]["CE"]
    with pytest.raises(ValueError, match="select_by must be 'objective' or one of"):
        evaluate({"CE": nn.CrossEntropyLoss()}, tasks, steps=1, n_tasks=1, select_by="acc")


def test_the_error_metric_is_the_misclassified_fraction():
    tasks = DigitsTasks(n_way=3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 0, 1])
    assert float(tasks.metrics(logits, target)["error"]) == 0.5


def test_meta_objectives_score_the_clean_query_set():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    target = torch.tensor([0, 1])
    kwargs = dict(n_way=2)
    ce = MetaTrainingDigits("cross-entropy", **kwargs).meta_objective({}, logits, target, {})
    assert torch.isclose(ce, F.cross_entropy(logits, target))
    expected_error = MetaTrainingDigits("expected-error", **kwargs)
    p_right = torch.softmax(logits, 1)[0, 0]
    assert torch.isclose(expected_error.meta_objective({}, logits, target, {}), 1 - p_right)
    # calibrated CE: the best temperature, so scaling the logits cannot lower it
    calibrated = MetaTrainingDigits("calibrated-cross-entropy", **kwargs)
    value = calibrated.meta_objective({}, logits, target, {})
    assert value <= ce
    torch.testing.assert_close(calibrated.meta_objective({}, logits / 2, target, {}), value)
    with pytest.raises(ValueError, match="meta_objective must be one of"):
        MetaTrainingDigits("accuracy")


def test_classification_meta_gradient_is_finite_and_paths_agree():
    tasks = MetaTrainingDigits("calibrated-cross-entropy", n_way=3, n_shot=4, n_query=4)
    generator = torch.Generator().manual_seed(0)
    batch = tasks.sample(3, generator)
    template, params = initial_params(tasks.make_model, 3, generator)
    torch.manual_seed(0)
    loss = LearnedLoss(cross_entropy_start_config(hidden=(8, 8)), check_finite=False)
    grads = {}
    for path in ("vmap", "loop"):
        inner = InnerLoop(
            template,
            learned_loss_apply(loss),
            tasks.meta_objective,
            make_inner_optimizer("sgd", 0.5),
            path=path,
        )
        loss.zero_grad()
        inner.run(params, dict(loss.named_parameters()), batch, 3).mean().backward()
        # the last bias shifts every class's term equally: no effect on training, no gradient
        grads[path] = [torch.zeros_like(p) if p.grad is None else p.grad for p in loss.parameters()]
    for v, lo in zip(grads["vmap"], grads["loop"], strict=True):
        torch.testing.assert_close(v, lo, rtol=1e-4, atol=1e-7)
    last = grads["vmap"][-2]  # the zero-initialized last layer gets a gradient
    assert torch.isfinite(last).all() and last.abs().sum() > 0


def test_meta_training_moves_the_loss_and_records_the_recipe():
    recipe = DigitsRecipe(
        n_way=3,
        n_shot=5,
        n_query=5,
        hidden=(8, 8),
        outer_steps=3,
        inner_steps=3,
        meta_batch_size=2,
        validate_every=1,
        validation_size=2,
    )
    start = recipe.initial_loss().state_dict()
    best, trainer = meta_train(recipe, family="digits", progress=False)
    assert trainer.step == 3 and trainer.path == "vmap"
    moved = [not torch.equal(start[k], v) for k, v in trainer.loss.state_dict().items()]
    assert any(moved)
    assert best.metadata["recipe"]["family"] == "digits"
    assert best.metadata["recipe"]["n_shot"] == 5


def test_evaluate_classification_compares_with_every_baseline():
    loss = LearnedLoss(cross_entropy_start_config(hidden=(8, 8)))
    tasks = DigitsTasks(n_way=3, n_shot=5, n_query=5, split="meta-test")
    tuned, fixed = evaluate_classification(
        loss, tasks, steps=3, n_tasks=3, lr_range=(0.1, 0.2), tune_tasks=2, same_lr=0.3
    )
    names = list(tuned.scores)
    assert names[:2] == ["CE", "learned"]
    assert set(classification_losses()) <= set(names)
    # the loss starts as exactly cross-entropy, so at the same lr it scores the same
    torch.testing.assert_close(
        fixed.scores["learned"].finals, fixed.scores["CE"].finals, rtol=1e-4, atol=1e-5
    )


def test_bundled_noisy_labels_loss_beats_cross_entropy_at_the_same_lr():
    """The bundled loss must keep what its card claims on held-out noisy tasks: fewer query
    errors than cross-entropy with the same models, steps and lr (card: 9% vs 11%)."""
    loss = LearnedLoss.from_pretrained("digits-noisy-labels")
    assert loss.config.kind == "classification"
    tasks = DigitsTasks(n_shot=40, n_query=20, label_noise=0.4, split="meta-test")
    result = evaluate(
        {"CE": nn.CrossEntropyLoss(), "learned": loss}, tasks, steps=100, n_tasks=24, lr=0.2
    )
    errors = {name: float(s.metrics["error"].mean()) for name, s in result.scores.items()}
    assert errors["learned"] < errors["CE"] - 0.01, errors


def test_bundled_clean_loss_is_no_worse_than_cross_entropy_at_the_same_lr():
    loss = LearnedLoss.from_pretrained("digits-classification")
    tasks = DigitsTasks(n_shot=40, n_query=20, split="meta-test")
    result = evaluate(
        {"CE": nn.CrossEntropyLoss(), "learned": loss}, tasks, steps=100, n_tasks=24, lr=0.2
    )
    errors = {name: float(s.metrics["error"].mean()) for name, s in result.scores.items()}
    assert errors["learned"] < errors["CE"] + 0.02, errors
