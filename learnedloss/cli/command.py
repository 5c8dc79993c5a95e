"""`Command`: the one pattern every ``learnedloss`` subcommand follows
(`learnedloss.cli.commands.COMMANDS` lists them)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any, ClassVar


class Command:
    """One ``learnedloss`` subcommand.

    Subclasses set ``name``, ``help`` and ``description`` and define `add_arguments` and
    `run`.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    description: ClassVar[str]

    def add_to(self, subcommands: Any, load: Collection[str]) -> None:
        """Add this command's parser to ``subcommands`` (from ``add_subparsers``); the
        parsed arguments name the command (``args.command``) and hold it
        (``args.run_command``). ``load``: the families whose options are added."""
        parser = subcommands.add_parser(self.name, help=self.help, description=self.description)
        parser.set_defaults(run_command=self)
        self.add_arguments(parser, load)

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        """Add the command's options to its parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; returns the exit status."""
        raise NotImplementedError
