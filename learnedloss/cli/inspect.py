"""``learnedloss check``, ``plot`` and ``export``: the `learnedloss.inspection` tools as
commands (`learnedloss.cli.commands.Command`).

Each loads one loss by name, directory or Hub id, runs its tool, and turns a user's mistake
(a missing loss, a bad file, a range the loss cannot take) into ``learnedloss: error: ...``
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from learnedloss.cli.command import Command
from learnedloss.cli.common import check_outputs, check_ranges, fail, report_error
from learnedloss.errors import CheckpointError, ConfigError
from learnedloss.validators import bounded_int, output_dir, output_file_or_dir

USER_ERRORS = (OSError, ValueError, ConfigError, CheckpointError)
"""What loading and inspecting a loss raise for a user's mistake."""

RANGE_OPTIONS = (
    ("target", "regression", "targets to probe (regression; default: from the loss's metadata)"),
    (
        "residual",
        "regression",
        "prediction - target to probe (regression; default: from the metadata)",
    ),
    ("logit", "classification", "labelled-class logits to probe (classification; default -10 10)"),
)
"""The ``--NAME-range LO HI`` options every inspection command takes: ``(name, the kind of
loss it applies to, help)``."""

MAX_GRID_KNOTS = 1 << 20
"""The most knots ``export --knots`` allocates, over all axes together (257 x 41 by
default); each axis is capped at it too, before anything is allocated."""


def add_range_options(parser: argparse.ArgumentParser) -> None:
    """``--target-range``, ``--residual-range`` and ``--logit-range``."""
    for name, _, help in RANGE_OPTIONS:
        parser.add_argument(f"--{name}-range", nargs=2, type=float, metavar=("LO", "HI"), help=help)


def ranges_from(args: argparse.Namespace, loss) -> dict[str, tuple[float, float]] | None:
    """The ranges the options give for ``loss``, ``None`` when none is given (the loss's
    own). `fail` for a range that is reversed, empty or not finite, or that does not apply to
    the loss's kind; a regression range given alone is completed from the loss's metadata."""
    from learnedloss.functional.ranges import training_ranges

    check_ranges(args, *(f"{name}_range" for name, _, _ in RANGE_OPTIONS))
    kind = loss.config.kind
    out = {}
    for name, applies_to, _ in RANGE_OPTIONS:
        value = getattr(args, f"{name}_range", None)
        if value is None:
            continue
        if kind != applies_to:
            fail(f"--{name}-range applies to {applies_to} losses; {args.name!r} is a {kind} loss")
        out[name] = tuple(value)
    if kind == "regression" and len(out) == 1:
        try:
            out = {**training_ranges(loss), **out}
        except ValueError:
            fail(
                f"{args.name!r} records no range it was trained on: give both --target-range "
                "and --residual-range"
            )
    return out or None


class InspectionCommand(Command):
    """A command that loads the loss named by its ``NAME`` argument and inspects it."""

    def add_arguments(self, parser: argparse.ArgumentParser, load: Any) -> None:
        parser.add_argument(
            "name", metavar="NAME_OR_PATH", help="bundled name, directory or Hub id"
        )
        self.add_options(parser)
        add_range_options(parser)

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """The command's own options."""

    def run(self, args: argparse.Namespace) -> int:
        from learnedloss.loss import LearnedLoss

        try:
            return self.inspect(LearnedLoss.from_pretrained(args.name), args)
        except (*USER_ERRORS, ImportError) as err:
            report_error(err)
            return 2

    def inspect(self, loss, args: argparse.Namespace) -> int:
        """Inspect the loaded loss; returns the exit status."""
        raise NotImplementedError


class CheckCommand(InspectionCommand):
    """``learnedloss check``: print the `learnedloss.inspection.check` report; exit 0 when
    it passes, 1 when not."""

    name = "check"
    help = "check a loss: finite, minimum at the target, gradient sign and size, batch"
    description = "Check a learned loss over the range it was meta-trained on."

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def inspect(self, loss, args: argparse.Namespace) -> int:
        from learnedloss.inspection import check

        report = check(loss, ranges_from(args, loss))
        print(json.dumps(report.to_dict(), indent=2) if args.json else report)
        return 0 if report.passed else 1


class PlotCommand(InspectionCommand):
    """``learnedloss plot``: write the `learnedloss.inspection.plot_loss` PNG."""

    name = "plot"
    help = "plot a loss and its gradient next to standard losses (PNG)"
    description = "Plot a learned loss and its gradient over the residual at a few targets."

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--vs",
            nargs="+",
            choices=["mse", "huber", "l1"],
            help="regression losses to draw next to a regression loss (default: mse huber)",
        )
        parser.add_argument(
            "--out",
            metavar="PNG",
            type=output_file_or_dir,
            help="output file, or an existing directory to write NAME.png in (default: NAME.png)",
        )

    def inspect(self, loss, args: argparse.Namespace) -> int:
        from learnedloss.inspection import plot_loss

        kind = loss.config.kind
        if args.vs is not None and kind != "regression":
            fail(f"--vs draws regression losses; {args.name!r} is a {kind} loss")
        vs = tuple(args.vs or ("mse", "huber"))
        ranges = ranges_from(args, loss)
        out = Path(args.out or ".")
        if out.is_dir():
            out = out / f"{Path(str(args.name)).name}.png"
        check_outputs(out=out)
        plot_loss(loss, vs if kind == "regression" else (), ranges=ranges, out=out, title=args.name)
        print(out)
        return 0


class ExportCommand(InspectionCommand):
    """``learnedloss export``: export with `learnedloss.inspection.to_grid`, save to
    ``--out`` and print the conversion's errors."""

    name = "export"
    help = "export a loss to the fast grid (spline) form"
    description = "Export a per-element learned loss to the grid form and report its error."

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--grid", action="store_true", required=True, help="export to the grid form (required)"
        )
        parser.add_argument(
            "--out", metavar="DIR", type=output_dir, required=True, help="directory to write"
        )
        parser.add_argument(
            "--knots",
            nargs="+",
            type=bounded_int(MAX_GRID_KNOTS),
            metavar="K",
            help="knots per grid axis (default 257 residual, 41 target; 2 classification "
            f"targets; at most {MAX_GRID_KNOTS} in all)",
        )

    def inspect(self, loss, args: argparse.Namespace) -> int:
        from learnedloss.inspection import to_grid

        knots = tuple(args.knots) if args.knots else None
        if knots is not None and math.prod(knots) > MAX_GRID_KNOTS:
            fail(
                f"--knots {' '.join(map(str, knots))} is {math.prod(knots)} knots in all, more "
                f"than the largest grid, {MAX_GRID_KNOTS}"
            )
        ranges = ranges_from(args, loss)
        check_outputs(out=args.out)
        grid, report = to_grid(loss, ranges, knots)
        grid.save_pretrained(args.out)
        print(json.dumps(report.to_dict(), indent=2))
        return 0
