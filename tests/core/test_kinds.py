"""Loss kinds are objects: each holds its features, standard term and card text, and a new
kind is one new class."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from learnedloss import ConfigError, LearnedLoss, LossConfig, bundled_names
from learnedloss import config as config_module
from learnedloss.card import card_tags, render_model_card
from learnedloss.kinds import (
    KINDS,
    Classification,
    ElementwiseKind,
    LossKind,
    PolicyGradient,
    Regression,
    loss_kind,
    register_kind,
)

BUILT_IN = ("regression", "classification", "policy_gradient")


# ------------------------------------------------------------------ the built-in kinds


def test_the_registry_holds_one_object_per_built_in_kind():
    assert tuple(KINDS) == BUILT_IN
    assert [type(kind) for kind in KINDS.values()] == [Regression, Classification, PolicyGradient]
    for name, kind in KINDS.items():
        assert kind.name == name
        assert loss_kind(name) is kind
        assert LossConfig(kind=name).loss_kind is kind


def test_each_kind_exposes_its_features_defaults_and_forms():
    assert Regression.features == (
        "input",
        "target",
        "residual",
        "scaled_residual",
        "standardized_target",
        "standardized_input",
        "contamination",
    )
    assert Regression.default_inputs == ("input", "target")
    assert Regression.residual_forms == ("add", "scale", "weight")
    assert Classification.features == (
        "log_prob",
        "prob",
        "target",
        "margin",
        "log_relative_ce",
        "scaled_nll",
        "contamination",
        "nontarget_nll",
    )
    assert Classification.default_inputs == ("log_prob", "target")
    assert Classification.residual_forms == ("add", "scale")
    assert not Classification.takes_side_inputs and Classification.uses_ignore_index
    assert PolicyGradient.features == ("log_prob", "advantage")
    assert PolicyGradient.default_inputs == ("log_prob", "advantage")
    assert PolicyGradient.residual_forms == ("add", "scale", "baseline")
    for kind in KINDS.values():
        assert set(kind.default_inputs) <= set(kind.features)
        assert set(kind.residual_forms) <= set(config_module.RESIDUAL_FORMS)
        assert LossConfig(kind=kind.name).inputs == kind.default_inputs


def test_config_module_names_are_derived_from_the_kinds():
    from learnedloss.config import DEFAULT_INPUTS, FEATURES_BY_KIND
    from learnedloss.config import KINDS as KIND_NAMES

    assert KIND_NAMES == BUILT_IN
    assert {name: kind.features for name, kind in KINDS.items()} == FEATURES_BY_KIND
    assert {name: kind.default_inputs for name, kind in KINDS.items()} == DEFAULT_INPUTS
    with pytest.raises(AttributeError, match="no attribute 'NOT_THERE'"):
        _ = config_module.NOT_THERE


def test_unknown_kind_is_a_config_error_naming_the_known_kinds():
    known = r"\['regression', 'classification', 'policy_gradient'\]"
    with pytest.raises(ConfigError, match=rf"kind must be one of {known}, got 'ranking'"):
        loss_kind("ranking")
    with pytest.raises(ConfigError, match=rf"kind must be one of {known}, got 'ranking'"):
        LossConfig(kind="ranking")
    with pytest.raises(ConfigError, match=r"got \['regression'\]"):  # unhashable, from JSON
        LossConfig(kind=["regression"])


def test_kind_rules_keep_their_messages():
    with pytest.raises(ConfigError, match="'weight' is for regression losses, got kind 'clas"):
        LossConfig(kind="classification", residual=True, residual_form="weight")
    with pytest.raises(ConfigError, match="'baseline' is for policy_gradient losses"):
        LossConfig(residual=True, residual_form="baseline")
    with pytest.raises(ConfigError, match="supported by regression and policy-gradient losses"):
        LossConfig(kind="classification", inputs=("log_prob", "x"))
    with pytest.raises(ValueError, match="ignore_index applies to classification losses"):
        LearnedLoss(LossConfig(), ignore_index=0)


def test_a_kind_must_provide_its_abstract_methods():
    class Incomplete(LossKind):
        name = "incomplete"
        features = default_inputs = ("input",)

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


# ------------------------------------------------------------------ card text


@pytest.mark.parametrize("name", BUILT_IN)
def test_card_text_comes_from_the_kind(name):
    kind = KINDS[name]
    config = LossConfig(kind=name, residual=True)
    text = str(render_model_card(config, {}, "org/loss"))
    assert f"A drop-in replacement for `{kind.replaces}`" in text
    assert kind.call in text
    assert f"residual ({kind.starts_as})" in text
    assert name in card_tags(config)


def test_usage_line_with_side_inputs_uses_the_kinds_arguments():
    config = LossConfig(kind="policy_gradient", inputs=("log_prob", "advantage", "time"))
    text = str(render_model_card(config, {}, None))
    assert "loss = loss_fn(log_prob, advantage, time=time)" in text
    regression = LossConfig(inputs=("input", "target", "x"))
    assert "loss = loss_fn(prediction, target, x=x)" in str(render_model_card(regression, {}))


# ------------------------------------------------------------------ a new kind is one class


class BinaryCrossEntropy(ElementwiseKind):
    """A toy kind: a drop-in for ``nn.BCEWithLogitsLoss``, per element."""

    name = "binary"
    features = ("logit", "target", "prob")
    default_inputs = ("logit", "target")
    replaces = "torch.nn.BCEWithLogitsLoss()"
    call = "loss = loss_fn(logits, targets)  # same shapes"
    arguments = "logits, targets"
    starts_as = "starts as binary cross-entropy"
    input_feature = "logit"
    target_feature = "target"

    def derived_features(self, named, config):
        if "prob" in config.inputs:
            named["prob"] = torch.sigmoid(named["logit"])

    def standard_term(self, features):
        logit, target = features["logit"], features["target"]
        return F.binary_cross_entropy_with_logits(logit, target, reduction="none"), None


@pytest.fixture
def binary_kind():
    register_kind(BinaryCrossEntropy)
    try:
        yield KINDS["binary"]
    finally:
        del KINDS["binary"]


def test_a_new_kind_is_one_class(binary_kind, tmp_path):
    assert isinstance(binary_kind, BinaryCrossEntropy)
    assert "binary" in config_module.KINDS
    assert config_module.FEATURES_BY_KIND["binary"] == ("logit", "target", "prob")
    config = LossConfig(
        kind="binary", hidden_sizes=(8,), residual=True, output_activation="identity"
    )
    assert config.inputs == ("logit", "target") and config.loss_kind is binary_kind
    torch.manual_seed(0)
    loss = LearnedLoss(config)
    logits, targets = torch.randn(6, 3), torch.rand(6, 3)
    # A residual loss starts as exactly the standard loss of its kind.
    torch.testing.assert_close(
        loss(logits, targets), F.binary_cross_entropy_with_logits(logits, targets)
    )
    assert repr(loss).startswith("LearnedLoss(\n  kind='binary', reduction='mean'")

    with_prob = LearnedLoss(LossConfig(kind="binary", inputs=("logit", "prob", "t")))
    assert with_prob.config.side_inputs == ("t",)
    assert with_prob(logits, targets, t=torch.zeros(6, 3)).shape == ()

    with torch.no_grad():
        loss.network.layers[-1].weight.normal_()
    loss.save_pretrained(tmp_path, repo_id="org/binary")
    assert json.loads((tmp_path / "config.json").read_text())["kind"] == "binary"
    card = (tmp_path / "README.md").read_text()
    assert "A drop-in replacement for `torch.nn.BCEWithLogitsLoss()`" in card
    assert "loss = loss_fn(logits, targets)  # same shapes" in card
    assert "residual (starts as binary cross-entropy)" in card
    loaded = LearnedLoss.from_pretrained(tmp_path)
    assert torch.equal(loaded(logits, targets), loss(logits, targets))


def test_a_new_kinds_rules_are_enforced(binary_kind):
    with pytest.raises(ConfigError, match="'weight' is for regression losses, got kind 'binary'"):
        LossConfig(kind="binary", residual=True, residual_form="weight")
    with pytest.raises(ValueError, match="ignore_index applies to classification"):
        LearnedLoss(LossConfig(kind="binary"), ignore_index=1)
    with pytest.raises(ConfigError, match=r"kind must be one of .*'binary'"):
        LossConfig(kind="ranking")


def test_check_config_lets_a_kind_add_rules():
    class Wide(Regression):
        name = "wide"

        def check_config(self, config):
            if len(config.hidden_sizes) != 1:
                raise ConfigError("a wide loss has one hidden layer")

    register_kind(Wide())
    try:
        assert LossConfig(kind="wide", hidden_sizes=(4,)).loss_kind.name == "wide"
        with pytest.raises(ConfigError, match="one hidden layer"):
            LossConfig(kind="wide")
    finally:
        del KINDS["wide"]


def test_register_kind_refuses_duplicates_and_unknown_forms():
    with pytest.raises(ConfigError, match="'regression' is already registered"):
        register_kind(Regression())

    class Odd(Regression):
        name = "odd"
        residual_forms = ("add", "twist")

    with pytest.raises(ConfigError, match=r"holds \['twist'\], which no network implements"):
        register_kind(Odd)
    with pytest.raises(TypeError, match="takes a LossKind"):
        register_kind(object())
    assert "odd" not in KINDS


# ------------------------------------------------------------------ bundled losses


def reference_value(loss: LearnedLoss, input, target, side, reduction, ignore_index=-100):
    """A bundled loss's value, written out from the formulas in float64, without the kinds."""
    config = loss.config
    state = {name: tensor.double() for name, tensor in loss.state_dict().items()}
    x = input.double()
    multiplier = valid = None
    if config.kind == "classification":
        dim = 0 if x.dim() == 1 else 1
        log_prob = torch.log_softmax(x, dim).movedim(dim, -1)
        if target.is_floating_point():
            y = target.double().movedim(dim, -1)
        else:
            valid = target != ignore_index
            y = F.one_hot(torch.where(valid, target, 0), x.shape[dim]).double()
        features = {"log_prob": log_prob, "prob": log_prob.exp(), "target": y}
        standard = torch.where(y != 0, -y * log_prob, 0.0)
    elif config.kind == "regression":
        t = target.double()
        features = {"input": x, "target": t, "residual": x - t}
        standard = x - t
    else:
        t = target.double()
        features = {"log_prob": x, "advantage": t}
        standard, multiplier = -x * t, x
    features.update({name: value.double() for name, value in side.items()})
    h = torch.stack([features[name] for name in config.inputs], dim=-1)
    hidden = {"relu": torch.relu, "elu": F.elu}[config.activation]
    n_layers = len(config.hidden_sizes) + 1
    for i in range(n_layers):
        h = h @ state[f"network.layers.{i}.weight"].T
        if config.bias:
            h = h + state[f"network.layers.{i}.bias"]
        if i < n_layers - 1:
            h = hidden(h)
    h = h.squeeze(-1)

    def output(v):
        return {
            "softplus": F.softplus,
            "identity": lambda v: v,
            "square": torch.square,
            "huber": lambda v: torch.where(v.abs() <= 1, v**2 / 2, v.abs() - 0.5),
        }[config.output_activation](v)

    if not config.residual:
        values = output(h)
    elif config.residual_form == "add":
        values = output(standard + h)
    elif config.residual_form == "scale":
        values = output((1 + h) * standard)
    elif config.residual_form == "baseline":
        values = output(standard + multiplier * h)
    else:  # weight
        values = h.numel() * torch.softmax(h.reshape(-1), 0).reshape(h.shape) * output(standard)
    if config.kind == "classification":
        values = values.sum(-1)
    if valid is not None:
        values = torch.where(valid, values, 0.0)
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.mean() if valid is None else values.sum() / valid.sum()


