"""``learnedloss check``, ``plot`` and ``export``: the `learnedloss.inspection` tools as
commands (`learnedloss.cli.commands.Command`).

Each loads one loss by name, directory or Hub id, runs its tool, and turns a user's mistake
(a missing loss, a bad file, a range the loss cannot take) into ``learnedloss: error: ...``
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from learnedloss.cli.command import Command
from learnedloss.cli.common import report_error
from learnedloss.errors import CheckpointError, ConfigError

USER_ERRORS = (OSError, ValueError, ConfigError, CheckpointError)
"""What loading and inspecting a loss raise for a user's mistake."""

RANGE_OPTIONS = (
    ("target", "targets to probe (regression; default: from the loss's metadata)"),
    ("residual", "prediction - target to probe (regression; default: from the metadata)"),
    ("logit", "labelled-class logits to probe (classification; default -10 10)"),
)
"""The ``--NAME-range LO HI`` options every inspection command takes."""


def add_range_options(parser: argparse.ArgumentParser) -> None:
    """``--target-range``, ``--residual-range`` and ``--logit-range``."""
    for name, help in RANGE_OPTIONS:
        parser.add_argument(f"--{name}-range", nargs=2, type=float, metavar=("LO", "HI"), help=help)


def ranges_from(args: argparse.Namespace) -> dict[str, tuple[float, float]] | None:
    """The ranges the options give, ``None`` when none is given (the loss's own)."""
    out = {}
    for name, _ in RANGE_OPTIONS:
        value = getattr(args, f"{name}_range", None)
        if value is not None:
            out[name] = tuple(value)
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

        report = check(loss, ranges_from(args))
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
            default=["mse", "huber"],
            choices=["mse", "huber", "l1"],
            help="reference losses to draw (default: mse huber)",
        )
        parser.add_argument("--out", metavar="PNG", help="output file (default: NAME.png)")

    def inspect(self, loss, args: argparse.Namespace) -> int:
        from learnedloss.inspection import plot_loss

        out = args.out or f"{Path(str(args.name)).name}.png"
        plot_loss(loss, tuple(args.vs), ranges=ranges_from(args), out=out, title=args.name)
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
        parser.add_argument("--out", metavar="DIR", required=True, help="directory to write")
        parser.add_argument(
            "--knots",
            nargs="+",
            type=int,
            metavar="K",
            help="knots per grid axis (default 257 residual, 41 target; 2 classification targets)",
        )

    def inspect(self, loss, args: argparse.Namespace) -> int:
        from learnedloss.inspection import to_grid

        knots = tuple(args.knots) if args.knots else None
        grid, report = to_grid(loss, ranges_from(args), knots)
        grid.save_pretrained(args.out)
        print(json.dumps(report.to_dict(), indent=2))
        return 0
