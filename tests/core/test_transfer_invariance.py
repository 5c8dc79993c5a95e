"""Features that carry over between data sets: regression losses free of the targets' scale
and offset, classification losses free of the class count (issue 17)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from learnedloss import LearnedLoss
from learnedloss.kinds.classification import class_margin
from learnedloss.kinds.regression import (
    ROBUST_SCALE_SAMPLE,
    robust_scale,
    scale_free_features,
)
from learnedloss.starts import (
    count_free_cross_entropy_start_config,
    grid_start_config,
    scale_free_mse_start_config,
)


def _perturbed(loss: LearnedLoss, seed: int = 0, size: float = 0.5) -> LearnedLoss:
    """A copy of ``loss`` whose last layer is no longer zero: a loss that is not MSE/CE."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loss.parameters():
            p.add_(size * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return loss


def _regression_loss(**kwargs) -> LearnedLoss:
    torch.manual_seed(0)
    return _perturbed(LearnedLoss(scale_free_mse_start_config(**kwargs)).double())


def test_scale_free_start_is_exactly_mse():
    loss = LearnedLoss(scale_free_mse_start_config()).double()
    x, y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    assert torch.equal(loss(x, y), F.mse_loss(x, y))


@pytest.mark.parametrize("a, b", [(1e-3, 0.0), (7.0, -250.0), (2.0, 3.0), (1e4, 1e5)])
def test_rescaled_targets_rescale_the_loss_by_a_squared(a, b):
    loss = _regression_loss(inputs=("scaled_residual", "standardized_target", "standardized_input"))
    generator = torch.Generator().manual_seed(1)
    y = torch.randn(64, generator=generator, dtype=torch.float64)
    y[:10] += 20 * torch.randn(10, generator=generator, dtype=torch.float64)  # outliers
    x = y + 0.3 * torch.randn(64, generator=generator, dtype=torch.float64)
    base = loss(x, y)
    assert base.item() != pytest.approx(F.mse_loss(x, y).item(), rel=1e-3)  # not MSE
    moved = loss(a * x + b, a * y + b)
    assert moved.item() == pytest.approx(a * a * base.item(), rel=1e-9)
    per_element = LearnedLoss(loss.config, reduction="none").double()
    per_element.load_state_dict(loss.state_dict())
    torch.testing.assert_close(per_element(a * x + b, a * y + b), a * a * per_element(x, y))


def test_rescaled_targets_rescale_the_gradient_by_a():
    loss = _regression_loss()
    y = torch.randn(32, dtype=torch.float64)
    x = y + torch.randn(32, dtype=torch.float64)
    a, b = 5.0, -3.0
    g = torch.autograd.grad(loss(x.requires_grad_(), y), x)[0]
    moved = (a * x.detach() + b).requires_grad_()
    g_moved = torch.autograd.grad(loss(moved, a * y + b), moved)[0]
    torch.testing.assert_close(g_moved, a * g)


def test_robust_scale_of_a_large_call_reads_an_evenly_spaced_sample():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100_000, generator=generator, dtype=torch.float64)
    stride = math.ceil(x.numel() / ROBUST_SCALE_SAMPLE)
    assert robust_scale(x).item() == x[::stride].abs().median().item()
    assert robust_scale(x).item() == pytest.approx(x.abs().median().item(), rel=0.03)
    assert robust_scale(-4 * x).item() == pytest.approx(4 * robust_scale(x).item(), rel=1e-12)
    small = x[:ROBUST_SCALE_SAMPLE]  # every element, up to the sample size
    assert robust_scale(small).item() == small.abs().median().item()


