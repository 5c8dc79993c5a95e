"""PNG plots of meta-test curves and meta-training curves (needs the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from learnedloss.evaluation.protocol import Evaluation


def pyplot():
    """matplotlib's pyplot on the Agg backend, or an ImportError that names the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'learnedloss[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as a PNG and close it; returns the path."""
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
    plt = pyplot()
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
    return save_figure(plt, fig, path)
