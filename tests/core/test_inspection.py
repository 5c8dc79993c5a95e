"""Inspection: export to the grid form, the validity check, the plot, and their commands."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnedloss import LearnedLoss, LossConfig
from learnedloss.cli.main import build_parser
from learnedloss.inspection import check, plot_loss, to_grid, training_ranges
from learnedloss.inspection.check import _call as per_element_call
from learnedloss.starts import grid_start_config, mse_start_config, taylor_start_config

RANGES = {"target": (-3.0, 3.0), "residual": (-6.0, 6.0)}


def _probe_errors(source, grid, ranges):
    y = torch.linspace(*ranges["target"], 23, dtype=torch.float64)
    r = torch.linspace(*ranges["residual"], 97, dtype=torch.float64)
    yy, rr = torch.meshgrid(y, r, indexing="ij")
    out = []
    for loss in (source, grid):
        x = (yy + rr).clone().requires_grad_(True)
        loss.reduction = "none"
        value = loss(x, yy)
        (g,) = torch.autograd.grad(value.sum(), x)
        out.append((value.detach(), g))
    return float((out[0][0] - out[1][0]).abs().max()), float((out[0][1] - out[1][1]).abs().max())


@pytest.mark.parametrize(
    "config",
    [
        LossConfig(hidden_sizes=(16, 16), activation="elu", inputs=("input", "target")),
        taylor_start_config("huber"),
    ],
)
def test_export_matches_the_source_within_the_reported_error(config):
    torch.manual_seed(0)
    source = LearnedLoss(config)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.1 * torch.randn_like(p))
    grid, report = to_grid(source, RANGES, knots=(129, 25))
    assert grid.config.parameterization == "grid"
    assert report.relative_value_error < 0.01
    value_error, gradient_error = _probe_errors(source, grid, RANGES)
    assert value_error <= report.value_error * 1.5 + 1e-4
    assert gradient_error <= report.gradient_error * 1.5 + 1e-3
    assert grid.metadata["feature_range"]["residual"] == [-6.0, 6.0]


def test_export_of_a_cross_entropy_start_is_exact():
    source = LearnedLoss(mse_start_config(hidden=(8,)))  # h = 0: the grid is exact
    grid, report = to_grid(source, RANGES)
    assert report.value_error < 1e-9 and report.gradient_error < 1e-9
    x, y = torch.randn(10), torch.randn(10)
    torch.testing.assert_close(grid(x, y), F.mse_loss(x, y))


def test_export_refuses_side_inputs_and_needs_a_range():
    with pytest.raises(ValueError, match="cannot be exported"):
        to_grid(LearnedLoss(LossConfig(inputs=("input", "target", "x"))), RANGES)
    with pytest.raises(ValueError, match="records no range"):
        training_ranges(LearnedLoss(LossConfig()))


def test_bundled_sine_loss_ranges_come_from_its_metadata():
    loss = LearnedLoss.from_pretrained("sine-regression")
    assert training_ranges(loss) == {"target": (-5.0, 5.0), "residual": (-10.0, 10.0)}


def test_check_passes_standard_starts():
    for config in (grid_start_config("huber"), taylor_start_config("mse")):
        report = check(LearnedLoss(config), RANGES)
        assert report.passed, str(report)
    report = check(LearnedLoss(grid_start_config("cross_entropy")))
    assert report.passed, str(report)


class Broken(nn.Module):
    """A regression loss built to fail one criterion."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.reduction = "mean"

    def forward(self, input, target):
        value = self.fn(input, target)
        return value if self.reduction == "none" else value.mean()


BROKEN = {
    "finite": lambda x, y: (x - y) ** 2 + torch.where(x - y > 5, torch.nan, 0.0),
    "minimum": lambda x, y: (x - y - 2.0) ** 2,
    "gradient_sign": lambda x, y: -((x - y) ** 2) + 0.01 * (x - y) ** 4,
    "gradient_size": lambda x, y: 1e-6 * (x - y) ** 2,
    "batch_independent": lambda x, y: (x - y) ** 2 * (1 + x.mean()),
}


@pytest.mark.parametrize("criterion", list(BROKEN))
def test_check_flags_each_broken_loss(criterion):
    report = check(Broken(BROKEN[criterion]), RANGES)
    assert not report.criteria[criterion].passed, str(report)
    healthy = check(Broken(lambda x, y: (x - y) ** 2), RANGES)
    assert healthy.passed, str(healthy)


def test_check_reports_the_weight_form_as_batch_dependent():
    loss = LearnedLoss(mse_start_config(hidden=(8,), residual_form="weight"))
    with torch.no_grad():
        loss.network.layers[-1].weight.normal_()
    criterion = check(loss, RANGES).criteria["batch_independent"]
    assert not criterion.passed and "weight" in criterion.detail


