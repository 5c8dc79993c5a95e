"""`check`: is a learned loss a sane loss over the range it was meta-trained on?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from learnedloss.config import PROGRESS_INPUT
from learnedloss.functional import unreduced
from learnedloss.inspection.ranges import Range, training_ranges
from learnedloss.kinds.regression import SCALE_FREE_FEATURES
from learnedloss.progress import progress_for_calls


@dataclass
class Criterion:
    """One criterion's verdict, the numbers behind it, and what it means."""

    passed: bool
    numbers: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


@dataclass
class CheckReport:
    """`check`'s result: one `Criterion` per name, and the ranges that were probed.

    Criteria: ``finite`` (values and gradients), ``minimum`` (the loss's minimum over
    predictions lies at the target), ``gradient_sign`` (near the target the gradient pushes
    the prediction toward it), ``gradient_size`` (the gradient is neither collapsed nor
    exploded relative to MSE's or cross-entropy's), ``batch_independent`` (an element's loss
    does not change when the other elements of the call do), ``monotone`` (over the whole
    range, far beyond the training range, the loss never decreases as the error grows).
    """

    ranges: dict[str, Range]
    criteria: dict[str, Criterion]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "criteria": {k: asdict(v) for k, v in self.criteria.items()},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'} over {self.to_dict()['ranges']}"]
        for name, c in self.criteria.items():
            numbers = ", ".join(f"{k}={_fmt(v)}" for k, v in c.numbers.items())
            lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {name}: {c.detail} ({numbers})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _side_inputs(loss, like: torch.Tensor) -> dict[str, torch.Tensor]:
    config = getattr(loss, "config", None)
    names = config.side_inputs if config is not None else ()
    return {name: torch.zeros_like(like) for name in names}


def _curves(loss, kind: str, ranges: dict[str, Range], points: int, targets: int):
    """Per-element losses and gradients along the prediction axis at several targets.

    Regression: rows are targets, columns predictions target + r. Classification: C = 5
    classes, rows are the target-class logit z (others 0) and the gradient is d loss / d z;
    the "target" is z → +∞, so the minimum should sit at the top of the logit range.
    """
    if kind == "classification":
        lo, hi = ranges["logit"]
        z = torch.linspace(lo, hi, points, dtype=torch.float64)
        logits = torch.zeros(points, 5, dtype=torch.float64)
        logits[:, 0] = z
        logits.requires_grad_(True)
        labels = torch.zeros(points, dtype=torch.long)
        value = _call(loss, logits, labels)
        (grad,) = torch.autograd.grad(value.sum(), logits)
        reference = F.cross_entropy(logits.detach().requires_grad_(True), labels, reduction="none")
        z_ref = logits.detach().clone().requires_grad_(True)
        (grad_ref,) = torch.autograd.grad(F.cross_entropy(z_ref, labels, reduction="sum"), z_ref)
        return (
            z[None],
            z[None],
            value.detach()[None],
            grad[:, 0][None],
            grad_ref[:, 0][None],
            (reference.detach()[None]),
        )
    t_lo, t_hi = ranges["target"]
    r_lo, r_hi = ranges["residual"]
    ys = torch.linspace(t_lo, t_hi, targets, dtype=torch.float64)
    rs = torch.linspace(r_lo, r_hi, points, dtype=torch.float64)
    y = ys[:, None].expand(targets, points).contiguous()
    r = rs[None].expand(targets, points)
    x = (y + r).clone().requires_grad_(True)
    values, grads = [], []
    for k in range(targets):  # one call per target: the "weight" form normalizes per call
        xk = x[k].detach().clone().requires_grad_(True)
        v = _call(loss, xk, y[k])
        (g,) = torch.autograd.grad(v.sum(), xk)
        values.append(v.detach())
        grads.append(g)
    grad_ref = 2 * r
    return y, r, torch.stack(values), torch.stack(grads), grad_ref, r**2