@pytest.mark.parametrize("frozen", [False, True])  # the fast path, and the general one
def test_scale_free_grid_loss_rescales_by_a_squared(frozen):
    config = grid_start_config("mse", inputs=("scaled_residual",), residual_form="scale")
    torch.manual_seed(0)
    loss = _perturbed(LearnedLoss(config).double(), size=0.3)
    if frozen:
        loss.freeze()
    generator = torch.Generator().manual_seed(2)
    y = torch.randn(50, 20, generator=generator, dtype=torch.float64)
    x = y + torch.randn(50, 20, generator=generator, dtype=torch.float64)
    x[:5] += 30.0  # outliers
    base = loss(x, y)
    assert base.item() != pytest.approx(F.mse_loss(x, y).item(), rel=1e-3)
    for a, b in [(1e-3, 5.0), (250.0, -1e3)]:
        assert loss(a * x + b, a * y + b).item() == pytest.approx(a * a * base.item(), rel=1e-9)


def test_bundled_robust_regression_is_the_same_loss_in_any_units():
    loss = LearnedLoss.from_pretrained("robust-regression")
    assert loss.config.inputs == ("scaled_residual", "contamination")
    assert loss.config.parameterization == "monotone"
    assert loss.batch_dependent
    generator = torch.Generator().manual_seed(3)
    y = torch.randn(256, generator=generator, dtype=torch.float64)
    x = y + 0.5 * torch.randn(256, generator=generator, dtype=torch.float64)
    y[:50] = 10 * torch.rand(50, generator=generator, dtype=torch.float64) - 5  # corrupted
    base = loss(x, y)
    (gradient,) = torch.autograd.grad(loss(x.requires_grad_(), y), x)
    for a, b in [(1e-3, 7.0), (50.0, -300.0)]:
        moved = (a * x.detach() + b).requires_grad_()
        value = loss(moved, a * y + b)
        assert value.item() == pytest.approx(a * a * base.item(), rel=1e-6)
        (moved_gradient,) = torch.autograd.grad(value, moved)
        torch.testing.assert_close(moved_gradient, a * gradient, rtol=1e-6, atol=1e-12)
    # the corrupted targets pull less than they would under MSE
    per_element = LearnedLoss.from_pretrained("robust-regression", reduction="none")(x, y)
    ratio = per_element / (x.detach() - y) ** 2
    assert ratio[:50][(x.detach() - y)[:50].abs() > 5].mean() < 0.25 * ratio[50:].mean()


def test_scale_free_features_are_invariant_and_finite():
    y = torch.randn(50, dtype=torch.float64)
    x = y + torch.randn(50, dtype=torch.float64)
    base = scale_free_features(x, y)
    moved = scale_free_features(3 * x + 10, 3 * y + 10)
    for name in base:
        torch.testing.assert_close(moved[name], base[name])
    assert robust_scale(3 * (x - y)).item() == pytest.approx(3 * robust_scale(x - y).item())
    exact = scale_free_features(y, y)  # a perfect fit, constant targets, one element
    assert all(torch.isfinite(v).all() for v in exact.values())
    assert torch.equal(exact["scaled_residual"], torch.zeros_like(y))
    one = scale_free_features(torch.tensor(2.0), torch.tensor(1.0))
    assert all(torch.isfinite(v) for v in one.values())
    constant = scale_free_features(torch.ones(5), torch.ones(5))
    assert all(torch.isfinite(v).all() for v in constant.values())
    flat_targets = scale_free_features(torch.randn(5), torch.ones(5))  # t falls back to 1e-3 s
    assert all(v.abs().max() < 1e4 for v in flat_targets.values())


def test_scale_free_loss_runs_under_vmap_and_grad():
    loss = _regression_loss().float()
    params = {k: v.detach() for k, v in loss.named_parameters()}
    x, y = torch.randn(4, 30), torch.randn(4, 30)

    def value(prediction, target):
        return torch.func.functional_call(loss, params, (prediction, target))

    batched = vmap(value)(x, y)
    looped = torch.stack([value(x[i], y[i]) for i in range(4)])
    torch.testing.assert_close(batched, looped)
    assert torch.isfinite(vmap(grad(value))(x, y)).all()


# -- classification: the same loss for any number of classes ------------------------------


def _logits_with(p_target: float, p_rival: float, n_classes: int) -> torch.Tensor:
    """Logits of one sample (target class 0) with these target and rival probabilities and
    the rest spread evenly over the other classes."""
    rest = (1.0 - p_target - p_rival) / (n_classes - 2)
    probs = torch.tensor([p_target, p_rival] + [rest] * (n_classes - 2), dtype=torch.float64)
    return probs.log().unsqueeze(0)


