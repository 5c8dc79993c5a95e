"""Draw every bundled loss next to the standard losses into docs/gallery/ (docs/gallery.md).

    python scripts/make_gallery.py

Losses that read side inputs are drawn with the side inputs at 0; those whose metadata
records no training range use the ranges below. ``NAME-mlp`` (the MLP form of a loss that
ships as a grid) is the same function as ``NAME`` and is not drawn again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from learnedloss import LearnedLoss, bundled_names
from learnedloss.bundled import bundled_path
from learnedloss.inspection import plot_loss

FALLBACK_RANGES = {"target": (-5.0, 5.0), "residual": (-10.0, 10.0)}


def main() -> None:
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parents[1] / "docs" / "gallery"
    out.mkdir(parents=True, exist_ok=True)
    for name in bundled_names():
        if bundled_path(name.removesuffix("-mlp")) is not None and name.endswith("-mlp"):
            print(f"{name}: the MLP form of {name.removesuffix('-mlp')}, drawn under that name")
            continue
        loss = LearnedLoss.from_pretrained(name)
        try:
            plot_loss(loss, out=out / f"{name}.png", title=name)
        except ValueError:
            plot_loss(loss, ranges=FALLBACK_RANGES, out=out / f"{name}.png", title=f"{name}")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