def _call(loss, input: torch.Tensor, target: torch.Tensor, pin_scale: bool = True) -> torch.Tensor:
    """``loss(input, target)`` per element (`learnedloss.functional.unreduced`).

    A loss that reads ``scaled_residual`` alone of the scale-free features (its residuals
    over the call's median ``|residual|``) is called with ``2n + 1`` extra elements whose
    residual is exactly 1 appended to the ``n`` asked for, so that the call's scale is 1
    whatever they are: residuals are then in units of the batch's typical error, and each
    element's value is a function of its own residual (``pin_scale=False`` calls it as is).
    A classification loss that reads ``log_relative_ce`` likewise gets ``2n + 1`` extra
    samples whose cross-entropy is exactly 1 (the call's median cross-entropy is then 1).
    """
    config = getattr(loss, "config", None)
    side = (
        _side_inputs(loss, input) if config is not None and config.kind != "classification" else {}
    )
    if pin_scale and _scale_pinned(config) and config.kind == "classification":
        n, n_classes = input.shape
        pad = input.new_zeros(2 * n + 1, n_classes)
        pad[:, 0] = math.log((n_classes - 1) / (math.e - 1))  # -log p_0 = 1
        x = torch.cat([input, pad])
        y = torch.cat([target, target.new_zeros(2 * n + 1)])
        return unreduced(loss, x, y)[:n]
    if pin_scale and _scale_pinned(config):
        n = input.numel()
        pad_target = target.new_zeros(2 * n + 1)
        x = torch.cat([input.reshape(-1), pad_target + 1])
        y = torch.cat([target.reshape(-1), pad_target])
        return unreduced(loss, x, y)[:n].reshape(input.shape)
    return unreduced(loss, input, target, **side)


SCALE_PINNED_INPUTS = {
    "classification": {"log_relative_ce", "scaled_nll", "contamination"},
    "regression": {"scaled_residual", "contamination"},
}
"""Inputs relative to a call's robust scale that `_call` pins (by padding the call) so that
each element's value is a function of its own error."""


def _scale_pinned(config) -> bool:
    """Whether `_call` pins the call's robust scale for a loss of this config."""
    if config is not None and config.kind == "classification":
        return bool(set(config.inputs) & SCALE_PINNED_INPUTS["classification"])
    if config is None or config.kind != "regression" or config.side_inputs:
        return False
    scale_free = set(config.inputs) & set(SCALE_FREE_FEATURES)
    return "scaled_residual" in scale_free and scale_free <= SCALE_PINNED_INPUTS["regression"]