@pytest.mark.parametrize("seed", [0, 1])
def test_count_free_loss_is_the_same_for_any_class_count(seed):
    torch.manual_seed(seed)
    loss = _perturbed(LearnedLoss(count_free_cross_entropy_start_config()).double(), seed)
    target = torch.zeros(1, dtype=torch.long)
    values = [loss(_logits_with(0.5, 0.3, c), target).item() for c in (3, 5, 10, 100)]
    assert values[0] != pytest.approx(-math.log(0.5), rel=1e-3)  # not cross-entropy
    assert values == pytest.approx([values[0]] * len(values), rel=1e-12)
    two = loss(torch.tensor([[0.0, -1.0]], dtype=torch.float64), target).item()
    many = torch.full((1, 100), -1e9, dtype=torch.float64)
    many[0, :2] = torch.tensor([0.0, -1.0])
    assert loss(many, target).item() == pytest.approx(two, rel=1e-9)


def test_the_old_sum_over_classes_grows_with_the_class_count():
    """The control: the "add" start scores every class, so its loss drifts with C."""
    from learnedloss.starts import cross_entropy_start_config

    torch.manual_seed(0)
    loss = _perturbed(LearnedLoss(cross_entropy_start_config((8,))).double())
    target = torch.zeros(1, dtype=torch.long)
    values = [loss(_logits_with(0.5, 0.3, c), target).item() for c in (3, 100)]
    assert values[0] != pytest.approx(values[1], rel=1e-2)


@pytest.mark.parametrize("n_classes", [2, 10, 100])
def test_count_free_start_is_exactly_cross_entropy(n_classes):
    loss = LearnedLoss(count_free_cross_entropy_start_config())
    logits = torch.randn(16, n_classes)
    labels = torch.randint(0, n_classes, (16,))
    torch.testing.assert_close(loss(logits, labels), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(16, n_classes), dim=-1)
    torch.testing.assert_close(loss(logits, soft), F.cross_entropy(logits, soft))


def test_class_margin():
    log_prob = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 0.0]]).log_softmax(-1)
    expected = torch.tensor([[-3.0, -2.0, 2.0], [0.0, 0.0, -2.0]])
    torch.testing.assert_close(class_margin(log_prob), expected)
    assert torch.equal(class_margin(torch.zeros(4, 1)), torch.zeros(4, 1))
    uniform = torch.full((3, 50), -math.log(50))
    assert torch.equal(class_margin(uniform), torch.zeros(3, 50))


# -- classification: relative to the batch's typical cross-entropy ---------------------------


def _relative_loss(**kwargs) -> LearnedLoss:
    """A perturbed count-free grid loss over ``log_relative_ce``: not cross-entropy."""
    from dataclasses import replace

    config = replace(
        count_free_cross_entropy_start_config(inputs=("log_relative_ce",)),
        parameterization="grid",
        grid_knots=(9,),
        grid_range=((-4.0, 4.0),),
    )
    loss = LearnedLoss(config, **kwargs).double()
    with torch.no_grad():
        loss.network.values.copy_(torch.linspace(0.3, -0.9, 9, dtype=torch.float64)[None])
    return loss


def _batch_with(p_targets: list[float], n_classes: int) -> torch.Tensor:
    """One sample per labelled-class probability (target class 0), the rest of the
    probability spread evenly over the other classes."""
    rows = []
    for p in p_targets:
        rest = (1.0 - p) / (n_classes - 1)
        rows.append(torch.tensor([p] + [rest] * (n_classes - 1), dtype=torch.float64).log())
    return torch.stack(rows)


