"""PNG plots of meta-test curves and meta-training curves (needs the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from learnedloss.evaluation.protocol import Evaluation


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'learnedloss[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(
    evaluation: Evaluation,
    path: str | Path,
    history: Sequence[dict] | None = None,
    names: Sequence[str] | None = None,
    title: str = "held-out tasks",
) -> Path:
    """Write a PNG of held-out curves (each loss at its lr).

    Each curve is the geometric mean over runs (tasks × inits) of the task objective, the
    statistic the scores use; the band spans one geometric standard deviation (× and ÷).

    With ``history`` (a `MetaTrainer`'s), a second panel shows the meta-training curve.
    ``names`` picks which losses to draw (default: all).
    """
    plt = _pyplot()
    panels = 2 if history else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for name in names or list(evaluation.scores):
        score = evaluation.scores[name]
        steps = [i * evaluation.every for i in range(len(score.curve_log_mean))]
        label = f"{name} (lr {score.lr:.3g}): {score.score:.3g}"
        center, spread = score.curve_log_mean, score.curve_log_std
        ax.plot(steps, center.exp(), label=label)
        ax.fill_between(steps, (center - spread).exp(), (center + spread).exp(), alpha=0.12)
    ax.set(
        xlabel="gradient step",
        ylabel="task objective (geometric mean, ×÷ geo. std)",
        yscale="log",
        title=title,
    )
    ax.legend(fontsize=7, title="loss (lr): geometric mean", title_fontsize=7)
    if history:
        ax = axes[0][1]
        ax.plot(
            [r["step"] for r in history],
            [r["meta_train"] for r in history],
            alpha=0.5,
            label="meta-train (batch)",
        )
        validated = [r for r in history if "meta_val" in r]
        ax.plot(
            [r["step"] for r in validated],
            [r["meta_val"] for r in validated],
            marker="o",
            label="meta-validation",
        )
        ax.set(xlabel="outer step", ylabel="meta-objective", title="meta-training")
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_landscapes(
    curves: dict[str, torch.Tensor],
    omegas: torch.Tensor,
    omega_star: float,
    path: str | Path,
    title: str = "training loss over the model's frequency ω",
) -> Path:
    """Write a PNG of loss landscapes over ω (see `shaped_sine.recipe.landscape`).

    Each curve is scaled to [0, 1], since only its shape matters to gradient descent
    (the learning rate absorbs the scale); a dashed line marks the target ω*.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, values in curves.items():
        span = (values.max() - values.min()).clamp_min(1e-12)
        ax.plot(omegas, (values - values.min()) / span, label=name)
    ax.axvline(omega_star, color="k", linestyle="--", linewidth=1, label=f"ω* = {omega_star:g}")
    ax.set(xlabel="ω", ylabel="loss (scaled to [0, 1])", title=title)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_trajectories(
    positions: dict[str, torch.Tensor],
    path: str | Path,
    title: str = "mountain car from (-0.55, 0): trained policies' roll-outs",
) -> Path:
    """Write a PNG of mountain-car positions over time, one panel per loss (see
    `mountain_car.recipe.compare_driving`): every run thin, the goal and the waypoint
    dashed."""
    from learnedloss.envs.mountain_car import GOAL_POSITION
    from learnedloss.families.mountain_car.tasks import WAYPOINT_POSITION

    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(positions), figsize=(3.2 * len(positions), 3.4), sharey=True, squeeze=False
    )
    for ax, (name, runs) in zip(axes[0], positions.items(), strict=True):
        ax.plot(runs.T, color="tab:blue", alpha=0.4, linewidth=0.8)
        ax.axhline(GOAL_POSITION, color="tab:green", linestyle="--", label="goal")
        ax.axhline(WAYPOINT_POSITION, color="tab:orange", linestyle=":", label="waypoint")
        ax.set(xlabel="time step", title=name)
    axes[0][0].set_ylabel("position")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)
