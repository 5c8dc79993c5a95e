"""The mountain-car family's picture: the trained policies' roll-outs (needs the ``plot``
extra)."""

from __future__ import annotations

from pathlib import Path

import torch

from learnedloss.evaluation.plots import pyplot, save_figure


def plot_trajectories(
    positions: dict[str, torch.Tensor],
    path: str | Path,
    title: str = "mountain car from (-0.55, 0): trained policies' roll-outs",
) -> Path:
    """Write a PNG of mountain-car positions over time, one panel per loss (see
    `recipe.compare_driving`): every run thin, the goal and the waypoint
    dashed."""
    from learnedloss.envs.mountain_car import GOAL_POSITION
    from learnedloss.families.mountain_car.tasks import WAYPOINT_POSITION

    plt = pyplot()
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
    return save_figure(plt, fig, path)
