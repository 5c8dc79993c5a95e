"""Pieces the ``learnedloss`` subcommands share (see `learnedloss.cli`): the parser and its
one-line errors, the run options of every ``meta-train FAMILY`` and the loss options of every
``evaluate FAMILY``, the summary of a run, and loading losses. The option validators live in
`learnedloss.validators`."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from learnedloss.errors import (
    CheckpointError,
    CommandLineError,
    ConfigError,
    RunDirectoryError,
    TaskModelError,
    UnknownFamilyError,
)
from learnedloss.validators import (
    check_range,
    check_writable,
    output_dir,
    output_file,
    positive_float,
    positive_int,
    torch_device,
)

# ---------------------------------------------------------------------------------------------
# Errors a user can cause: one line on stderr, exit status 2.


def report_error(message: object) -> str:
    """Print ``learnedloss: error: MESSAGE`` to stderr, on one line; returns the line's
    message. Under ``torchrun`` only rank 0 prints it: every rank makes the same mistake,
    and the others exit quietly with the same status."""
    line = " ".join(str(message).split())
    if is_lead_rank():
        print(f"learnedloss: error: {line}", file=sys.stderr)
    return line


def is_lead_rank() -> bool:
    """Whether this process prints what the job says: rank 0 of a ``torchrun`` job (its
    ``RANK``), or a process outside one."""
    rank = os.environ.get("RANK", "0").strip()
    return not rank.isdigit() or int(rank) == 0


def fail(message: object) -> NoReturn:
    """`report_error` and exit with status 2 (`CommandLineError`)."""
    raise CommandLineError(report_error(message))


def warn(message: str) -> None:
    """Print ``learnedloss: warning: MESSAGE`` to stderr (rank 0 only under ``torchrun``)."""
    if is_lead_rank():
        print(f"learnedloss: warning: {message}", file=sys.stderr)


USER_ERRORS = (ConfigError, CheckpointError, RunDirectoryError, TaskModelError, UnknownFamilyError)
"""The library's errors that a command line can cause before any work: `learnedloss.cli.main`
turns any of them that a command lets through into one ``learnedloss: error:`` line."""


def check_outputs(**outputs: str | os.PathLike | None) -> None:
    """`fail` unless every given output (``{option name: path}``; ``None``: not given) can be
    written, before any work starts (`learnedloss.validators.check_writable`)."""
    for option, path in outputs.items():
        if path is not None:
            try:
                check_writable(path, "--" + option.replace("_", "-"))
            except OSError as err:
                fail(err)


def check_ranges(args: argparse.Namespace, *options: str, empty_ok: bool = False) -> None:
    """`fail` when a ``LOW HIGH`` option among ``options`` (dests) is reversed, empty or not
    finite (`learnedloss.validators.check_range`)."""
    for option in options:
        value = getattr(args, option, None)
        if value is not None:
            try:
                check_range(value, "--" + option.replace("_", "-"), empty_ok=empty_ok)
            except ValueError as err:
                fail(err)


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, ``learnedloss: error: ...``
    with a pointer to ``--help`` (argparse's default prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------
# ``learnedloss meta-train FAMILY``


def add_training_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every ``learnedloss meta-train FAMILY``: where to save, checkpoints,
    a wall-clock budget, the device and the threads."""
    add = parser.add_argument
    add("--out", required=True, type=output_dir, help="directory to save the loss in")
    add("--run-dir", type=output_dir, help="directory for the trainer's checkpoints")
    add("--resume", action="store_true", help="continue the run checkpointed in --run-dir")
    add(
        "--overwrite",
        action="store_true",
        help="start afresh in a --run-dir that holds a previous run: remove its checkpoints "
        "(other files stay)",
    )
    add(
        "--max-minutes",
        type=positive_float,
        help="wall-clock budget: stop early, save the best loss so far (resumable)",
    )
    add(
        "--device",
        type=torch_device,
        default="cpu",
        help="the torch device to meta-train on (default: cpu)",
    )
    add("--threads", type=positive_int, default=1, help="torch intra-op threads (default: 1)")


