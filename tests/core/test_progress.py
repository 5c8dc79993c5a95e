"""Training progress as a loss input: the drop-in's ``progress(step, total)`` line, its
default, the fast path, the inner loops that set it every step, and `check` over it."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
import torchopt
from torch import nn
from torch.func import functional_call, vmap

from learnedloss import LearnedLoss, LossConfig, ScheduleError, kernels
from learnedloss.card import render_model_card
from learnedloss.config import GRID_DEFAULT_RANGES, PROGRESS_INPUT, UNSCHEDULED_PROGRESS
from learnedloss.functional import learned_loss
from learnedloss.functional import values as values_module
from learnedloss.functional.classification import fused_classification
from learnedloss.functional.monotone import monotone_loss
from learnedloss.inspection import check
from learnedloss.meta.engine.loop import BatchedInnerLoop
from learnedloss.meta.inner import (
    InnerLoop,
    initial_params,
    learned_loss_apply,
    plain_loss_apply,
    plain_objective,
)
from learnedloss.progress import progress_for_calls, progress_schedule
from learnedloss.starts import grid_start_config, monotone_start_config
from learnedloss.tasks.base import TaskBatch, mse_objective

RANGES = {"target": (-3.0, 3.0), "residual": (-4.0, 4.0)}


def _scheduled_loss() -> LearnedLoss:
    """A monotone regression loss over (scaled_residual, progress) whose three curves differ:
    MSE at progress 0, flatter at 0.5, flattest (redescending far out) at 1."""
    loss = LearnedLoss(monotone_start_config("mse", adapt_to="progress"))
    with torch.no_grad():
        theta = loss.network.log_influence
        theta[1].copy_(torch.linspace(0.0, -1.5, theta.shape[1]))
        theta[2].copy_(torch.linspace(0.3, -4.0, theta.shape[1]))
    return loss


@contextlib.contextmanager
def _general_path_refused():
    """A forward call in this block that takes the general path fails (create_graph's
    recompute, which is the general path by design, happens after it)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the call took the general path")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(values_module, "general_loss", refuse)
        yield


def _frozen_copy(loss: LearnedLoss) -> LearnedLoss:
    copy = LearnedLoss(loss.config)
    copy.load_state_dict(loss.state_dict())
    return copy.freeze()


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kind", "inputs"),
    [
        ("regression", ("input", "target", PROGRESS_INPUT)),
        ("classification", ("log_prob", "target", PROGRESS_INPUT)),
        ("policy_gradient", ("log_prob", "advantage", PROGRESS_INPUT)),
    ],
)
def test_every_kind_may_read_progress_and_it_is_never_a_side_input(kind, inputs):
    config = LossConfig(kind=kind, inputs=inputs)
    assert config.reads_progress
    assert PROGRESS_INPUT not in config.side_inputs
    loss = LearnedLoss(config)
    assert loss.training_progress == UNSCHEDULED_PROGRESS
    assert loss.side_inputs == ()


def test_a_grid_over_progress_spans_zero_to_one_by_default():
    config = grid_start_config("mse", inputs=("residual", PROGRESS_INPUT))
    assert config.grid_range[1] == GRID_DEFAULT_RANGES[PROGRESS_INPUT] == (0.0, 1.0)


def test_config_json_round_trip_keeps_progress_and_the_card_shows_the_line(tmp_path):
    loss = _scheduled_loss()
    loss.progress(3, 10)
    loss.save_pretrained(tmp_path / "p")
    loaded = LearnedLoss.from_pretrained(tmp_path / "p")
    assert loaded.config == loss.config
    assert loaded.training_progress == UNSCHEDULED_PROGRESS  # run state, not saved
    x, y = torch.randn(50), torch.randn(50)
    loaded.progress(3, 10)
    torch.testing.assert_close(loaded(x, y), loss(x, y))
    card = render_model_card(loss.config, {}).content
    assert "loss_fn.progress(step, total_steps)" in card
    plain = render_model_card(monotone_start_config("mse"), {}).content
    assert ".progress(" not in plain


