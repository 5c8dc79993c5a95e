"""Option validators: each turns the text of a command-line value into a checked value, or
raises `argparse.ArgumentTypeError` saying why not.

They sit at the bottom of the layers, so that a setting's declaration (`learnedloss.meta.settings`,
the families' recipes) can name its validator and the command line (`learnedloss.cli`) apply
it, without either importing the other.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def positive_int(text: str) -> int:
    """An integer > 0."""
    value = _parse(int, text, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _parse(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def count_or_all(text: str) -> int | None:
    """An integer >= 0, where 0 means "all" (``None``)."""
    return non_negative_int(text) or None


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a scale, minutes)."""
    value = _parse(float, text, "a number")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _parse(float, text, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _parse(float, text, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in [0, 1]")
    return value


def output_dir(text: str) -> str:
    """A directory to write into: it may exist as a directory, but not as a file, and no
    existing parent may be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    _check_parents(path, text)
    return text


def output_file(text: str) -> str:
    """A file to write: not an existing directory, and no existing parent is a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    _check_parents(path, text)
    return text


def _parse(cast: Callable[[str], T], text: str, what: str) -> T:
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _check_parents(path: Path, text: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r}: {str(parent)!r} is a file")
            return