def test_relative_loss_is_the_same_per_sample_for_any_class_count():
    loss = _relative_loss(reduction="none")
    p = [0.9, 0.7, 0.5, 0.3, 0.05, 0.01]
    target = torch.zeros(len(p), dtype=torch.long)
    values = [loss(_batch_with(p, c), target) for c in (2, 3, 10, 100)]
    reference = F.cross_entropy(_batch_with(p, 3), target, reduction="none")
    assert not torch.allclose(values[0], reference, rtol=1e-3)  # not cross-entropy
    for other in values[1:]:
        torch.testing.assert_close(other, values[0], rtol=1e-12, atol=1e-12)


def test_relative_feature_is_log_cross_entropy_over_the_batch_median():
    from learnedloss.kinds.classification import log_relative_cross_entropy

    logits = torch.randn(7, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    ce = F.cross_entropy(logits, labels, reduction="none")
    log_prob = logits.log_softmax(-1)
    one_hot = F.one_hot(labels, 4).double()
    feature = log_relative_cross_entropy(log_prob, one_hot, labels >= 0)
    expected = (ce / ce.median()).log()
    torch.testing.assert_close(feature, expected[:, None].expand(7, 4))
    # ignored samples do not move the median; a certain prediction stays finite
    valid = torch.tensor([True] * 5 + [False] * 2)
    feature = log_relative_cross_entropy(log_prob, one_hot, valid)
    torch.testing.assert_close(feature[:, 0], (ce / ce[:5].median()).log())
    certain = torch.tensor([[0.0, -1e4, -1e4], [0.0, 0.0, 0.0]], dtype=torch.float64)
    feature = log_relative_cross_entropy(certain.log_softmax(-1), torch.eye(3)[:2].double(), None)
    assert torch.isfinite(feature).all()


def test_relative_loss_depends_on_the_batch_and_skips_ignored_and_non_finite_samples():
    loss = _relative_loss(reduction="none")
    assert loss.batch_dependent
    generator = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(9, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (9,), generator=generator)
    base = loss(logits, labels)
    moved = logits.clone()
    moved[1:] = 2 * torch.randn(8, 5, generator=generator, dtype=torch.float64)
    assert loss(moved, labels)[0].item() != pytest.approx(base[0].item(), rel=1e-6)
    ignored = labels.clone()
    ignored[-1] = -100
    changed = logits.clone()
    changed[-1] = 50 * torch.randn(5, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(loss(changed, ignored)[:-1], loss(logits, ignored)[:-1])
    nan = logits.clone()
    nan[-1, 0] = float("nan")
    out = loss(nan, labels)
    assert out[-1].isnan() and torch.isfinite(out[:-1]).all()


def test_relative_loss_runs_under_vmap_grad_and_compile():
    loss = _relative_loss()
    x = torch.randn(3, 16, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (3, 16))
    batched = vmap(loss)(x, y)
    torch.testing.assert_close(
        batched, torch.stack([loss(a, b) for a, b in zip(x, y, strict=True)])
    )
    assert torch.isfinite(vmap(grad(loss))(x, y)).all()
    compiled = torch.compile(loss, backend="eager")
    torch.testing.assert_close(compiled(x[0], y[0]), loss(x[0], y[0]))


def test_bundled_noisy_labels_is_the_same_loss_for_any_class_count():
    """The bundled classification drop-in reads the labelled class's log-probability alone:
    samples with the same p_y cost the same at 2, 10 or 100 classes (and with soft targets
    that are one-hot), and it is not cross-entropy."""
    loss = LearnedLoss.from_pretrained("noisy-labels", reduction="none").double()
    p = [0.95, 0.6, 0.3, 0.05, 1e-3, 1e-5]
    target = torch.zeros(len(p), dtype=torch.long)
    values = {c: loss(_batch_with(p, c), target) for c in (2, 10, 100)}
    for c in (10, 100):
        torch.testing.assert_close(values[c], values[2], rtol=1e-9, atol=1e-12)
    one_hot = F.one_hot(target, 10).double()
    torch.testing.assert_close(loss(_batch_with(p, 10), one_hot), values[10])
    cross_entropy = -torch.tensor(p, dtype=torch.float64).log()
    assert (values[2] < cross_entropy).all()  # bounded pull of unlikely labels
    assert values[2][-1] < 0.2 * cross_entropy[-1]