def check(
    loss: Any,
    ranges: dict[str, Range] | None = None,
    *,
    points: int = 401,
    targets: int = 9,
    sign_band: float = 0.1,
    size_bounds: tuple[float, float] = (0.01, 100.0),
    minimum_tolerance: float = 0.05,
) -> CheckReport:
    """Check a learned loss over the range of data it was meta-trained on.

    Regression losses are probed on predictions ``target + r`` for ``targets`` targets
    across the target range and ``points`` residuals across the residual range (each target
    one call). Classification losses are probed with 5 classes, the labelled class's logit
    swept over the logit range and the others at 0. Side inputs, if the loss reads any, are
    held at 0 (noted in the report).

    Criteria (each a `Criterion` with its numbers):

    - ``finite``: every value and gradient is finite.
    - ``minimum``: for each target the prediction of least loss lies within
      ``minimum_tolerance`` × the residual range's width of the target (classification: at
      the top of the logit range, where the labelled class is most probable).
    - ``gradient_sign``: within ``sign_band`` × the residual range's half-width of the
      target (excluding it), the gradient has the sign of prediction - target for at least
      95% of the probes (classification: d loss / d labelled logit < 0 everywhere).
    - ``gradient_size``: the median ratio of the gradient's size to MSE's (2|r|) or
      cross-entropy's lies within ``size_bounds``: outside, the loss has collapsed (a flat
      loss trains nothing) or exploded (it acts as a far larger learning rate).
    - ``batch_independent``: the first element's loss stays the same when the other
      elements of the call change. The ``"weight"`` residual form fails this by design: its
      weights are normalized over the call (use it with whole batches and ``'mean'``).
    - ``monotone``: over the whole range, ``WHOLE_RANGE_FACTOR`` times the training range's
      extent on each side of the target (at least 64 robust scales for a loss over
      ``scaled_residual``; labelled logits from -30 to 30 for classification), the loss
      never decreases as the error grows (`monotonicity`), as an M-estimator's
      :math:`\rho` never does; it may flatten. A loss that dips has minima away from the
      target, where its gradient pushes predictions away from the data.

    Args:
        loss: a `learnedloss.LearnedLoss` (or any loss called as ``loss(input, target)``
            with a ``reduction`` attribute) of kind regression or classification.
        ranges: ``{"target": (lo, hi), "residual": (lo, hi)}`` or ``{"logit": (lo, hi)}``;
            default: as recorded in the loss's metadata (`training_ranges`).

    Returns:
        A `CheckReport`; ``report.passed`` is True when every criterion passed.

    A loss that reads training progress (docs/progress.md) is checked at each progress of
    `progress_probes` (0, 0.25, 0.5, 0.75, 1 and its progress axis's knots): a criterion
    passes only if it holds at every one, and its numbers are those of the first progress
    where it failed (else the last), with that ``progress`` among them. The loss's own
    progress is left as it is.

    Examples:
        >>> from learnedloss import LearnedLoss
        >>> from learnedloss.inspection import check
        >>> check(LearnedLoss.from_pretrained("sine-regression")).criteria["finite"].passed
        True
    """
    options = dict(
        points=points,
        targets=targets,
        sign_band=sign_band,
        size_bounds=size_bounds,
        minimum_tolerance=minimum_tolerance,
    )
    config = getattr(loss, "config", None)
    if config is None or not config.reads_progress:
        return _check_once(loss, ranges, **options)
    reports = []
    probes = progress_probes(loss)
    for progress in probes:
        with progress_for_calls(loss, progress):
            reports.append((progress, _check_once(loss, ranges, **options)))
    criteria = {}
    for name in reports[0][1].criteria:
        failed = [(p, r.criteria[name]) for p, r in reports if not r.criteria[name].passed]
        progress, chosen = (failed or [(reports[-1][0], reports[-1][1].criteria[name])])[0]
        criteria[name] = Criterion(
            chosen.passed, {**chosen.numbers, "progress": progress}, chosen.detail
        )
    shown = ", ".join(f"{p:.3g}" for p in probes)
    notes = [*reports[0][1].notes, f"checked at progress {shown}; each criterion at every one"]
    return CheckReport(reports[0][1].ranges, criteria, notes)


PROGRESS_PROBES = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The training progress values `check` probes a loss that reads progress at, with the knots
of its progress axis (`progress_probes`)."""


def progress_probes(loss: Any) -> tuple[float, ...]:
    """`PROGRESS_PROBES` and, for a grid or monotone network, the knots of its progress axis
    within [0, 1] (where a grid's shape can differ most from its neighbours'), sorted."""
    config = loss.config
    probes = set(PROGRESS_PROBES)
    network = loss.network
    if config.parameterization in ("grid", "monotone"):
        axis = config.inputs.index(PROGRESS_INPUT)
        lo, hi = network.grid_range[axis]
        count = network.knots[axis]
        knots = [lo + (hi - lo) * k / (count - 1) for k in range(count)]
        probes |= {round(k, 12) for k in knots if 0.0 <= k <= 1.0}
    return tuple(sorted(probes))


def _check_once(
    loss: Any,
    ranges: dict[str, Range] | None,
    *,
    points: int,
    targets: int,
    sign_band: float,
    size_bounds: tuple[float, float],
    minimum_tolerance: float,
) -> CheckReport:
    """`check` at the loss's current progress."""
    config = getattr(loss, "config", None)
    kind = config.kind if config is not None else "regression"
    if kind not in ("regression", "classification"):
        raise ValueError(f"check covers regression and classification losses, got {kind!r}")
    ranges = training_ranges(loss, ranges)
    notes = []
    if config is not None and config.side_inputs:
        notes.append(f"side inputs {list(config.side_inputs)} held at 0")
    with torch.enable_grad():
        y, r, values, grads, grad_ref, _ = _curves(loss, kind, ranges, points, targets)
    criteria: dict[str, Criterion] = {}
    finite_v = bool(torch.isfinite(values).all())
    finite_g = bool(torch.isfinite(grads).all())
    criteria["finite"] = Criterion(
        finite_v and finite_g,
        {
            "nonfinite_values": int((~torch.isfinite(values)).sum()),
            "nonfinite_gradients": int((~torch.isfinite(grads)).sum()),
        },
        "values and gradients are finite over the range",
    )
    shape = _classification_shape if kind == "classification" else _regression_shape
    criteria.update(shape(y, r, values, grads, ranges, minimum_tolerance, sign_band))
    ratio = grads.abs() / grad_ref.abs().clamp_min(1e-12)
    mask = grad_ref.abs() > 1e-6
    median = float(ratio[mask].median()) if bool(mask.any()) else float("nan")
    lo, hi = size_bounds
    criteria["gradient_size"] = Criterion(
        lo <= median <= hi,
        {"median_ratio": median, "bounds": list(size_bounds)},
        f"gradient size relative to {'cross-entropy' if kind == 'classification' else 'MSE'}",
    )
    criteria["batch_independent"] = _batch_dependence(loss, kind, ranges)
    criteria["monotone"] = monotonicity(loss, ranges)
    return CheckReport(dict(ranges), criteria, notes)


