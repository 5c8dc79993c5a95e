"""The baselines learned losses are measured against: formulas, limits, tuning, joint training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import quad
from torch import nn

from learnedloss.evaluation import JointInnerLoop, Tuned
from learnedloss.evaluation.baselines import (
    AdaptiveRobustLoss,
    cauchy,
    general_robust_loss,
    generalized_cross_entropy,
    huber,
    label_smoothing,
    nce_rce,
    noisy_label_baselines,
    noisy_label_defaults,
    robust_log_partition,
    robust_regression_baselines,
    robust_regression_defaults,
    scaled_mse,
    symmetric_cross_entropy,
)
from learnedloss.evaluation.protocol import evaluate, held_out_draw, inner_loop_for, train_curves
from learnedloss.families.sine import SineTasks

SMALL = dict(steps=10, n_tasks=4, n_inits=1)
F64 = torch.float64


def tasks(**kwargs):
    return SineTasks(n_train=20, n_query=20, hidden=(8,), **kwargs)


def direct_log_partition(alpha: float) -> float:
    """log ∫ exp(-ρ(x, α, 1)) dx by adaptive quadrature on the real line (scipy's QUADPACK)."""

    def density(x: float) -> float:
        rho = general_robust_loss(torch.tensor(x, dtype=F64), torch.tensor(alpha, dtype=F64))
        return math.exp(-float(rho))

    return math.log(2 * quad(density, 0, math.inf, limit=500, epsabs=0, epsrel=1e-12)[0])


# -- Barron's general and adaptive robust loss --------------------------------------------


def test_log_partition_closed_forms():
    """α = 2 is the Gaussian (√(2π)), α = 0 the Cauchy-like 1/(1 + x²/2) (π√2), α = 1
    e·∫exp(-√(x²+1)) dx = 2e·K₁(1), K₁(1) = 0.6019072301972346 (Abramowitz & Stegun 9.8)."""
    values = robust_log_partition(torch.tensor([2.0, 0.0, 1.0], dtype=F64))
    expected = [0.5 * math.log(2 * math.pi), math.log(math.pi * math.sqrt(2)), 0.0]
    expected[2] = math.log(2 * math.e * 0.6019072301972346)
    torch.testing.assert_close(values, torch.tensor(expected, dtype=F64), rtol=0, atol=1e-12)
    assert direct_log_partition(1.0) == pytest.approx(expected[2], abs=1e-10)


@pytest.mark.parametrize("alpha", [0.0013, 0.3217, 0.77, 1.2345, 1.9, 2.6])
def test_log_partition_matches_direct_quadrature_between_table_nodes(alpha):
    interpolated = float(robust_log_partition(torch.tensor(alpha, dtype=F64)))
    assert interpolated == pytest.approx(direct_log_partition(alpha), abs=1e-7)


def test_log_partition_is_differentiable_in_alpha():
    alpha = torch.tensor([0.001, 0.5, 1.0, 1.999, 2.0, 2.9], requires_grad=True)
    robust_log_partition(alpha).sum().backward()
    assert torch.isfinite(alpha.grad).all()
    # the slope agrees with a finite difference of the direct quadrature
    h = 1e-4
    slope = (direct_log_partition(0.7 + h) - direct_log_partition(0.7 - h)) / (2 * h)
    at = torch.tensor(0.7, dtype=F64, requires_grad=True)
    robust_log_partition(at).backward()
    assert float(at.grad) == pytest.approx(slope, abs=1e-6)


def test_general_robust_loss_special_cases_and_limits():
    x = torch.linspace(-5, 5, 41, dtype=F64)
    rho = lambda a, c=1.0: general_robust_loss(x, torch.tensor(a, dtype=F64), c)  # noqa: E731
    torch.testing.assert_close(rho(2.0), 0.5 * x**2)
    torch.testing.assert_close(rho(0.0), torch.log(0.5 * x**2 + 1))
    torch.testing.assert_close(rho(1.0), torch.sqrt(x**2 + 1) - 1)
    torch.testing.assert_close(rho(-2.0), 2 * x**2 / (x**2 + 4))  # Geman-McClure
    torch.testing.assert_close(rho(2.0, 0.5), 0.5 * (x / 0.5) ** 2)
    # the general formula approaches its limits continuously
    torch.testing.assert_close(rho(1e-5), rho(0.0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rho(2 - 1e-5), rho(2.0), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(rho(2 + 1e-5), rho(2.0), rtol=1e-3, atol=1e-4)


def test_gradients_in_alpha_and_scale_are_finite_across_the_range():
    x = torch.randn(64) * 3
    for alpha_init in (0.0011, 0.5, 1.0, 1.5, 1.9989):
        loss = AdaptiveRobustLoss(alpha_init=alpha_init)
        loss(x, torch.zeros_like(x)).backward()
        assert torch.isfinite(loss.alpha_logit.grad) and torch.isfinite(loss.scale_raw.grad)
    for alpha in (0.0, 2.0):  # the exact limits, in float32
        a = torch.tensor(alpha, requires_grad=True)
        (general_robust_loss(x, a, 0.7) + robust_log_partition(a)).sum().backward()
        assert torch.isfinite(a.grad)


def test_nll_at_alpha_2_is_the_gaussian_nll_and_normalizes_everywhere():
    x = torch.linspace(-4, 4, 17, dtype=F64)
    two, c = torch.tensor(2.0, dtype=F64), torch.tensor(0.6, dtype=F64)
    nll = general_robust_loss(x, two, c) + torch.log(c) + robust_log_partition(two)
    torch.testing.assert_close(nll, -torch.distributions.Normal(0.0, c).log_prob(x))
    for alpha, scale in ((0.3, 0.5), (1.4, 2.0)):
        a = torch.tensor(alpha, dtype=F64)
        log_norm = float(torch.log(torch.tensor(scale, dtype=F64)) + robust_log_partition(a))

        def density(v: float, a=a, scale=scale, log_norm=log_norm) -> float:
            rho = general_robust_loss(torch.tensor(v, dtype=F64), a, scale)
            return math.exp(-float(rho) - log_norm)

        assert 2 * quad(density, 0, math.inf, limit=500)[0] == pytest.approx(1.0, abs=1e-6)


def test_the_nll_is_minimized_by_the_data_scale():
    """On Gaussian data of standard deviation σ, the NLL near α = 2 is smallest at c ≈ σ."""
    torch.manual_seed(0)
    sigma = 0.4
    residuals = sigma * torch.randn(20_000)
    zeros = torch.zeros_like(residuals)
    scales = torch.linspace(0.2, 0.8, 61).tolist()
    nlls = []
    with torch.no_grad():
        for c in scales:
            loss = AdaptiveRobustLoss(alpha_init=1.9985, alpha_range=(1.998, 1.999), scale_init=c)
            nlls.append(float(loss(residuals, zeros)))
    assert scales[min(range(len(scales)), key=nlls.__getitem__)] == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize(
    ("data", "alpha_bound", "scale"),
    [("gaussian", (1.7, 2.0), 0.4), ("cauchy", (0.0, 0.2), 0.4 / math.sqrt(2))],
)
def test_alpha_and_scale_adapt_to_the_data(data, alpha_bound, scale):
    """Trained from α = 1, c = 1 on residuals: Gaussian (σ = 0.4) pushes α towards 2 and c
    towards σ; Cauchy (γ = 0.4) pushes α towards 0, where the density is a Cauchy of
    γ = c√2."""
    torch.manual_seed(0)
    if data == "gaussian":
        residuals = 0.4 * torch.randn(3000)
    else:
        residuals = 0.4 * torch.distributions.Cauchy(0.0, 1.0).sample((3000,))
    loss = AdaptiveRobustLoss()
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.15)
    for _ in range(150):
        optimizer.zero_grad()
        loss(residuals, torch.zeros_like(residuals)).backward()
        optimizer.step()
    assert alpha_bound[0] < float(loss.alpha.detach()) < alpha_bound[1]
    assert float(loss.scale.detach()) == pytest.approx(scale, rel=0.2)


def test_adaptive_loss_reduction_shape_and_errors():
    prediction, target = torch.randn(5, 3), torch.randn(5, 3)
    per_element = AdaptiveRobustLoss(reduction="none")(prediction, target)
    assert per_element.shape == (5, 3)
    torch.testing.assert_close(AdaptiveRobustLoss()(prediction, target), per_element.mean())
    torch.testing.assert_close(
        AdaptiveRobustLoss(reduction="sum")(prediction, target), per_element.sum()
    )
    with pytest.raises(ValueError, match="same shape"):
        AdaptiveRobustLoss()(prediction, target[:, :1])
    with pytest.raises(ValueError, match="alpha_init"):
        AdaptiveRobustLoss(alpha_init=2.5)
    with pytest.raises(ValueError, match="reduction"):
        AdaptiveRobustLoss(reduction="max")
    loss = AdaptiveRobustLoss(alpha_init=0.5, scale_init=0.3)
    with torch.no_grad():
        assert float(loss.alpha) == pytest.approx(0.5)
        assert float(loss.scale) == pytest.approx(0.3)


# -- noisy-label classification baselines ---------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]], dtype=F64)
TARGET = torch.tensor([0, 2, 0])


def probabilities() -> list[list[float]]:
    rows = []
    for row in LOGITS.tolist():
        exps = [math.exp(v) for v in row]
        rows.append([e / sum(exps) for e in exps])
    return rows


def test_symmetric_cross_entropy_by_hand():
    """α·(-log p_y) + β·(-Σ_k p_k log q_k), with log q_k = -4 off the label and 0 on it."""
    alpha, beta = 0.3, 1.2
    total = 0.0
    for p, y in zip(probabilities(), TARGET.tolist(), strict=True):
        rce = -sum(p[k] * (0.0 if k == y else -4.0) for k in range(3))
        total += alpha * -math.log(p[y]) + beta * rce
    value = symmetric_cross_entropy(alpha, beta)(LOGITS, TARGET)
    assert float(value) == pytest.approx(total / 3, rel=1e-12)
    default = symmetric_cross_entropy()(LOGITS, TARGET)  # the paper's α = 0.1, β = 1, A = -4
    p_y = torch.tensor(
        [p[y] for p, y in zip(probabilities(), TARGET.tolist(), strict=True)], dtype=F64
    )
    expected = 0.1 * F.cross_entropy(LOGITS, TARGET) + 4 * (1 - p_y).mean()
    assert float(default) == pytest.approx(float(expected), rel=1e-12)


def test_nce_rce_by_hand_and_its_limits():
    alpha, beta = 2.0, 0.5
    total = 0.0
    for p, y in zip(probabilities(), TARGET.tolist(), strict=True):
        nce = math.log(p[y]) / sum(math.log(v) for v in p)
        total += alpha * nce + beta * 4 * (1 - p[y])
    assert float(nce_rce(alpha, beta)(LOGITS, TARGET)) == pytest.approx(total / 3, rel=1e-12)
    nce_only = nce_rce(1.0, 0.0)
    # a perfect one-hot prediction: NCE 0; a uniform one: 1 / C; always within [0, 1]
    assert float(nce_only(torch.tensor([[60.0, 0.0, 0.0]], dtype=F64), TARGET[:1])) < 1e-20
    assert float(nce_only(torch.zeros(2, 4), torch.tensor([1, 3]))) == pytest.approx(0.25)
    values = [float(nce_only(torch.randn(1, 5), torch.tensor([2]))) for _ in range(20)]
    assert all(0.0 <= v <= 1.0 for v in values)
    # a class masked with -inf is left out, as if it did not exist
    masked = torch.tensor([[1.0, -math.inf, 0.5, 2.0]])
    unmasked = torch.tensor([[1.0, 0.5, 2.0]])
    assert float(nce_rce()(masked, torch.tensor([2]))) == pytest.approx(
        float(nce_rce()(unmasked, torch.tensor([1]))), rel=1e-6
    )


def test_generalized_cross_entropy_by_hand_and_limits():
    p_y = torch.tensor(
        [p[y] for p, y in zip(probabilities(), TARGET.tolist(), strict=True)], dtype=F64
    )
    gce = generalized_cross_entropy(0.7)(LOGITS, TARGET)
    assert float(gce) == pytest.approx(float(((1 - p_y**0.7) / 0.7).mean()), rel=1e-12)
    assert float(generalized_cross_entropy(1.0)(LOGITS, TARGET)) == pytest.approx(
        float((1 - p_y).mean()), rel=1e-12
    )  # MAE up to a factor
    assert float(generalized_cross_entropy(1e-6)(LOGITS, TARGET)) == pytest.approx(
        float(F.cross_entropy(LOGITS, TARGET)), rel=1e-5
    )  # cross-entropy as q -> 0


def test_label_smoothing_by_hand():
    epsilon = 0.2
    total = 0.0
    for p, y in zip(probabilities(), TARGET.tolist(), strict=True):
        smoothed = [(1 - epsilon) * (k == y) + epsilon / 3 for k in range(3)]
        total += -sum(s * math.log(v) for s, v in zip(smoothed, p, strict=True))
    value = label_smoothing(epsilon)(LOGITS, TARGET)
    assert float(value) == pytest.approx(total / 3, rel=1e-12)
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothing(1.0)


def test_classification_baselines_run_under_vmap():
    """evaluate() calls losses under torch.func.vmap over tasks: no data-dependent code."""
    logits, target = torch.randn(3, 6, 4), torch.randint(0, 4, (3, 6))
    for name, loss in noisy_label_baselines().items():
        for variant in loss.variants.values() if isinstance(loss, Tuned) else [loss]:
            batched = torch.func.vmap(variant)(logits, target)
            looped = torch.stack([variant(a, b) for a, b in zip(logits, target, strict=True)])
            torch.testing.assert_close(batched, looped, msg=name)


# -- tuning a baseline's variant with the lr -------------------------------------------------


def no_training(prediction, target):
    """A loss with zero gradient: its models never move, so it is the worst variant."""
    return 0.0 * F.mse_loss(prediction, target)


def test_tuned_picks_the_variant_that_is_best_on_the_tuning_tasks():
    grid = [1e-2, 5e-2]
    tuned = Tuned("toy", {"frozen": no_training, "MSE": nn.MSELoss(), "again": nn.MSELoss()})
    result = evaluate({"tuned": tuned}, tasks(), lrs=grid, tune_tasks=3, **SMALL)
    score = result.scores["tuned"]
    assert score.variant == "MSE"  # "again" ties with it and comes later
    assert set(score.variants) == {"frozen", "MSE", "again"}
    assert all(sorted(lrs) == grid for lrs in score.variants.values())
    best = min(
        ((v, lr) for v in score.variants for lr in grid), key=lambda p: score.variants[p[0]][p[1]]
    )
    assert best == (score.variant, score.lr)
    assert score.tuning == score.variants["MSE"]
    # scored exactly like the chosen variant given alone at the chosen lr
    alone = evaluate({"MSE": nn.MSELoss()}, tasks(), lr=score.lr, **SMALL).scores["MSE"]
    assert torch.equal(alone.finals, score.finals)
    assert "tuned [MSE]" in result.table()
    assert result.to_dict()["losses"]["tuned"]["variant"] == "MSE"


def test_tuned_at_a_fixed_lr_still_tunes_the_variant():
    tuned = Tuned("toy", {"frozen": no_training, "MSE": nn.MSELoss()})
    result = evaluate({"tuned": tuned, "plain": nn.MSELoss()}, tasks(), lr=0.05, **SMALL)
    assert result.scores["tuned"].variant == "MSE" and result.scores["tuned"].lr == 0.05
    assert result.scores["plain"].variant is None and result.scores["plain"].tuning == {}
    assert "variant" not in result.to_dict()["losses"]["plain"]
    assert result.protocol["tune_tasks"] == 32


def test_a_tuned_grid_is_not_a_loss_to_train_with():
    family = tasks()
    template, batch, params = held_out_draw(family, 2, 1, 0)
    tuned = Tuned("Huber", {"d=1": huber(1.0)})
    with pytest.raises(TypeError, match="variants"):
        train_curves(tuned, family, template, batch, params, 0.01, 2)
    with pytest.raises(ValueError, match="at least one"):
        Tuned("empty", {})


# -- the adaptive loss trains with each model -------------------------------------------------


def test_adaptive_loss_parameters_train_jointly_with_each_model():
    family = tasks(outlier_fraction=0.2)
    template, batch, params = held_out_draw(family, 3, 1, 0)
    loss = AdaptiveRobustLoss()
    before = {k: v.detach().clone() for k, v in loss.named_parameters()}
    inner, start = inner_loop_for(loss, family, template, 0.05)
    assert isinstance(inner, JointInnerLoop)
    joint = inner.joint(params, start)
    trained, _ = inner.steps(joint, inner.init_state(joint), {}, batch.x_train, batch.y_train, 20)
    models, own = inner.split(trained)
    assert set(models) == set(params) and set(own) == {"alpha_logit", "scale_raw"}
    for name, value in own.items():
        assert value.shape == (3,)
        assert torch.isfinite(value).all()
        assert (value - start[name]).abs().min() > 1e-4, name  # moved, in every task
        assert value.unique().numel() == 3, name  # each task's own
    for name, value in models.items():
        assert not torch.equal(value, params[name])
    # the same training through the Python loop path
    looped = JointInnerLoop(loss, template, inner.objective, inner.optimizer, path="loop")
    again, _ = looped.steps(joint, looped.init_state(joint), {}, batch.x_train, batch.y_train, 20)
    for name, value in trained.items():
        torch.testing.assert_close(again[name], value, rtol=1e-4, atol=1e-5)
    # the user's loss module is untouched
    for name, value in loss.named_parameters():
        assert torch.equal(value.detach(), before[name])


def test_adaptive_loss_in_evaluate_is_finite_and_not_a_fixed_loss():
    family = tasks(outlier_fraction=0.2)
    loss = AdaptiveRobustLoss()
    before = {k: v.detach().clone() for k, v in loss.named_parameters()}
    result = evaluate({"adaptive": loss}, family, lr=0.05, **SMALL)
    score = result.scores["adaptive"]
    assert math.isfinite(score.score) and score.diverged == 0
    for name, value in loss.named_parameters():
        assert torch.equal(value.detach(), before[name])

    class Frozen(AdaptiveRobustLoss):  # the same loss with α and c held at their start
        trained_with_model = False

    frozen = evaluate({"frozen": Frozen()}, family, lr=0.05, **SMALL).scores["frozen"]
    assert not torch.equal(frozen.finals, score.finals)


def test_meta_gradient_reaches_the_adaptive_loss_start():
    family = tasks()
    template, batch, params = held_out_draw(family, 2, 1, 0)
    loss = AdaptiveRobustLoss()
    inner, _ = inner_loop_for(loss, family, template, 0.05)
    start = {k: v.detach().clone().requires_grad_(True) for k, v in loss.named_parameters()}
    inner.run(params, start, batch, 3).mean().backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in start.values())


# -- the ready-made sets ---------------------------------------------------------------------


def test_ready_made_baseline_sets():
    robust = robust_regression_baselines()
    assert list(robust) == [
        "MSE",
        "L1",
        "Huber (tuned d)",
        "Cauchy (tuned c)",
        "Adaptive robust",
        "1.5 x Huber (tuned d)",
    ]
    assert list(robust["Huber (tuned d)"].variants) == [
        "d=0.1",
        "d=0.25",
        "d=0.5",
        "d=1",
        "d=2",
        "d=4",
    ]
    x, y = torch.randn(7), torch.randn(7)
    control = robust["1.5 x Huber (tuned d)"].variants["d=0.5"]
    torch.testing.assert_close(control(x, y), 1.5 * F.huber_loss(x, y, delta=0.5))
    noisy = noisy_label_baselines()
    assert list(noisy) == [
        "CE",
        "Label smoothing (tuned eps)",
        "GCE (tuned q)",
        "SCE (tuned a)",
        "NCE+RCE (tuned a)",
        "1.5 x CE",
    ]
    assert all(len(noisy[name].variants) >= 3 for name in list(noisy)[1:5])


def test_robust_baselines_run_through_evaluate():
    losses = robust_regression_baselines(deltas=(0.5, 2.0))
    result = evaluate(losses, tasks(outlier_fraction=0.2), lrs=[1e-2, 5e-2], tune_tasks=2, **SMALL)
    assert all(math.isfinite(s.score) for s in result.scores.values())
    assert result.scores["Huber (tuned d)"].variant in ("d=0.5", "d=2")
    assert result.scores["MSE"].variant is None
    assert scaled_mse(1.0)(torch.ones(2), torch.zeros(2)) == 1.0


# -- Cauchy and the published defaults (issue 27) ------------------------------------------


def test_cauchy_at_known_points():
    """c²/2 · log(1 + (r/c)²) by hand: r = 1, c = 1 gives log(2)/2; r = 2, c = 1 gives
    log(5)/2; r = 3, c = 2 gives 2·log(13/4); its slope r / (1 + (r/c)²) is 1/2 at r = c = 1."""
    r = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    zero = torch.zeros(2, dtype=F64)
    value = cauchy(1.0)(r, zero)
    expected = (math.log(2) / 2 + math.log(5) / 2) / 2
    assert float(value.detach()) == pytest.approx(expected, abs=1e-14)
    value.backward()
    torch.testing.assert_close(r.grad, torch.tensor([0.5, 2 / 5], dtype=F64) / 2)
    three = cauchy(2.0)(torch.tensor([3.0], dtype=F64), torch.zeros(1, dtype=F64))
    assert float(three) == pytest.approx(2 * math.log(13 / 4), abs=1e-14)
    with pytest.raises(ValueError, match="c must be positive"):
        cauchy(0.0)


def test_cauchy_is_half_squared_near_zero_and_barron_at_alpha_zero():
    x = torch.linspace(-6, 6, 49, dtype=F64)
    for c in (0.5, 1.0, 3.0):
        per_element = [float(cauchy(c)(v.view(1), torch.zeros(1, dtype=F64))) for v in x]
        barron = c * c / 2 * general_robust_loss(x, torch.tensor(0.0, dtype=F64), c / 2**0.5)
        torch.testing.assert_close(torch.tensor(per_element, dtype=F64), barron)
    small = torch.tensor([1e-3], dtype=F64)
    assert float(cauchy(1.0)(small, torch.zeros(1, dtype=F64))) == pytest.approx(0.5e-6, rel=1e-5)


def test_robust_regression_defaults_at_known_points():
    defaults = robust_regression_defaults()
    assert list(defaults) == [
        "MSE",
        "L1",
        "Huber d=1",
        "SmoothL1 b=1",
        "Cauchy c=1",
        "Adaptive robust (published)",
    ]
    r = torch.tensor([0.5, -3.0], dtype=F64)
    zero = torch.zeros(2, dtype=F64)
    by_hand = {
        "MSE": (0.25 + 9.0) / 2,
        "L1": (0.5 + 3.0) / 2,
        "Huber d=1": (0.125 + 2.5) / 2,  # ½r² inside δ = 1, |r| - ½ beyond
        "SmoothL1 b=1": (0.125 + 2.5) / 2,  # the same function at β = 1
        "Cauchy c=1": (0.5 * math.log(1.25) + 0.5 * math.log(10.0)) / 2,
    }
    for name, expected in by_hand.items():
        assert float(defaults[name](r, zero)) == pytest.approx(expected, abs=1e-14), name
    barron = defaults["Adaptive robust (published)"]
    assert float(barron.alpha.detach()) == pytest.approx(1.0, abs=1e-6)
    assert float(barron.scale.detach()) == pytest.approx(1.0, abs=1e-6)
    assert barron.alpha_range == (0.001, 1.999) and barron.scale_min == 1e-5
    # α = 1, c = 1: pseudo-Huber √(r² + 1) - 1, plus log c = 0, plus log Z(1) = log(2e·K₁(1))
    log_z = math.log(2 * math.e * 0.6019072301972346)
    expected = sum(math.sqrt(v * v + 1) - 1 for v in (0.5, 3.0)) / 2 + log_z
    assert float(barron.double()(r, zero).detach()) == pytest.approx(expected, abs=1e-6)


def test_noisy_label_defaults_at_known_points():
    """Two classes, logits (0, log 3): p = (1/4, 3/4). For label 1: CE = log(4/3); label
    smoothing 0.1 mixes in ε/C = 0.05 of each class; GCE (1 - (3/4)^0.7)/0.7; SCE
    0.1·CE + 4·(1/4); NCE log(3/4) / (log(1/4) + log(3/4)), plus RCE 4·(1/4)."""
    defaults = noisy_label_defaults()
    assert list(defaults) == [
        "CE",
        "Label smoothing 0.1",
        "GCE q=0.7",
        "SCE a=0.1 b=1",
        "NCE+RCE a=1 b=1",
    ]
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=F64)
    label = torch.tensor([1])
    ce = math.log(4 / 3)
    by_hand = {
        "CE": ce,
        "Label smoothing 0.1": -(0.95 * math.log(3 / 4) + 0.05 * math.log(1 / 4)),
        "GCE q=0.7": (1 - 0.75**0.7) / 0.7,
        "SCE a=0.1 b=1": 0.1 * ce + 4 * 0.25,
        "NCE+RCE a=1 b=1": math.log(3 / 4) / (math.log(1 / 4) + math.log(3 / 4)) + 4 * 0.25,
    }
    for name, expected in by_hand.items():
        assert float(defaults[name](logits, label)) == pytest.approx(expected, abs=1e-12), name


