"""Export every bundled loss that can be to the grid form and report the errors.

    python scripts/export_bundled_grid.py                 # report only
    python scripts/export_bundled_grid.py --out runs/grid # also write the grid checkpoints

It does not touch pretrained/: whether a bundled loss ships in its grid form is decided from
this report (and the hold-out evaluation of the exported loss). Losses that read side inputs
(a grid has at most two axes) are listed as not exportable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from learnedloss import LearnedLoss, bundled_names
from learnedloss.inspection import to_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write each exported loss to OUT/NAME")
    parser.add_argument("--knots", nargs="+", type=int, help="knots per grid axis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| loss | grid | range | max value error (relative) | max gradient error (relative) |")
    print("|---|---|---|---|---|")
    for name in bundled_names():
        loss = LearnedLoss.from_pretrained(name)
        try:
            grid, report = to_grid(loss, knots=tuple(args.knots) if args.knots else None)
        except ValueError as err:
            print(f"| {name} | not exportable | | {err} | |")
            continue
        ranges = ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in report.ranges.items())
        print(
            f"| {name} | {' × '.join(map(str, report.knots))} | {ranges} | "
            f"{report.value_error:.3g} ({report.relative_value_error:.2%}) | "
            f"{report.gradient_error:.3g} ({report.relative_gradient_error:.2%}) |"
        )
        if args.out:
            grid.save_pretrained(Path(args.out) / name, repo_id=f"{name}-grid")


if __name__ == "__main__":
    main()
