"""The ``learnedloss`` command: `learnedloss.cli.main.main` (also ``python -m learnedloss``)."""

from learnedloss.cli.main import build_parser, describe, main

__all__ = ["build_parser", "describe", "main"]
