"""The ``learnedloss`` command (also ``python -m learnedloss``).

Subcommands:

- ``learnedloss list``: the losses bundled with this installation.
- ``learnedloss info NAME_OR_PATH``: a loss's config and model-card summary.
- ``learnedloss build-kernels``: compile the fused CPU kernels ahead of first use
  (`learnedloss.kernels`).
- ``learnedloss meta-train FAMILY ...``: meta-train a loss on a task family.
- ``learnedloss evaluate FAMILY LOSS [LOSS ...]``: score losses on the family's held-out tasks
  against its baselines.
- ``learnedloss check NAME_OR_PATH``, ``learnedloss plot NAME``, ``learnedloss export NAME
  --grid``: look at a loss, check that it is sane, turn it into the fast grid form
  (`learnedloss.inspection`).
- ``learnedloss demo``: a pretrained loss on real data it never saw, against tuned baselines
  (``--meta-train``: meta-train a robust sine loss first), in minutes.

Each subcommand is a `learnedloss.cli.commands.Command`; this module builds the parser from
`learnedloss.cli.commands.COMMANDS` and runs the one chosen. The families are those of
`learnedloss.families.registry`; the commands loop over them and import none by name.

A mistake on the command line (an unknown family, a loss that cannot be loaded, a bad value,
a ``--run-dir`` that holds another run without ``--resume`` or ``--overwrite``, an output that
cannot be written, a device this machine lacks, a reversed range, an option that does not
apply) prints one line ``learnedloss: error: ...`` on stderr and exits with status 2 before
anything runs; under ``torchrun`` rank 0 prints it and the other ranks exit quietly. A
meta-training run that cannot train (every meta-gradient not finite, or the loss never
changed) prints one such line, saves nothing and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from learnedloss._version import __version__
from learnedloss.cli.commands import COMMANDS
from learnedloss.cli.common import USER_ERRORS, ArgumentParser, fail
from learnedloss.cli.info import describe
from learnedloss.families.registry import names

__all__ = ["build_parser", "describe", "main"]

FAMILY_COMMANDS = ("meta-train", "evaluate")
"""The commands whose second word is a family."""


def build_parser(families: Iterable[str] | None = None) -> ArgumentParser:
    """The parser of ``learnedloss``. ``families``: the families whose options are added
    (default: all; each one imports its family). The others are listed with no options."""
    load = set(names() if families is None else families)
    parser = ArgumentParser(
        prog="learnedloss", description="Learned loss functions for PyTorch (ML3)."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"learnedloss {__version__}",
        help="print the version and exit",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(subcommands, load)
    return parser


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``learnedloss`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.
    Mistakes on the command line raise `SystemExit` with status 2 after one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = argv[1:2] if argv[:1] and argv[0] in FAMILY_COMMANDS else []
    args = build_parser(families=[n for n in selected if n in names()]).parse_args(argv)
    _set_threads(args)
    try:
        return args.run_command.run(args)
    except USER_ERRORS as err:  # e.g. a recipe whose loss config is refused
        fail(err)


if __name__ == "__main__":
    raise SystemExit(main())