def test_tuned_regression_grids_follow_the_target_units():
    """With units = 100, the δ and c grids and Barron's starting scale are 100 times larger;
    the labels stay in units of the spread."""
    plain, raw = robust_regression_baselines(), robust_regression_baselines(units=100.0)
    assert list(plain) == list(raw)
    assert list(raw["Huber (tuned d)"].variants) == list(plain["Huber (tuned d)"].variants)
    x, y = torch.randn(9, dtype=F64) * 100, torch.zeros(9, dtype=F64)
    torch.testing.assert_close(
        raw["Huber (tuned d)"].variants["d=0.5"](x, y), F.huber_loss(x, y, delta=50.0)
    )
    torch.testing.assert_close(raw["Cauchy (tuned c)"].variants["c=2"](x, y), cauchy(200.0)(x, y))
    torch.testing.assert_close(
        raw["1.5 x Huber (tuned d)"].variants["d=1"](x, y), 1.5 * F.huber_loss(x, y, delta=100.0)
    )
    assert float(raw["Adaptive robust"].scale.detach()) == pytest.approx(100.0, rel=1e-6)
    with pytest.raises(ValueError, match="units must be positive"):
        robust_regression_baselines(units=0.0)


def test_a_diverged_adaptive_loss_gives_nan_not_an_index_error():
    """Barron's α can become NaN when a run diverges at a high lr: the loss must be NaN (a
    diverged run), not crash the evaluation on a table lookup."""
    import math

    import torch

    from learnedloss.evaluation.baselines import robust_log_partition

    value = robust_log_partition(torch.tensor([math.nan, 1.0], dtype=torch.float64))
    assert math.isnan(float(value[0])) and math.isfinite(float(value[1]))