def _least(values: torch.Tensor) -> torch.Tensor:
    """Where each curve of ``values`` is least, non-finite values counting as +inf."""
    safe = torch.where(torch.isfinite(values), values, torch.full_like(values, float("inf")))
    return safe.argmin(dim=-1)


def _classification_shape(y, r, values, grads, ranges, minimum_tolerance, sign_band):
    """The ``minimum`` and ``gradient_sign`` criteria of a classification loss."""
    best = _least(values)
    z = r[0]
    at = float(z[best[0]])
    width = float(z[-1] - z[0])
    distance = float(z[-1]) - at
    minimum = Criterion(
        distance <= minimum_tolerance * width,
        {"argmin_logit": at, "top_of_range": float(z[-1]), "distance": distance},
        "the loss is least where the labelled class's logit is largest",
    )
    negative = float((grads < 0).double().mean())
    sign = Criterion(
        negative >= 0.95,
        {"fraction_negative": negative},
        "raising the labelled class's logit lowers the loss",
    )
    return {"minimum": minimum, "gradient_sign": sign}


def _regression_shape(y, r, values, grads, ranges, minimum_tolerance, sign_band):
    """The ``minimum`` and ``gradient_sign`` criteria of a regression loss."""
    best = _least(values)
    where = r.gather(1, best[:, None])[:, 0]
    width = ranges["residual"][1] - ranges["residual"][0]
    distances = where.abs()
    minimum = Criterion(
        bool((distances <= minimum_tolerance * width).all()),
        {
            "worst_distance": float(distances.max()),
            "worst_target": float(y[int(distances.argmax()), 0]),
            "argmin_residuals": [round(float(v), 4) for v in where],
        },
        "for each target, the least loss is at prediction = target",
    )
    band = sign_band * width / 2
    near = (r.abs() <= band) & (r != 0)
    agree = (torch.sign(grads) == torch.sign(r)) & near
    fraction = float(agree.sum()) / max(int(near.sum()), 1)
    sign = Criterion(
        fraction >= 0.95,
        {"fraction_agreeing": fraction, "band": band},
        "near the target the gradient has the sign of prediction - target",
    )
    return {"minimum": minimum, "gradient_sign": sign}