def bundled_calls(loss: LearnedLoss):
    """Fixed random calls of a loss of this kind: (input, target, side inputs)."""
    g = torch.Generator().manual_seed(1)
    if loss.config.kind == "classification":
        logits = torch.randn(7, 5, 3, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 5, (7, 3), generator=g)
        labels[0, 0] = -100
        probs = torch.softmax(torch.randn(7, 5, 3, generator=g, dtype=torch.float64), 1)
        return [(logits, labels, {}), (logits, probs, {}), (logits[:, :, 0], labels[:, 0], {})]
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randn(6, 4, generator=g, dtype=torch.float64)
    side = {
        name: torch.randn(6, 4, generator=g, dtype=torch.float64)
        for name in loss.config.side_inputs
    }
    return [(x, y, side), (x[0, 0], y[0, 0], {name: v[0, 0] for name, v in side.items()})]


MLP_BUNDLES = [
    name
    for name in bundled_names()
    if LearnedLoss.from_pretrained(name).config.parameterization == "mlp"
]
"""The bundled MLP losses, whose formula `reference_value` writes out layer by layer (the grid
bundles are checked at their knots below)."""


@pytest.mark.parametrize("name", MLP_BUNDLES)
def test_bundled_losses_compute_what_their_formulas_say(name):
    loss = LearnedLoss.from_pretrained(name).double()
    for reduction in ("mean", "sum", "none"):
        loss.reduction = reduction
        for input, target, side in bundled_calls(loss):
            expected = reference_value(loss, input, target, side, reduction)
            got = loss(input, target, **side)
            assert got.dtype == torch.float64 and got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_bundled_regression_losses_pass_through_their_knots():
    """A cubic Hermite spline takes its knot values at the knots: at residual r_k and target
    t_j, sine-regression's loss is (r_k + v[j, k])^2."""
    sine = LearnedLoss.from_pretrained("sine-regression", reduction="none").double()
    (r_lo, r_hi), (t_lo, t_hi) = sine.config.grid_range
    k0, k1 = sine.config.grid_knots
    values = sine.network.values.double()
    r = torch.linspace(r_lo, r_hi, k0, dtype=torch.float64)
    for j, t in enumerate(torch.linspace(t_lo, t_hi, k1, dtype=torch.float64)[::8].tolist()):
        target = torch.full_like(r, t)
        expected = (r + values[8 * j]) ** 2
        torch.testing.assert_close(sine(target + r, target), expected, rtol=1e-9, atol=1e-9)
    # robust-regression (monotone): at scaled residual z_k (the call's scale pinned to 1) the
    # loss is the integral of its influence up to z_k, the cumulative trapezoids of the knots'
    # influences blended at the call's contamination
    robust = LearnedLoss.from_pretrained("robust-regression", reduction="none").double()
    (lo, hi), _ = robust.config.grid_range
    k = robust.config.grid_knots[0]
    z = torch.linspace(lo, hi, k, dtype=torch.float64)
    pad = torch.ones(2 * k + 1, dtype=torch.float64)  # residual 1: the median
    got = robust(torch.cat([z, pad]), torch.zeros(3 * k + 1, dtype=torch.float64))
    contamination = float((z > 3).sum()) / (3 * k + 1)
    psi = robust.network.influence().double().detach()
    blended = torch.lerp(psi[0], psi[1], contamination)
    step = (hi - lo) / (k - 1)
    trapezoids = step * (blended[1:] + blended[:-1]) / 2
    expected = torch.cat([torch.zeros(1, dtype=torch.float64), trapezoids.cumsum(0)])
    torch.testing.assert_close(got[:k], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_losses_round_trip_exactly(name, tmp_path):
    loss = LearnedLoss.from_pretrained(name)
    loss.save_pretrained(tmp_path)
    loaded = LearnedLoss.from_pretrained(tmp_path)
    assert loaded.config == loss.config
    assert loaded.config.loss_kind is loss.config.loss_kind
    for input, target, side in bundled_calls(loss):
        input = input.float()
        side = {k: v.float() for k, v in side.items()}
        target = target.float() if target.is_floating_point() else target
        assert torch.equal(loaded(input, target, **side), loss(input, target, **side))
