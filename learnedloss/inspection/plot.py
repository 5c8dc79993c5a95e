"""`plot_loss`: a learned loss and its gradient next to the standard losses."""

from __future__ import annotations

import itertools
import os
from typing import Any

import torch
import torch.nn.functional as F

from learnedloss.functional import unreduced
from learnedloss.inspection.check import _call, _scale_pinned
from learnedloss.inspection.ranges import Range, training_ranges
from learnedloss.progress import progress_for_calls

STANDARD_CURVES = {
    "mse": lambda r: r**2,
    "huber": lambda r: F.huber_loss(r, torch.zeros_like(r), reduction="none", delta=1.0),
    "l1": lambda r: r.abs(),
}
"""Regression references, as functions of the residual prediction - target."""


def plot_loss(
    loss: Any,
    vs: tuple[str, ...] = ("mse", "huber"),
    *,
    targets: tuple[float, ...] | None = None,
    ranges: dict[str, Range] | None = None,
    out: str | os.PathLike | None = None,
    title: str | None = None,
    points: int = 401,
):
    """Draw a loss and its gradient over the residual at a few targets, next to standard ones.

    Left: the per-element loss against prediction - target at each target (one call per
    target, so a ``"weight"`` loss is normalized over the curve; a loss that reads the
    scaled residual is drawn in units of the batch's robust scale); right: its derivative
    with respect to the prediction. ``vs`` adds reference curves (``"mse"``, ``"huber"``,
    ``"l1"``), dashed. For a classification loss the x axis is the labelled class's logit
    (5 classes, others at 0) and the reference is cross-entropy. For a policy-gradient loss
    the left panel is the advantage its gradient uses, the right its learned baseline, both
    against the advantage (``ranges={"advantage": (lo, hi)}``, default ±4), next to
    REINFORCE's. A loss that reads training progress (docs/progress.md) is drawn at progress
    0, 0.5 and 1 (`PLOTTED_PROGRESS`), at one target.

    Needs matplotlib (the ``plot`` extra: ``pip install learnedloss[plot]``).

    Args:
        loss: a `learnedloss.LearnedLoss` of kind regression, classification or
            policy_gradient.
        vs: reference losses to draw (regression).
        targets: targets to draw curves at (default: 3 across the training range).
        ranges: as for `learnedloss.inspection.check` (default: from the metadata).
        out: write a PNG there (and close the figure); otherwise return the figure.
        title: the figure's title.

    Returns:
        figure (matplotlib.figure.Figure | None): the figure (None when ``out`` is given).
    """
    try:
        import matplotlib

        if out is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - the plot extra is a dev dependency
        raise ImportError("plot_loss needs matplotlib: pip install 'learnedloss[plot]'") from err
    unknown = [name for name in vs if name not in STANDARD_CURVES]
    if unknown:
        raise ValueError(f"vs names {unknown} are not among {list(STANDARD_CURVES)}")
    kind = loss.config.kind
    if kind == "policy_gradient":
        return _finish(plt, _policy_gradient_figure(plt, loss, ranges, points), out, title)
    ranges = training_ranges(loss, ranges)
    fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(10, 4))
    if kind == "classification":
        lo, hi = ranges["logit"]
        z = torch.linspace(lo, hi, points, dtype=torch.float64)
        logits = torch.zeros(points, 5, dtype=torch.float64)
        logits[:, 0] = z
        labels = torch.zeros(points, dtype=torch.long)
        curves = [
            (f"learned{suffix}", progress, lambda x: _call(loss, x, labels))
            for suffix, progress in _progress_settings(loss)
        ]
        reference = lambda x: F.cross_entropy(x, labels, reduction="none")  # noqa: E731
        for name, progress, fn in [*curves, ("cross-entropy", None, reference)]:
            x = logits.clone().requires_grad_(True)
            with torch.enable_grad(), progress_for_calls(loss, progress):
                v = fn(x)
                (g,) = torch.autograd.grad(v.sum(), x)
            style = "--" if name == "cross-entropy" else "-"
            ax_v.plot(z, v.detach(), style, label=name)
            ax_g.plot(z, g[:, 0], style, label=name)
        label = "labelled class's logit (4 others at 0)"
        if _scale_pinned(loss.config):  # see _call: the call's median cross-entropy is 1
            label += "; batch median cross-entropy 1"
        ax_v.set_xlabel(label)
        ax_g.set_xlabel(label)
    else:
        t_lo, t_hi = ranges["target"]
        r_lo, r_hi = ranges["residual"]
        settings = _progress_settings(loss)
        if targets is None:  # a loss over progress: its curves over progress at one target
            targets = (t_lo / 2, 0.0, t_hi / 2) if len(settings) == 1 else ((t_lo + t_hi) / 2,)
        r = torch.linspace(r_lo, r_hi, points, dtype=torch.float64)
        for (suffix, progress), target in itertools.product(settings, targets):
            y = torch.full_like(r, float(target))
            x = (y + r).requires_grad_(True)
            with torch.enable_grad(), progress_for_calls(loss, progress):
                v = _call(loss, x, y)
                (g,) = torch.autograd.grad(v.sum(), x)
            ax_v.plot(r, v.detach(), label=f"learned, target {target:g}{suffix}")
            ax_g.plot(r, g, label=f"learned, target {target:g}{suffix}")
        for name in vs:
            rr = r.clone().requires_grad_(True)
            with torch.enable_grad():
                v = STANDARD_CURVES[name](rr)
                (g,) = torch.autograd.grad(v.sum(), rr)
            ax_v.plot(r, v.detach(), "--", color="gray" if name == "mse" else "black", label=name)
            ax_g.plot(r, g, "--", color="gray" if name == "mse" else "black", label=name)
        label = "prediction - target"
        if _scale_pinned(loss.config):  # see _call: the call's robust scale is 1
            label += " (in units of the batch's median |residual|)"
        ax_v.set_xlabel(label)
        ax_g.set_xlabel(label)
    ax_v.set_ylabel("loss per element")
    ax_g.set_ylabel("d loss / d prediction")
    return _finish(plt, fig, out, title)


