"""skorch builds the criterion from its class and ``criterion__*`` arguments; a learned loss
must come out trained (or the call must fail clearly), never as a random trainable loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch import NeuralNetRegressor
from torch import nn

from learnedloss import LearnedLoss


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    return x, y


def make_net(**kwargs):
    torch.manual_seed(0)
    return NeuralNetRegressor(
        nn.Linear,
        module__in_features=3,
        module__out_features=1,
        max_epochs=5,
        lr=0.05,
        batch_size=16,
        train_split=None,
        verbose=0,
        **kwargs,
    )


def assert_is_the_bundled_loss(criterion, name="mse-fit"):
    reference = LearnedLoss.from_pretrained(name)
    assert isinstance(criterion, LearnedLoss) and criterion.frozen
    assert not list(criterion.parameters())
    for key, tensor in reference.weights().items():
        assert torch.equal(criterion.weights()[key], tensor), key


def test_criterion_class_with_pretrained_argument_trains_with_the_bundled_loss():
    x, y = regression_data()
    net = make_net(criterion=LearnedLoss, criterion__pretrained="mse-fit").fit(x, y)
    assert_is_the_bundled_loss(net.criterion_)
    learnable = [name for name, _ in net.get_all_learnable_params()]
    assert learnable == ["weight", "bias"]  # the model's only; the loss has none
    # the reported loss is the learned loss's value, which tracks the true MSE (mse-fit)
    with torch.no_grad():
        prediction = net.module_(torch.from_numpy(x))
        true_mse = nn.functional.mse_loss(prediction, torch.from_numpy(y)).item()
    assert net.history[-1, "train_loss"] == pytest.approx(true_mse, rel=0.5, abs=0.05)
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]


def test_criterion_arguments_are_passed_through():
    x, y = regression_data()
    net = make_net(
        criterion=LearnedLoss, criterion__pretrained="mse-fit", criterion__reduction="sum"
    ).fit(x, y)
    assert net.criterion_.reduction == "sum"
    assert_is_the_bundled_loss(net.criterion_)


def test_an_instance_is_used_as_is_and_criterion_arguments_alone_fail_clearly():
    x, y = regression_data()
    loss = LearnedLoss.from_pretrained("mse-fit")
    net = make_net(criterion=loss).fit(x, y)
    assert net.criterion_ is loss
    # skorch rebuilds an instance from type(instance)(**criterion__kwargs): no config, no name
    with pytest.raises(TypeError, match="criterion__pretrained"):
        make_net(criterion=loss, criterion__reduction="sum").fit(x, y)
    with pytest.raises(TypeError, match="needs a config"):
        make_net(criterion=LearnedLoss).fit(x, y)


@pytest.mark.parametrize("by_name", [True, False])
def test_sklearn_clone_gives_the_pretrained_loss(by_name):
    x, y = regression_data()
    if by_name:
        net = make_net(criterion=LearnedLoss, criterion__pretrained="robust-regression")
    else:
        net = make_net(criterion=LearnedLoss.from_pretrained("robust-regression"))
    cloned = clone(net).fit(x, y)
    assert_is_the_bundled_loss(cloned.criterion_, "robust-regression")
    assert cloned.get_params()["criterion"] is not None


def test_a_classifier_trains_with_the_bundled_noisy_labels_loss():
    """NeuralNetClassifier with the count-free classification drop-in, on real data (iris),
    a quarter of the training labels flipped: it fits, predicts classes and leaves the loss
    as bundled."""
    from sklearn.datasets import load_iris
    from skorch import NeuralNetClassifier

    data = load_iris()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:100], order[100:]
    noisy = y[train].copy()
    flip = rng.random(len(noisy)) < 0.25
    noisy[flip] = (noisy[flip] + rng.integers(1, 3, flip.sum())) % 3
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3)),
        criterion=LearnedLoss,
        criterion__pretrained="noisy-labels",
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=60,
        batch_size=32,
        train_split=None,
        verbose=0,
    ).fit(x[train], noisy)
    assert_is_the_bundled_loss(net.criterion_, "noisy-labels")
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]
    assert (net.predict(x[test]) == y[test]).mean() > 0.85


def _classifier(**kwargs):
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    return NeuralNetClassifier(
        nn.Linear(4, 3),
        criterion=LearnedLoss,
        criterion__pretrained="noisy-labels",
        max_epochs=2,
        lr=0.05,
        batch_size=16,
        train_split=None,
        verbose=0,
        **kwargs,
    )


def _iris():
    from sklearn.datasets import load_iris

    data = load_iris()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    return x, data.target.astype(np.int64)


def test_a_classifier_that_would_return_logits_from_predict_proba_warns():
    """skorch applies softmax only for nn.CrossEntropyLoss and has no hook for other losses:
    building the loss in such a net warns and names the fix (docs/swap.md)."""
    x, y = _iris()
    with pytest.warns(UserWarning, match=r"predict_nonlinearity=torch.nn.Softmax\(dim=-1\)"):
        net = _classifier().fit(x, y)
    assert not np.allclose(net.predict_proba(x).sum(1), 1.0)  # what the warning is about


def test_a_classifier_given_the_softmax_returns_probabilities_without_a_warning():
    import warnings

    x, y = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        net = _classifier(predict_nonlinearity=nn.Softmax(dim=-1)).fit(x, y)
    proba = net.predict_proba(x)
    assert proba.shape == (len(y), 3) and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert (net.predict(x) == proba.argmax(1)).all()


def test_a_regressor_and_a_plain_classification_loss_do_not_warn():
    import warnings

    x, y = regression_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        make_net(criterion=LearnedLoss, criterion__pretrained="mse-fit").fit(x, y)
        LearnedLoss.from_pretrained("noisy-labels")  # outside skorch: no warning
