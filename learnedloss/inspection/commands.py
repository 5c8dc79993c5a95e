"""``learnedloss check``, ``plot`` and ``export``: subcommands for the main parser.

`add_parsers` adds them to an ``argparse`` subparsers object; each sets ``func`` to its
``run_*`` function, which takes the parsed arguments and returns an exit status. Errors
print ``learnedloss: error: ...`` to stderr and return 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _errors() -> tuple[type[BaseException], ...]:
    from learnedloss.errors import CheckpointError, ConfigError

    return (OSError, ValueError, ConfigError, CheckpointError)


_ERRORS = _errors()


def _error(message: str) -> int:
    print(f"learnedloss: error: {message}", file=sys.stderr)
    return 2


def _ranges(args: argparse.Namespace) -> dict | None:
    out = {}
    for name in ("target", "residual", "logit"):
        value = getattr(args, f"{name}_range", None)
        if value is not None:
            out[name] = tuple(value)
    return out or None


def _add_range_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="targets to probe (regression; default: from the loss's metadata)",
    )
    parser.add_argument(
        "--residual-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="prediction - target to probe (regression; default: from the metadata)",
    )
    parser.add_argument(
        "--logit-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="labelled-class logits to probe (classification; default -10 10)",
    )


def add_parsers(subparsers) -> None:
    """Add ``check``, ``plot`` and ``export`` to ``subparsers`` (from ``add_subparsers``)."""
    check = subparsers.add_parser(
        "check",
        help="check a loss: finite, minimum at the target, gradient sign and size, batch",
        description="Check a learned loss over the range it was meta-trained on.",
    )
    check.add_argument("name", metavar="NAME_OR_PATH", help="bundled name, directory or Hub id")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_range_options(check)
    check.set_defaults(func=run_check)

    plot = subparsers.add_parser(
        "plot",
        help="plot a loss and its gradient next to standard losses (PNG)",
        description="Plot a learned loss and its gradient over the residual at a few targets.",
    )
    plot.add_argument("name", metavar="NAME", help="bundled name, directory or Hub id")
    plot.add_argument(
        "--vs",
        nargs="+",
        default=["mse", "huber"],
        choices=["mse", "huber", "l1"],
        help="reference losses to draw (default: mse huber)",
    )
    plot.add_argument("--out", metavar="PNG", help="output file (default: NAME.png)")
    _add_range_options(plot)
    plot.set_defaults(func=run_plot)

    export = subparsers.add_parser(
        "export",
        help="export a loss to the fast grid (spline) form",
        description="Export a per-element learned loss to the grid form and report its error.",
    )
    export.add_argument("name", metavar="NAME", help="bundled name, directory or Hub id")
    export.add_argument(
        "--grid", action="store_true", required=True, help="export to the grid form (required)"
    )
    export.add_argument("--out", metavar="DIR", required=True, help="directory to write")
    export.add_argument(
        "--knots",
        nargs="+",
        type=int,
        metavar="K",
        help="knots per grid axis (default 257 residual, 41 target; 2 classification targets)",
    )
    _add_range_options(export)
    export.set_defaults(func=run_export)


def _load(name: str):
    from learnedloss import LearnedLoss

    return LearnedLoss.from_pretrained(name)


def run_check(args: argparse.Namespace) -> int:
    """Print the `learnedloss.inspection.check` report; exit 0 when it passes, 1 when not."""
    from learnedloss.inspection import check

    try:
        report = check(_load(args.name), _ranges(args))
    except _ERRORS as err:
        return _error(str(err))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.passed else 1


def run_plot(args: argparse.Namespace) -> int:
    """Write the `learnedloss.inspection.plot_loss` PNG."""
    from learnedloss.inspection import plot_loss

    out = args.out or f"{Path(str(args.name)).name}.png"
    try:
        plot_loss(_load(args.name), tuple(args.vs), ranges=_ranges(args), out=out, title=args.name)
    except (*_ERRORS, ImportError) as err:
        return _error(str(err))
    print(out)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export with `learnedloss.inspection.to_grid`, save to ``--out``, print the errors."""
    from learnedloss.inspection import to_grid

    try:
        grid, report = to_grid(
            _load(args.name), _ranges(args), tuple(args.knots) if args.knots else None
        )
    except _ERRORS as err:
        return _error(str(err))
    grid.save_pretrained(args.out)
    print(json.dumps(report.to_dict(), indent=2))
    return 0