PLOTTED_PROGRESS = (0.0, 0.5, 1.0)
"""The training progress values `plot_loss` draws a loss that reads progress at."""


def _progress_settings(loss: Any) -> list[tuple[str, float | None]]:
    """``(label suffix, progress)`` of each curve set: one per `PLOTTED_PROGRESS` for a loss
    that reads progress, else one at the loss's own state."""
    config = getattr(loss, "config", None)
    if config is None or not config.reads_progress:
        return [("", None)]
    return [(f", progress {p:g}", p) for p in PLOTTED_PROGRESS]


def _finish(plt, fig, out, title):
    for ax in fig.axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return None
    return fig


def _policy_gradient_figure(plt, loss, ranges, points: int):
    """A policy-gradient loss ``-log_prob * (advantage - h)``: left, the advantage its
    gradient uses, ``-d loss / d log_prob``, against the advantage at three times (the
    reward-to-go at 0), next to REINFORCE's (the advantage itself); right, the learned
    baseline ``h``."""
    lo, hi = (ranges or {}).get("advantage", (-4.0, 4.0))
    advantage = torch.linspace(lo, hi, points, dtype=torch.float64)
    fig, (ax_a, ax_h) = plt.subplots(1, 2, figsize=(10, 4))
    for time in (0.0, 0.5, 0.9):
        side = {
            "reward_to_go": torch.zeros_like(advantage),
            "time": torch.full_like(advantage, time),
        }
        side = {name: side[name] for name in loss.config.side_inputs if name in side}
        log_prob = torch.zeros_like(advantage).requires_grad_(True)
        with torch.enable_grad():
            value = unreduced(loss, log_prob, advantage, **side)
            (gradient,) = torch.autograd.grad(value.sum(), log_prob)
        effective = -gradient
        ax_a.plot(advantage, effective, label=f"learned, time {time:g}")
        ax_h.plot(advantage, advantage - effective, label=f"learned, time {time:g}")
    ax_a.plot(advantage, advantage, "--", color="black", label="REINFORCE")
    ax_h.plot(advantage, torch.zeros_like(advantage), "--", color="black", label="REINFORCE")
    ax_a.set_xlabel("advantage (reward-to-go 0)")
    ax_h.set_xlabel("advantage (reward-to-go 0)")
    ax_a.set_ylabel("advantage the gradient uses, -d loss / d log_prob")
    ax_h.set_ylabel("learned baseline h")
    return fig
