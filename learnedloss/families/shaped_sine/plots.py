"""The shaped-sine family's picture: loss landscapes over the model's frequency ω (needs the
``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

import torch

from learnedloss.evaluation.plots import pyplot, save_figure


def plot_landscapes(
    curves: dict[str, torch.Tensor],
    omegas: torch.Tensor,
    omega_star: float,
    path: str | Path,
    title: str = "training loss over the model's frequency ω",
) -> Path:
    """Write a PNG of loss landscapes over ω (see `recipe.landscape`).

    Each curve is scaled to [0, 1], since only its shape matters to gradient descent
    (the learning rate absorbs the scale); a dashed line marks the target ω*.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, values in curves.items():
        span = (values.max() - values.min()).clamp_min(1e-12)
        ax.plot(omegas, (values - values.min()) / span, label=name)
    ax.axvline(omega_star, color="k", linestyle="--", linewidth=1, label=f"ω* = {omega_star:g}")
    ax.set(xlabel="ω", ylabel="loss (scaled to [0, 1])", title=title)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)