# ----------------------------------------------------------------------------- the setter


def test_progress_is_step_over_total_and_holds_at_one_past_the_end():
    loss = _scheduled_loss()
    assert loss.progress(0, 40) is loss
    assert loss.training_progress == 0.0
    assert loss.progress(10, 40).training_progress == 0.25
    assert loss.progress(2.5, 5.0).training_progress == 0.5
    assert loss.progress(41, 40).training_progress == 1.0


@pytest.mark.parametrize(
    ("step", "total"),
    [(-1, 10), (1, 0), (1, -5), (math.nan, 10), (1, math.inf), ("3", 10), (True, 10), (1, None)],
)
def test_bad_progress_raises_schedule_error_and_changes_nothing(step, total):
    loss = _scheduled_loss().progress(3, 10)
    with pytest.raises(ScheduleError, match="progress needs"):
        loss.progress(step, total)
    assert loss.training_progress == pytest.approx(0.3)
    plain = LearnedLoss(LossConfig())
    with pytest.raises(ScheduleError):
        plain.progress(step, total)  # checked even where progress is not read


def test_progress_takes_numpy_and_one_element_tensors_and_refuses_an_unbounded_run():
    import numpy as np

    loss = _scheduled_loss()
    assert loss.progress(np.int64(3), np.float64(12.0)).training_progress == 0.25
    assert loss.progress(torch.tensor(6), torch.tensor([12])).training_progress == 0.5
    with pytest.raises(ScheduleError, match="unbounded run"):
        loss.progress(5, float("inf"))  # Lightning's estimated_stepping_batches, unbounded
    assert loss.training_progress == 0.5


def test_a_loss_that_does_not_read_progress_accepts_the_call_and_ignores_it():
    loss = LearnedLoss(monotone_start_config("mse"))
    x, y = torch.randn(30), torch.randn(30)
    before = loss(x, y)
    assert loss.progress(1, 2) is loss
    assert loss.training_progress is None
    assert list(loss.buffers()) == []
    torch.testing.assert_close(loss(x, y), before)


def test_progress_is_state_of_the_run_not_of_the_loss():
    loss = _scheduled_loss().progress(1, 4)
    assert sorted(loss.state_dict()) == ["network.log_influence"]
    assert list(loss.buffers()) == []
    holder = nn.Sequential(nn.Linear(2, 1))
    holder.loss = _frozen_copy(loss).progress(1, 4)
    assert sorted(holder.state_dict()) == ["0.bias", "0.weight"]
    assert len(list(holder.parameters())) == 2


@pytest.mark.parametrize("move", ["double", "to_empty", "half", "meta"])
def test_moving_or_casting_the_loss_keeps_its_progress_exactly(move):
    loss = _frozen_copy(_scheduled_loss()).progress(1, 3)
    if move == "double":
        loss.double()
    elif move == "half":
        loss.half()
    elif move == "meta":
        loss.to("meta")
    else:
        loss.to_empty(device="cpu")
    assert loss.training_progress == 1 / 3  # moved, never cast


# ----------------------------------------------------------------------------- values


def test_the_loss_follows_its_curves_across_progress():
    loss = _scheduled_loss()
    x, y = torch.randn(200, dtype=torch.float64) * 3, torch.randn(200, dtype=torch.float64)
    assert loss(x, y).item() == pytest.approx(loss.progress(1, 1)(x, y).item())  # default: 1
    at_start = loss.progress(0, 8)(x, y)
    torch.testing.assert_close(at_start, F.mse_loss(x, y))  # curve 0 is exactly MSE
    values = [loss.progress(step, 8)(x, y).item() for step in range(9)]
    assert len(set(values)) == 9  # every step's shape is its own
    # between knots of the progress axis the loss is the linear blend of its neighbours
    low, high = values[0], values[4]
    assert values[2] == pytest.approx((low + high) / 2, rel=1e-9)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_frozen_fast_path_equals_the_general_path_at_every_progress(fused, reduction, dtype):
    trainable = _scheduled_loss()
    trainable.reduction = reduction
    frozen = _frozen_copy(trainable)
    frozen.reduction = reduction
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(257, generator=generator) * 4).to(dtype)
    y = torch.randn(257, generator=generator).to(dtype)
    if fused:
        assert kernels.load(), "the fused CPU kernels did not build or load in this process"
    for step in (0, 1, 3, 5, 8):
        trainable.progress(step, 8)
        frozen.progress(step, 8)
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        with kernels.disabled() if not fused else torch.enable_grad():
            direct = monotone_loss(frozen.config, frozen.network, a, y, reduction, False, step / 8)
            assert direct is not None  # the fast path takes the call
            with _general_path_refused():
                fast = _with_derivatives(frozen(a, y), a)
        general = _with_derivatives(trainable(b, y), b)
        tolerance = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
        torch.testing.assert_close(fast, general, **tolerance)