def _batch_dependence(loss, kind: str, ranges) -> Criterion:
    generator = torch.Generator().manual_seed(0)
    if kind == "classification":
        a = torch.randn(16, 5, generator=generator, dtype=torch.float64) * 3
        b = a.clone()
        b[1:] = torch.randn(15, 5, generator=generator, dtype=torch.float64) * 3
        labels = torch.randint(0, 5, (16,), generator=generator)
        a[0, labels[0]] = b[0, labels[0]] = a[0].min() - 3  # a hard sample: its loss is
        # far from cross-entropy's for a loss that weighs samples against the batch
        la, lb = _call(loss, a, labels, False).detach(), _call(loss, b, labels, False).detach()
    else:
        t_lo, t_hi = ranges["target"]
        r_lo, r_hi = ranges["residual"]
        y = torch.rand(16, generator=generator, dtype=torch.float64) * (t_hi - t_lo) + t_lo
        x = y + torch.rand(16, generator=generator, dtype=torch.float64) * (r_hi - r_lo) + r_lo
        x[0] = y[0] + 0.75 * r_hi  # a large residual: a loss relative to the batch's scale
        # reads it far from the target, where its shape is not a multiple of r² (near zero
        # a monotone loss is c·r² whatever the scale)
        x2 = x.clone()
        x2[1:] = y[1:] + (
            torch.rand(15, generator=generator, dtype=torch.float64) * (r_hi - r_lo) + r_lo
        )
        la, lb = _call(loss, x, y, False).detach(), _call(loss, x2, y, False).detach()
    change = float((la[0] - lb[0]).abs())
    scale = float(la[0].abs()) + 1e-12
    independent = change <= 1e-6 * max(scale, 1.0)
    form = getattr(getattr(loss, "config", None), "residual_form", "")
    detail = "one element's loss does not depend on the other elements of the call"
    if not independent and form == "weight":
        detail = "depends on the batch by design: 'weight' form, weights normalized per call"
    elif not independent and getattr(loss, "batch_dependent", False):
        detail = (
            "depends on the batch by design: its features are scaled by the call's robust "
            "statistics (the other criteria pin that scale at 1)"
        )
    return Criterion(independent, {"change_of_first_element": change}, detail)


WHOLE_RANGE_FACTOR = 4.0
"""`monotonicity` probes this many times the training range's extent."""

MONOTONE_TOLERANCE = 1e-6
"""The largest decrease `monotonicity` forgives, relative to the largest value probed (float
rounding of a flat stretch)."""


def monotonicity(loss: Any, ranges: dict[str, Range], points: int = 2001) -> Criterion:
    """The ``monotone`` criterion of `check`: the loss never decreases as the error grows.

    Regression: for 3 targets across the target range (one call each), residuals from 0 out
    to ``WHOLE_RANGE_FACTOR`` times the residual range's extent (at least 64 for a loss
    whose scale `_call` pins at 1) on each side; the loss must not decrease as ``|r|``
    grows on either side. Classification: 5 classes, the labelled class's logit from 30
    down to -30 (the others at 0): the loss must not decrease as the labelled class's
    probability falls.
    """
    config = getattr(loss, "config", None)
    with torch.no_grad():
        if config is not None and config.kind == "classification":
            logits = torch.zeros(points, 5, dtype=torch.float64)
            logits[:, 0] = torch.linspace(30.0, -30.0, points, dtype=torch.float64)
            labels = torch.zeros(points, dtype=torch.long)
            curves = [(_call(loss, logits, labels), logits[:, 0])]
        else:
            reach = WHOLE_RANGE_FACTOR * max(abs(v) for v in ranges["residual"])
            if _scale_pinned(config):
                reach = max(reach, 64.0)
            size = torch.linspace(0.0, reach, points, dtype=torch.float64)
            curves = []
            for target in torch.linspace(*ranges["target"], 3, dtype=torch.float64).tolist():
                for side in (1.0, -1.0):
                    y = torch.full_like(size, target)
                    curves.append((_call(loss, y + side * size, y), side * size))
    worst, at = 0.0, float("nan")
    for values, axis in curves:
        height = float(values.abs().max()) if bool(torch.isfinite(values).all()) else 1.0
        drops = (values[:-1] - values[1:]).clamp_min(0.0) / max(height, 1e-12)
        drops = torch.nan_to_num(drops, nan=1.0)
        if float(drops.max()) > worst:
            worst, at = float(drops.max()), float(axis[int(drops.argmax()) + 1])
    return Criterion(
        worst <= MONOTONE_TOLERANCE,
        {"worst_relative_drop": worst, "at": at},
        "over the whole range the loss never decreases as the error grows",
    )
