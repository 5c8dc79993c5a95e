"""Option validators: each turns the text of a command-line value into a checked value, or
raises `argparse.ArgumentTypeError` saying why not.

They sit at the bottom of the layers, so that a setting's declaration (`learnedloss.meta.settings`,
the families' recipes) can name its validator and the command line (`learnedloss.cli`) apply
it, without either importing the other.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Sequence
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


def bounded_int(largest: int) -> Callable[[str], int]:
    """A validator of an integer in ``[1, largest]``: a size that is allocated, capped before
    the allocation."""

    def validate(text: str) -> int:
        value = positive_int(text)
        if value > largest:
            raise argparse.ArgumentTypeError(f"{text!r} is more than the largest size, {largest}")
        return value

    validate.__name__ = f"size_up_to_{largest}"
    return validate


def torch_device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``meta``...;
    refused when torch does not know the name or the device is not available here."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:0, mps)"
        ) from None
    available = {
        "cuda": (torch.cuda.is_available, torch.cuda.device_count),
        "mps": (torch.backends.mps.is_available, lambda: 1),
    }
    if device.type in available:
        is_available, count = available[device.type]
        if not is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this torch has no {device.type} device available; use cpu"
            )
        if device.index is not None and device.index >= count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: there are {count()} {device.type} devices (0 to {count() - 1})"
            )
    return text


def check_range(bounds: Sequence[float], name: str, *, empty_ok: bool = False) -> None:
    """Raise `ValueError` unless ``bounds`` is ``(low, high)`` of finite numbers with
    ``low < high`` (``low <= high`` with ``empty_ok``: a range that may be one value).
    ``name`` names the range in the message."""
    if len(bounds) != 2:
        raise ValueError(f"{name} must be (low, high), got {tuple(bounds)}")
    low, high = bounds
    if not all(isinstance(b, (int, float)) and math.isfinite(b) for b in (low, high)):
        raise ValueError(f"{name} must be two finite numbers, got {tuple(bounds)}")
    if high < low or (high == low and not empty_ok):
        relation = "<=" if empty_ok else "<"
        raise ValueError(
            f"{name} must be (low, high) with low {relation} high, got ({low}, {high})"
            + (": it is reversed" if high < low else ": it is empty")
        )


def interval(bounds: Sequence[float], name: str) -> None:
    """`check_range` of a range that must hold more than one value (``x_range``)."""
    check_range(bounds, name)


def value_range(bounds: Sequence[float], name: str) -> None:
    """`check_range` of a range a value is drawn from, which may be one value
    (``amplitude``: ``(2, 2)`` fixes it) but never reversed."""
    check_range(bounds, name, empty_ok=True)


def check_writable(text: str | os.PathLike, what: str) -> None:
    """Raise `OSError` unless ``text`` can be written: a directory (existing or not) or a
    file's parent can be created, and the deepest existing directory on its path takes a
    new file (probed by writing one and removing it, so that read-only mounts, permissions
    and special file systems are all caught before any work)."""
    path = Path(text).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise OSError(f"{what} {str(text)!r} cannot be written: {str(existing)!r} is a file")
    try:
        handle, probe = tempfile.mkstemp(prefix=".learnedloss-probe-", dir=existing)
    except OSError as err:
        raise OSError(
            f"{what} {str(text)!r} cannot be written: {str(existing)!r} takes no new file "
            f"({err.strerror or err})"
        ) from None
    os.close(handle)
    os.unlink(probe)


def output_file_or_dir(text: str) -> str:
    """A file to write, or an existing directory to write a file of its own name in; no
    existing parent is a file."""
    _check_parents(Path(text), text)
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
