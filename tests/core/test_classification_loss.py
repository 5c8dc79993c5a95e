"""The classification LearnedLoss: nn.CrossEntropyLoss's contract, the exact CE start, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from learnedloss import LearnedLoss, LossConfig
from learnedloss.errors import ConfigError
from learnedloss.starts import cross_entropy_start_config, grid_start_config


def ce_start(**kwargs) -> LearnedLoss:
    torch.manual_seed(0)
    return LearnedLoss(cross_entropy_start_config(hidden=(16, 16)), **kwargs)


def trained_like() -> LearnedLoss:
    """A loss whose network is not zero (as after meta-training): random last layer."""
    loss = ce_start()
    torch.manual_seed(1)
    torch.nn.init.normal_(loss.network.layers[-1].weight, std=0.3)
    return loss


def batch(shape, n_classes=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(shape, generator=generator)
    classes = n_classes or shape[1 if len(shape) > 1 else 0]
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = torch.randint(0, classes, target_shape, generator=generator)
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(7,), (16, 5), (4, 3, 2, 6)])
def test_cross_entropy_start_equals_f_cross_entropy(shape, reduction):
    logits, target = batch(shape)
    logits.requires_grad_(True)
    ours = ce_start(reduction=reduction)(logits, target)
    theirs = F.cross_entropy(logits, target, reduction=reduction)
    # float32 summation order differs: 1e-5 absolute, or 1e-6 relative for large sums
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=1e-6)


def test_cross_entropy_start_with_probability_targets():
    logits, _ = batch((16, 5))
    probs = torch.softmax(torch.randn(16, 5), dim=1)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            ce_start(reduction=reduction)(logits, probs),
            F.cross_entropy(logits, probs, reduction=reduction),
            rtol=0,
            atol=1e-5,
        )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ignore_index_matches_pytorch_semantics(reduction):
    logits, target = batch((12, 4))
    target[[1, 5, 6]] = -100
    torch.testing.assert_close(
        ce_start(reduction=reduction)(logits, target),
        F.cross_entropy(logits, target, reduction=reduction),
        rtol=0,
        atol=1e-5,
    )
    target[:] = 7
    custom = ce_start(reduction=reduction, ignore_index=7)(logits, target)
    expected = F.cross_entropy(logits, target, reduction=reduction, ignore_index=7)
    torch.testing.assert_close(custom, expected, equal_nan=True)  # 'mean': 0/0 = nan


def test_ignored_samples_do_not_move_a_trained_loss():
    loss = trained_like()
    logits, target = batch((10, 4))
    kept = loss(logits[:6], target[:6])
    target[6:] = -100
    torch.testing.assert_close(loss(logits, target), kept)


def test_one_loss_serves_any_class_count_and_is_class_symmetric():
    loss = trained_like()
    for n_classes in (2, 10, 100):
        logits, target = batch((8, n_classes))
        value = loss(logits, target)
        assert value.shape == () and torch.isfinite(value)
        permutation = torch.randperm(n_classes, generator=torch.Generator().manual_seed(2))
        inverse = torch.argsort(permutation)
        relabelled = loss(logits[:, permutation], inverse[target])
        torch.testing.assert_close(relabelled, value)


def test_a_trained_loss_differs_from_cross_entropy_and_has_the_per_class_form():
    loss = trained_like()
    logits, target = batch((6, 3))
    per_sample = loss.__class__(loss.config, reduction="none")
    per_sample.load_state_dict(loss.state_dict())
    values = per_sample(logits, target)
    assert not torch.allclose(values, F.cross_entropy(logits, target, reduction="none"))
    # l_n = sum_c [network(log p, p, y)_c - y_c log p_c]
    log_p = F.log_softmax(logits, dim=1)
    onehot = F.one_hot(target, 3).float()
    features = torch.stack([log_p, log_p.exp(), onehot], dim=-1)
    expected = (loss.network(features, -onehot * log_p)).sum(dim=1)
    torch.testing.assert_close(values, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_result_has_the_logits_dtype(dtype):
    logits, target = batch((8, 5))
    value = trained_like()(logits.to(dtype), target)
    assert value.dtype == dtype and torch.isfinite(value)


def test_checkpoint_round_trip_keeps_the_kind(tmp_path):
    loss = trained_like()
    loss.save_pretrained(tmp_path / "loss")
    loaded = LearnedLoss.from_pretrained(tmp_path / "loss", ignore_index=-1)
    assert loaded.config.kind == "classification" and loaded.ignore_index == -1
    logits, target = batch((8, 5))
    torch.testing.assert_close(loaded(logits, target), loss(logits, target))
    card = (tmp_path / "loss" / "README.md").read_text()
    assert "torch.nn.CrossEntropyLoss" in card and "classification" in card


@pytest.mark.parametrize(
    ("logits", "target", "error", "message"),
    [
        (torch.randn(8, 5), torch.randint(0, 5, (7,)), ValueError, r"must have shape \(8,\)"),
        (torch.randn(8, 5), torch.full((8,), 5), ValueError, r"outside \[0, 4\]"),
        (torch.randn(8, 5), torch.full((8,), -3), ValueError, r"\[-3\] outside"),
        (torch.randn(8, 5), torch.rand(8, 4), ValueError, "must have the input's shape"),
        (torch.randint(0, 3, (8, 5)), torch.zeros(8, dtype=torch.long), TypeError, "logits"),
        (torch.randn(8, 5), torch.zeros(8, dtype=torch.bool), TypeError, "class indices"),
        (torch.tensor(1.0), torch.tensor(0), ValueError, r"\(C\), \(N, C\)"),
        ([[0.0, 1.0]], torch.zeros(1, dtype=torch.long), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_gets_a_clear_error(logits, target, error, message):
    with pytest.raises(error, match=message):
        ce_start()(logits, target)


def test_strict_check_refuses_nan_and_positive_infinity_but_not_masks():
    probs = torch.full((4, 3), float("nan"))
    assert ce_start()(torch.randn(4, 3), probs).isnan()  # by default: NaN, as F.cross_entropy
    strict = ce_start(check_finite=True)
    with pytest.raises(ValueError, match="target holds 12 non-finite"):
        strict(torch.randn(4, 3), probs)
    logits = torch.randn(4, 3)
    logits[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"input holds 1 non-finite value\(s\) \(NaN or \+inf\)"):
        strict(logits, torch.zeros(4, dtype=torch.long))
    logits[0, 1] = float("-inf")  # a mask, not an error
    assert torch.isfinite(strict(logits, torch.zeros(4, dtype=torch.long)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_negative_infinity_masks_classes_as_in_cross_entropy(reduction):
    """A -inf logit masks its class: the cross-entropy start gives F.cross_entropy's values and
    gradients, and a trained loss gives what it gives with the class removed."""
    torch.manual_seed(0)
    logits = 3 * torch.randn(6, 5)
    target = torch.tensor([0, 1, 2, 4, 0, 1])
    masked = logits.clone()
    masked[:, 3] = float("-inf")
    masked[0, 2] = float("-inf")
    start = ce_start(reduction=reduction)
    ours = masked.clone().requires_grad_(True)
    theirs = masked.clone().requires_grad_(True)
    value = start(ours, target)
    expected = F.cross_entropy(theirs, target, reduction=reduction)
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad)
    assert (ours.grad[:, 3] == 0).all()

    trained = trained_like()
    trained.reduction = reduction
    kept = [0, 1, 2, 4]
    rows = [1, 2, 3, 4, 5]  # row 0 has a second masked class
    with_mask = masked[rows].clone().requires_grad_(True)
    without = logits[rows][:, kept].clone().requires_grad_(True)
    value = trained(with_mask, target[rows])
    reference = trained(without, torch.tensor([kept.index(int(t)) for t in target[rows]]))
    torch.testing.assert_close(value, reference)
    value.sum().backward()
    reference.sum().backward()
    torch.testing.assert_close(with_mask.grad[:, kept], without.grad)
    assert torch.isfinite(with_mask.grad).all() and (with_mask.grad[:, 3] == 0).all()


@pytest.mark.parametrize("bundled", [None, "noisy-labels"])
def test_a_masked_target_class_or_extreme_logits_behave_as_in_cross_entropy(bundled):
    trained = trained_like() if bundled is None else LearnedLoss.from_pretrained(bundled)
    logits = torch.randn(3, 4)
    logits[0, 2] = float("-inf")
    target = torch.tensor([2, 0, 1])
    assert trained(logits, target) == F.cross_entropy(logits, target) == float("inf")
    for value in (3e38, -3e38, float("nan"), float("inf")):
        extreme = torch.randn(3, 4)
        extreme[1, 1] = value
        extreme.requires_grad_(True)
        ours = trained(extreme, target)
        reference = extreme.detach().clone().requires_grad_(True)
        theirs = F.cross_entropy(reference, target)
        assert ours.isnan() == theirs.isnan() and ours.isinf() == theirs.isinf(), value
        ours.backward()
        theirs.backward()
        assert torch.equal(extreme.grad.isnan(), reference.grad.isnan()), value


def test_classification_takes_no_side_inputs_and_regression_no_ignore_index():
    with pytest.raises(TypeError, match="no side inputs"):
        ce_start()(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), x=torch.randn(4, 3))
    with pytest.raises(ValueError, match="ignore_index applies to classification"):
        LearnedLoss(LossConfig(), ignore_index=0)
    with pytest.raises(ConfigError, match="side inputs are supported by regression"):
        LossConfig(kind="classification", inputs=("log_prob", "target", "x"))
    with pytest.raises(ConfigError, match=r"\['input'\] are not classification features"):
        LossConfig(kind="classification", inputs=("input", "target"))


def test_default_inputs_follow_the_kind():
    assert LossConfig().inputs == ("input", "target")
    assert LossConfig(kind="classification").inputs == ("log_prob", "target")


# ----------------------------------------------------------------------------- nontarget_nll


def test_nontarget_nll_is_one_for_a_uniform_prediction_at_any_class_count():
    from learnedloss.kinds.classification import nontarget_nll

    for n_classes in (2, 3, 10, 100):
        log_prob = F.log_softmax(torch.zeros(4, n_classes, dtype=torch.float64), dim=-1)
        target = F.one_hot(torch.arange(4) % n_classes, n_classes).to(torch.float64)
        torch.testing.assert_close(nontarget_nll(log_prob, target), torch.ones_like(log_prob))


def test_nontarget_nll_is_the_weighted_mean_over_the_other_classes():
    from learnedloss.kinds.classification import nontarget_nll

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    log_prob = F.log_softmax(logits, dim=-1)
    soft = torch.softmax(torch.randn(6, 5, generator=generator, dtype=torch.float64), dim=-1)
    for target in (F.one_hot(torch.arange(6) % 5, 5).to(torch.float64), soft):
        expected = torch.stack(
            [
                sum((1 - target[n, c]) * -log_prob[n, c] for c in range(5))
                / sum(1 - target[n, c] for c in range(5))
                / torch.log(torch.tensor(5.0, dtype=torch.float64))
                for n in range(6)
            ]
        )
        feature = nontarget_nll(log_prob, target)
        torch.testing.assert_close(feature[:, 0], expected)
        assert bool((feature == feature[:, :1]).all())  # one value per sample
    # as confident, in another class than the label: smaller than predicted right
    wrong = F.log_softmax(torch.tensor([[0.0, 6.0, 0.0]]), dim=-1)
    right = F.log_softmax(torch.tensor([[6.0, 0.0, 0.0]]), dim=-1)
    label = F.one_hot(torch.tensor([0]), 3).float()
    assert 1 < nontarget_nll(wrong, label)[0, 0] < nontarget_nll(right, label)[0, 0]


def _grid_over_nontarget() -> LearnedLoss:
    config = grid_start_config(
        "cross_entropy",
        inputs=("log_prob", "nontarget_nll"),
        knots=(9, 3),
        grid_range=((-8.0, 0.0), (0.0, 4.0)),
        residual_form="scale",
    )
    loss = LearnedLoss(config)
    with torch.no_grad():  # lowers the loss the more the other classes are ruled out
        loss.network.values[1].fill_(-0.3)
        loss.network.values[2].fill_(-0.5)
    return loss


def test_a_loss_over_nontarget_nll_reads_the_other_classes_and_masks_as_cross_entropy():
    loss = _grid_over_nontarget()
    assert not loss.batch_dependent
    labels = torch.tensor([0, 0])
    # the same labelled probability, the other classes differently ruled out
    spread = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05], [0.6, 0.1333, 0.1333, 0.1334]]))
    values = loss.per_element(spread, labels)
    reference = F.cross_entropy(spread, labels, reduction="none")
    torch.testing.assert_close(reference[0], reference[1])
    assert values[0] < values[1] < reference[0]
    masked = torch.tensor([[2.0, float("-inf"), 0.0, 0.0]], requires_grad=True)
    value = loss(masked, torch.tensor([0]))
    torch.testing.assert_close(value, F.cross_entropy(masked.detach(), torch.tensor([0])))
    (grad,) = torch.autograd.grad(value, masked)
    assert bool(torch.isfinite(grad).all())
    LearnedLoss(loss.config)(torch.randn(8, 3), torch.randint(0, 3, (8,))).backward()