def test_check_pins_the_scale_of_a_scale_free_loss_and_reports_its_batch_dependence():
    config = grid_start_config("mse", inputs=("scaled_residual",), residual_form="scale")
    loss = LearnedLoss(config).double()
    with torch.no_grad():  # a factor (1 + h)^2 that falls from 1 to 0.25 at scaled residual 4
        knots = torch.linspace(-4.0, 4.0, loss.network.values.shape[-1], dtype=torch.float64)
        loss.network.values.copy_(-0.5 * (knots / 4) ** 2)
    report = check(loss, {"target": (-2.0, 2.0), "residual": (-6.0, 6.0)})
    assert report.criteria["minimum"].passed and report.criteria["gradient_sign"].passed
    batch = report.criteria["batch_independent"]
    assert not batch.passed and "robust statistics" in batch.detail
    # pinned: residuals are in units of the call's scale, so 5 is down-weighted and 1 is not
    x = torch.tensor([1.0, 5.0], dtype=torch.float64)
    values = per_element_call(loss, x, torch.zeros(2, dtype=torch.float64)).detach()
    assert 0.9 < values[0] < 1.0 and values[1] == pytest.approx(0.25 * 25)


def test_check_pins_the_median_cross_entropy_of_a_batch_relative_classification_loss():
    from learnedloss.families.noisy_labels.recipe import NoisyLabelsRecipe

    loss = (
        NoisyLabelsRecipe(
            parameterization="grid",
            inputs=("log_relative_ce",),
            grid_knots=(17,),
            grid_range=((-4.0, 4.0),),
            start_truncation=(1.5, 3.0),
        )
        .initial_loss()
        .double()
    )
    report = check(loss)
    batch = report.criteria["batch_independent"]
    assert not batch.passed and "robust statistics" in batch.detail
    # pinned: each sample's cross-entropy is in units of 1, so the loss is cross-entropy
    # below 1.5 and flat at (1.5 + 3) / 2 beyond 3, whatever the rest of the probe is
    n_classes = 5
    logits = torch.zeros(3, n_classes, dtype=torch.float64)
    ce = torch.tensor([0.5, 1.2, 6.0], dtype=torch.float64)  # -log p_0 = ce
    logits[:, 0] = torch.log((n_classes - 1) / (torch.exp(ce) - 1))
    values = per_element_call(loss, logits, torch.zeros(3, dtype=torch.long)).detach()
    expected = torch.tensor([0.5, 1.2, 2.25], dtype=torch.float64)
    torch.testing.assert_close(values, expected, rtol=1e-2, atol=0)  # a spline between knots


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "loss.png"
    plot_loss(
        LearnedLoss(grid_start_config("huber")), ("mse", "huber", "l1"), ranges=RANGES, out=out
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "ce.png"
    plot_loss(LearnedLoss(grid_start_config("cross_entropy")), out=out)
    assert out.stat().st_size > 1000


def test_plot_draws_a_policy_gradient_loss_as_its_effective_advantage():
    loss = LearnedLoss.from_pretrained("policy-gradient")
    figure = plot_loss(loss, ranges={"advantage": (-2.0, 2.0)})
    effective, baseline = figure.axes
    reinforce = effective.get_lines()[-1]
    assert reinforce.get_label() == "REINFORCE"
    for learned, h in zip(effective.get_lines()[:3], baseline.get_lines()[:3], strict=True):
        x, y = (torch.as_tensor(a) for a in learned.get_data())
        assert x[0] == -2.0 and x[-1] == 2.0
        torch.testing.assert_close(x - y, torch.as_tensor(h.get_data()[1]))  # h = adv - used
        assert (x - y).abs().max() > 0.1  # a learned baseline, not REINFORCE's zero


def _parser():
    return build_parser()


def test_commands(tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(
        ["export", "sine-regression", "--grid", "--out", str(tmp_path / "g"), "--knots", "65", "9"]
    )
    assert args.run_command.run(args) == 0
    assert json.loads(capsys.readouterr().out)["knots"] == [65, 9]
    args = parser.parse_args(["check", str(tmp_path / "g"), "--json"])
    assert args.run_command.run(args) in (0, 1)
    assert "criteria" in json.loads(capsys.readouterr().out)
    args = parser.parse_args(["plot", "mse-fit", "--vs", "mse", "--out", str(tmp_path / "p.png")])
    assert args.run_command.run(args) == 0 and (tmp_path / "p.png").exists()


def test_command_errors_exit_2(tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(["export", "shaped-sine", "--grid", "--out", str(tmp_path / "x")])
    assert args.run_command.run(args) == 2
    assert capsys.readouterr().err.startswith("learnedloss: error: ")
    args = parser.parse_args(["check", str(tmp_path / "missing")])
    assert args.run_command.run(args) == 2