def _with_derivatives(value: torch.Tensor, input: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A call's value, its input gradient and the gradient of that gradient's squared sum
    (second derivatives through ``create_graph``), detached."""
    (gradient,) = torch.autograd.grad(value.sum(), input, create_graph=True)
    (second,) = torch.autograd.grad(gradient.square().sum(), input)
    return value.detach(), gradient.detach(), second


def test_progress_for_calls_and_learned_loss_take_progress_without_changing_the_module():
    loss = _scheduled_loss()
    x, y = torch.randn(40), torch.randn(40)
    for p in (0.0, 0.4, 1.0):
        expected = loss.progress(p, 1.0)(x, y)
        loss.progress(1, 1)
        with progress_for_calls(loss, torch.tensor(p)):
            given = functional_call(loss, {}, (x, y))
        direct = learned_loss(loss.config, loss.network, x, y, progress=p)
        torch.testing.assert_close(given, expected)
        torch.testing.assert_close(direct, expected)
        assert loss.training_progress == 1.0


def test_per_sample_gradients_under_vmap_read_the_progress():
    loss = _scheduled_loss()
    x, y = torch.randn(16, 3) * 3, torch.randn(16, 3)

    def one(xi, yi):
        return torch.func.grad(lambda v: loss(v, yi))(xi)

    def looped():
        return torch.stack([torch.func.grad(lambda v, i=i: loss(v, y[i]))(x[i]) for i in range(16)])

    loss.progress(0, 1)
    at_start = looped()
    torch.testing.assert_close(at_start, 2 * (x - y) / 3)  # curve 0 is MSE over 3 elements
    loss.progress(1, 2)
    midway = vmap(one)(x, y)
    torch.testing.assert_close(midway, looped())
    assert not torch.allclose(midway, at_start)
    with progress_for_calls(loss, 0.0):  # a given progress reaches calls under vmap too
        torch.testing.assert_close(vmap(one)(x, y), at_start)


def test_compiled_loss_follows_progress_without_recompiling():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    loss = _scheduled_loss()
    compiled = torch.compile(loss, fullgraph=True)
    x, y = torch.randn(64) * 3, torch.randn(64)
    for step in range(4):
        loss.progress(step, 3)
        torch.testing.assert_close(compiled(x, y), loss(x, y))
    assert counters["stats"]["unique_graphs"] == 1


# ----------------------------------------------------------------------------- inner loops


def _tasks(n_tasks: int = 3):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n_tasks, 24, 1, generator=generator) * 4 - 2
    y = torch.sin(2 * x) + 0.1 * torch.randn(x.shape, generator=generator)
    y[:, :4] += 6.0  # outliers, where the curves differ most
    batch = TaskBatch(x[:, :16], y[:, :16], x[:, 16:], y[:, 16:])

    def make_model():
        return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))

    template, params = initial_params(make_model, n_tasks, torch.Generator().manual_seed(1))
    return batch, template, params


def _hand_trained(loss, template, params, batch, steps: int, lr: float) -> torch.Tensor:
    """Every task trained one at a time by plain PyTorch, with the one-line schedule."""
    scores = []
    for t in range(len(batch)):
        model = template
        weights = {name: value[t].clone().requires_grad_(True) for name, value in params.items()}
        for step in range(steps):
            loss.progress(step, steps)
            prediction = functional_call(model, weights, (batch.x_train[t],))
            value = loss(prediction, batch.y_train[t])
            grads = torch.autograd.grad(value, list(weights.values()))
            with torch.no_grad():
                for w, g in zip(weights.values(), grads, strict=True):
                    w -= lr * g
        query = functional_call(model, weights, (batch.x_query[t],))
        scores.append(F.mse_loss(query, batch.y_query[t]).detach())
    return torch.stack(scores)


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
@pytest.mark.parametrize("frozen", [False, True])
def test_inner_loops_set_progress_every_step_as_the_one_line_schedule_does(frozen):
    loss = _frozen_copy(_scheduled_loss()) if frozen else _scheduled_loss()
    batch, template, params = _tasks()
    steps, lr = 6, 0.05
    loss_params = dict(loss.named_parameters())
    objective = plain_objective(mse_objective)
    apply = plain_loss_apply(loss) if frozen else learned_loss_apply(loss)
    inner = InnerLoop(template, apply, objective, torchopt.sgd(lr))
    engine = BatchedInnerLoop(template, loss, objective, "sgd", lr)
    on_vmap = inner.run(params, loss_params, batch, steps).detach()
    on_engine = engine.run(params, loss_params, batch, steps).detach()
    truncated = inner.run(params, loss_params, batch, steps, truncate=2).detach()
    checkpointed = inner.run(params, loss_params, batch, steps, checkpointed=True).detach()
    curve = inner.curves(params, loss_params, batch, steps, every=3)
    engine_curve = engine.curves(params, loss_params, batch, steps, every=2)
    assert loss.training_progress == UNSCHEDULED_PROGRESS  # the loops never set the module
    by_hand = _hand_trained(loss, template, params, batch, steps, lr)
    torch.testing.assert_close(on_vmap, by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(on_engine, by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(truncated, by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(checkpointed, by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(curve[-1], by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(engine_curve[-1], by_hand, rtol=1e-4, atol=1e-6)
    unscheduled = LearnedLoss(loss.config)
    unscheduled.load_state_dict(loss.state_dict())
    fixed = _hand_trained(_FixedProgress(unscheduled), template, params, batch, steps, lr)
    assert not torch.allclose(fixed, by_hand, rtol=1e-3)  # the schedule changed training


class _FixedProgress(nn.Module):
    """A loss whose ``progress`` line does nothing: it stays at its default."""

    def __init__(self, loss: LearnedLoss) -> None:
        super().__init__()
        self.loss = loss

    def progress(self, step, total):
        return self

    def forward(self, input, target):
        return self.loss(input, target)


def test_the_meta_gradient_reaches_every_curve_of_the_progress_axis():
    loss = _scheduled_loss()
    batch, template, params = _tasks()
    objective = plain_objective(mse_objective)
    inner = InnerLoop(template, learned_loss_apply(loss), objective, torchopt.sgd(0.05))
    objective = inner.run(params, dict(loss.named_parameters()), batch, 8).mean()
    (gradient,) = torch.autograd.grad(objective, loss.network.log_influence)
    per_curve = gradient.abs().sum(dim=1)
    assert bool((per_curve > 0).all()), per_curve


# ----------------------------------------------------------------------------- check


def test_check_covers_the_whole_schedule_and_restores_the_loss_progress():
    loss = _scheduled_loss().progress(1, 3)
    report = check(loss, RANGES)
    shape = {name: c for name, c in report.criteria.items() if name != "batch_independent"}
    assert all(c.passed for c in shape.values()), str(report)
    # scaled by the call's robust scale, it depends on the batch by design, except at
    # progress 0, where its curve is exactly MSE: the first failing progress is named
    dependence = report.criteria["batch_independent"]
    assert not dependence.passed and dependence.numbers["progress"] == 0.25
    assert any("progress 0, 0.25, 0.5, 0.75, 1" in note for note in report.notes)
    assert loss.training_progress == pytest.approx(1 / 3)


def test_check_fails_a_loss_that_dips_at_one_progress_only_and_says_where():
    loss = LearnedLoss(grid_start_config("mse", inputs=("residual", PROGRESS_INPUT), knots=(9, 2)))
    with torch.no_grad():  # at progress 0 only: a bump that makes the loss dip beyond it
        loss.network.values[0, 6] = 30.0
    report = check(loss, RANGES)
    assert not report.criteria["monotone"].passed
    assert report.criteria["monotone"].numbers["progress"] == 0.0
    loss.progress(1, 1)
    with torch.no_grad():
        loss.network.values[0, 6] = 0.0
    assert check(loss, RANGES).criteria["monotone"].passed


def test_plot_draws_a_progress_loss_at_the_start_middle_and_end_of_training(tmp_path):
    from learnedloss.inspection.plot import plot_loss

    loss = _scheduled_loss().progress(1, 5)
    figure = plot_loss(loss, ranges=RANGES)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert [label for label in labels if label.startswith("learned")] == [
        "learned, target 0, progress 0",
        "learned, target 0, progress 0.5",
        "learned, target 0, progress 1",
    ]
    curves = [line.get_ydata() for line in figure.axes[0].get_lines()[:3]]
    assert not (curves[0] == curves[2]).all()
    assert loss.training_progress == pytest.approx(0.2)


def _scheduled_grid_classification() -> LearnedLoss:
    """A grid over (log_prob, progress) in the scale form, as the noisy-labels recipe builds
    one, with a different shape at each of its three progress knots."""
    config = grid_start_config(
        "cross_entropy",
        inputs=("log_prob", PROGRESS_INPUT),
        knots=(17, 3),
        grid_range=((-8.0, 0.0), (0.0, 1.0)),
        residual_form="scale",
    )
    loss = LearnedLoss(config)
    knots = loss.network.knot_positions[0].to(torch.float32)
    with torch.no_grad():
        loss.network.values[1].copy_(-0.5 * torch.sigmoid(-knots - 2))
        loss.network.values[2].copy_(-0.9 * torch.sigmoid(-knots - 1))
        loss.network.slopes[2].fill_(0.01)
    return loss


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_frozen_classification_grid_over_progress_equals_the_general_path(fused, reduction):
    trainable = _scheduled_grid_classification()
    trainable.reduction = reduction
    frozen = _frozen_copy(trainable)
    frozen.reduction = reduction
    if fused:
        assert kernels.load(), "the fused CPU kernels did not build or load in this process"
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(64, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (64,), generator=generator)
    values = []
    for step in (0, 1, 2, 3, 4):
        trainable.progress(step, 4)
        frozen.progress(step, 4)
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        with kernels.disabled() if not fused else torch.enable_grad():
            direct = fused_classification(
                frozen.config, frozen.network, a, labels, reduction, -100, False, step / 4
            )
            assert (direct is not None) == fused  # the kernel takes the call
            with _general_path_refused() if fused else torch.enable_grad():
                fast = _with_derivatives(frozen(a, labels), a)
        general = _with_derivatives(trainable(b, labels), b)
        torch.testing.assert_close(fast, general, rtol=1e-4, atol=1e-6)
        values.append(float(general[0].sum()))
    assert len(set(values)) == 5


def test_evaluate_schedules_a_progress_loss_on_the_vmap_path_and_the_engine():
    from learnedloss.evaluation import evaluate
    from learnedloss.families.sine import SineTasks

    scheduled = _scheduled_loss()
    end_shape = LearnedLoss(monotone_start_config("mse"))  # curve 2 alone: the default's
    with torch.no_grad():  # (anchored, as curves over progress are)
        theta = scheduled.network.log_influence
        end_shape.network.log_influence.copy_(theta[2:] - theta[2:, :1])
    losses = {
        "scheduled": scheduled,
        "scheduled, frozen": _frozen_copy(scheduled),  # as from_pretrained gives it
        "end shape": end_shape,
    }
    options = dict(steps=8, n_tasks=2, n_inits=1, lr=0.05, optimizer="sgd", early_stopping=False)
    scores = {
        path: evaluate(losses, SineTasks(outlier_fraction=0.3), path=path, **options).scores
        for path in ("vmap", "engine")
    }
    for name in losses:
        assert scores["engine"][name].path == "engine"
        torch.testing.assert_close(
            scores["engine"][name].finals, scores["vmap"][name].finals, rtol=1e-4, atol=1e-6
        )
    # scheduled, the loss trains otherwise than its end shape alone, on both paths
    for path in scores:
        torch.testing.assert_close(
            scores[path]["scheduled, frozen"].finals, scores[path]["scheduled"].finals
        )
        assert not torch.allclose(
            scores[path]["scheduled"].finals, scores[path]["end shape"].finals
        )
    assert scheduled.training_progress == UNSCHEDULED_PROGRESS


def test_check_probes_the_knots_of_the_progress_axis():
    config = grid_start_config("mse", inputs=("residual", PROGRESS_INPUT), knots=(9, 7))
    loss = LearnedLoss(config)
    # a bump at residual 2 on the progress knot 1/3 alone: (r + h)^2 dips after it there, but
    # the nearest fixed probes (0.25 sees half the bump, 0.5 none) stay monotone
    with torch.no_grad():
        loss.network.values[2, 6] = 1.2
    report = check(loss, RANGES)
    assert not report.criteria["monotone"].passed
    assert report.criteria["monotone"].numbers["progress"] == pytest.approx(1 / 3)


def test_given_progress_reaches_held_losses_nests_and_leaves_them_unchanged():
    loss = _scheduled_loss().progress(1, 2)
    wrapper = nn.ModuleDict({"inner": loss})
    x, y = torch.randn(30) * 3, torch.randn(30)
    at = {p: loss.progress(p, 1.0)(x, y) for p in (0.0, 0.5, 1.0)}
    loss.progress(1, 2)
    with progress_for_calls(wrapper, 0.0):
        torch.testing.assert_close(loss(x, y), at[0.0])
        with progress_for_calls(loss, 1.0):
            torch.testing.assert_close(loss(x, y), at[1.0])
            loss.progress(0, 1)  # the loss's own value changes; the given one still rules
            torch.testing.assert_close(loss(x, y), at[1.0])
        torch.testing.assert_close(loss(x, y), at[0.0])
    assert loss.training_progress == 0.0
    torch.testing.assert_close(loss(x, y), at[0.0])


def test_the_schedule_is_made_once_per_run_and_holds_at_one_past_the_end():
    like = torch.zeros(2, dtype=torch.float64)
    schedule = progress_schedule(2, 4, 4, like)
    assert schedule.dtype == torch.float64
    assert schedule.tolist() == [0.5, 0.75, 1.0, 1.0]
    assert progress_schedule(0, 3, 3, torch.zeros(1, dtype=torch.long)).dtype == torch.float32


def test_curves_over_progress_change_shape_not_scale():
    loss = LearnedLoss(monotone_start_config("mse", adapt_to="progress", knots=9))
    adaptive = LearnedLoss(monotone_start_config("mse", adapt_to="contamination", knots=9))
    for network in (loss.network, adaptive.network):
        with torch.no_grad():
            network.log_influence.copy_(torch.randn(network.log_influence.shape) * 2)
    spacing = loss.network.spacing
    # every curve keeps MSE's influence 2z at its first free knot (z = spacing) ...
    torch.testing.assert_close(
        loss.network.influence()[:, 1], torch.full((3,), 2 * spacing), rtol=0, atol=1e-6
    )
    # ... and a curve over another input (a statistic of the call) does not
    assert not torch.allclose(adaptive.network.influence()[:, 1], torch.full((3,), 2 * spacing))
    x, y = torch.randn(64) * 3, torch.randn(64)
    values = [loss.progress(p, 1.0)(x, y).item() for p in (0.0, 0.5, 1.0)]
    assert len(set(values)) == 3