def save_or_rescue(save: Callable[[Path], Path], out: str | Path) -> Path | None:
    """``save(out)``; when that write fails at the end of a run, ``save`` to a fresh
    ``learnedloss-rescued-*`` directory instead (in the working directory, else the temporary
    one), so the work is kept, and print one error line that says where it went. Returns
    where it was saved as asked, or ``None`` when it was rescued (or lost)."""
    try:
        return save(Path(out))
    except OSError as err:
        failure = f"cannot save to {str(out)!r} ({err})"
    for parent in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            fallback = Path(tempfile.mkdtemp(prefix="learnedloss-rescued-", dir=parent))
            save(fallback)
        except OSError:
            continue
        report_error(f"{failure}; the result was saved to {fallback} instead")
        return None
    report_error(f"{failure}, nor to a learnedloss-rescued-* directory: the result is lost")
    return None


def print_training_summary(trainer, out: str | Path) -> None:
    """What ``learnedloss meta-train`` prints when it is done."""
    steps = trainer.history[-1]["step"] if trainer.history else trainer.step
    print(
        f"meta-trained {steps} outer steps on the {trainer.path} path; best "
        f"meta-validation {trainer.best_score:.4g} at step {trainer.best_step}"
    )
    if trainer.keep == "last":
        print(f"kept the loss after the last step ({trainer.step})")
    print(f"saved to {out}")


# ---------------------------------------------------------------------------------------------
# ``learnedloss evaluate FAMILY LOSS [LOSS ...]``

LOAD_ERRORS = (OSError, ConfigError, CheckpointError)
"""What loading a loss raises for a user's mistake (a missing path or name, a bad file)."""


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every ``learnedloss evaluate FAMILY``: the losses, ``--seeds``,
    ``--json`` and ``--threads``."""
    add = parser.add_argument
    add(
        "losses",
        nargs="+",
        metavar="LOSS",
        help="NAME=PATH_OR_NAME pairs, or plain directories, bundled names or Hub repo "
        "ids (named after their last path component)",
    )
    add(
        "--seeds",
        type=positive_int,
        default=1,
        help="repeat with this many evaluation seeds (default: %(default)s)",
    )
    add("--json", type=output_file, help="write the results to this JSON file")
    add("--threads", type=positive_int, default=1, help="torch intra-op threads (default: 1)")


def named_losses(specs: list[str]) -> dict:
    """``NAME=PATH_OR_NAME`` pairs (or plain paths and bundled names, named after their last
    path component) loaded as ``{name: LearnedLoss}``. Raises what loading raises."""
    from learnedloss.loss import LearnedLoss

    losses = {}
    for name, source in loss_specs(specs):
        losses[name] = LearnedLoss.from_pretrained(source)
    return losses


def loss_specs(specs: list[str]) -> list[tuple[str, str]]:
    """``(name, source)`` of each ``NAME=PATH_OR_NAME`` (or plain path or name)."""
    pairs = []
    for spec in specs:
        name, _, source = spec.rpartition("=")
        pairs.append((name or Path(source).name, source))
    return pairs


def load_losses(specs: list[str], kind: str | None = None) -> dict:
    """`named_losses`, with each user mistake (a missing path or name, an unreadable
    checkpoint, a repeated name, a loss of another ``kind``) reported by `fail`."""
    from learnedloss.loss import LearnedLoss

    losses = {}
    for name, source in loss_specs(specs):
        if not source:
            fail(f"{name}=: no path or name after '='")
        if name in losses:
            fail(f"two losses are named {name!r}; name them with NAME=PATH_OR_NAME")
        try:
            loss = LearnedLoss.from_pretrained(source)
        except LOAD_ERRORS as err:
            fail(f"cannot load the loss {source!r}: {err}")
        if kind is not None and loss.config.kind != kind:
            fail(f"{source!r} is a {loss.config.kind} loss, this family evaluates {kind} losses")
        losses[name] = loss
    return losses


def check_plotting(args: argparse.Namespace) -> None:
    """With ``--plot``, fail now (not after the evaluation) when matplotlib is missing."""
    if getattr(args, "plot", None) and importlib.util.find_spec("matplotlib") is None:
        fail("--plot needs matplotlib: pip install 'learnedloss[plot]'")


def write_json(path: str | Path, results: Any) -> None:
    """Write ``results`` as indented JSON (creating missing parent directories)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
