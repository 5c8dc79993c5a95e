"""Trainer checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory ``step-NNNNNNN`` under the run directory, and a file ``latest``
names the newest one. A checkpoint is written into a temporary directory, renamed into place,
and only then does ``latest`` move (by ``os.replace``), so a run killed at any moment leaves
either the previous checkpoint or the new one, never a half-written one.

Those entries (``step-NNNNNNN``, ``latest`` and their temporary ``.step-NNNNNNN.tmp`` and
``.latest.tmp``) are a trainer's own files: `trainer_files` lists them and
`clear_trainer_files` removes them and nothing else. Pruning after a write keeps the newest
checkpoints at or below the step just written and never removes that one or a later one, so
``latest`` always names a checkpoint that exists.

Reading checks what it reads: ``latest`` must name a ``step-NNNNNNN`` directory inside the
run directory (never a path elsewhere), every file is read up to a size cap, and a
truncated, empty or foreign ``tensors.safetensors``, a ``state.json`` that is not JSON or
names a tensor the file lacks, and NaN or infinite values are each a `CheckpointError` that
names the file and what is wrong.

This is the file format only; when a run may write, overwrite or resume in a directory is
`learnedloss.meta.run_directory.RunDirectory`'s business.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learnedloss.errors import CheckpointError
from learnedloss.hub import read_capped, read_safetensors_header

_TENSOR = "__tensor__"
_STEP = re.compile(r"\.?step-(\d{7})(\.tmp)?")
_CHECKPOINT_NAME = re.compile(r"step-\d{7}")

TENSORS_NAME = "tensors.safetensors"
STATE_NAME = "state.json"
MAX_STATE_BYTES = 256 * 2**20
"""``state.json`` files larger than this are refused (a run's history of 10^5 steps is
about 20 MB)."""


def split_tensors(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list by a reference; collect the tensors."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(tree, dict):
        return {str(k): split_tensors(v, f"{prefix}.{k}", tensors) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    return tree


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `split_tensors` (tuples come back as lists).

    Raises:
        KeyError: ``tree`` refers to a tensor ``tensors`` lacks (its name is the key).
    """
    if isinstance(tree, dict):
        if set(tree) == {_TENSOR}:
            return tensors[tree[_TENSOR]]
        return {k: join_tensors(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    return tree


def write_state(run_dir: str | os.PathLike, step: int, state: dict[str, Any], keep: int = 2):
    """Write ``state`` (nested dicts/lists of JSON values and tensors) as checkpoint ``step``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split_tensors(state, "state", tensors)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"refusing to checkpoint non-finite values in {name!r}")
    final = run_dir / f"step-{step:07d}"
    tmp = run_dir / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(tensors, str(tmp / TENSORS_NAME))
    (tmp / STATE_NAME).write_text(json.dumps(skeleton, indent=1))
    # safetensors writes 0600; give it the mode (umask) the state file got
    os.chmod(tmp / TENSORS_NAME, stat.S_IMODE((tmp / STATE_NAME).stat().st_mode))
    _fsync_dir(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = run_dir / ".latest.tmp"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, run_dir / "latest")
    # only this run's older checkpoints: never the one just written, nor a later one
    older = sorted(p for p in run_dir.glob("step-*") if _step_of(p.name) <= step)
    for old in older[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_of(name: str) -> int:
    """The step of a checkpoint directory's name (``step-0000012``: 12), or -1."""
    match = _STEP.fullmatch(name)
    return int(match.group(1)) if match else -1


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def has_checkpoint(run_dir: str | os.PathLike | None) -> bool:
    """Whether a run directory holds a trainer checkpoint to resume from."""
    return run_dir is not None and (Path(run_dir) / "latest").is_file()


def read_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read the newest checkpoint of a run directory.

    Raises:
        FileNotFoundError: the directory holds no checkpoint (no ``latest`` file).
        CheckpointError: ``latest`` names no checkpoint of this directory, or a file of the
            checkpoint is missing, truncated, too large or corrupt (the message names it).
    """
    directory = latest_checkpoint(run_dir)
    tensors_path, state_path = directory / TENSORS_NAME, directory / STATE_NAME
    tensors = _read_tensors(tensors_path)
    try:
        raw = read_capped(state_path, MAX_STATE_BYTES)
        if raw is None:
            raise ValueError(f"it is larger than the {MAX_STATE_BYTES} bytes a state may have")
        skeleton = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(
            f"trainer checkpoint file {state_path} is unreadable: {err}"
        ) from None
    try:
        return join_tensors(skeleton, tensors)
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"trainer checkpoint file {state_path} refers to tensor {err}, which "
            f"{tensors_path} does not hold: the two files come from different checkpoints "
            "or one of them was edited"
        ) from None


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint directory ``latest`` names: a ``step-NNNNNNN`` directory of
    ``run_dir`` itself, never a path elsewhere (nor a link out of it).

    Raises:
        FileNotFoundError: no ``latest`` file.
        CheckpointError: ``latest`` names anything else.
    """
    run_dir = Path(run_dir)
    latest = run_dir / "latest"
    if not latest.is_file():
        raise FileNotFoundError(f"{run_dir} holds no trainer checkpoint (no 'latest' file)")
    raw = read_capped(latest, 64) or b""
    name = raw.decode("utf-8", errors="replace").strip()
    directory = run_dir / name
    if not _CHECKPOINT_NAME.fullmatch(name):
        raise CheckpointError(
            f"{latest} names {name[:80]!r}, not a checkpoint of this run directory "
            "('step-NNNNNNN'); resume never leaves the run directory. Restore the file or "
            "start a fresh run"
        )
    if directory.is_symlink() or not directory.is_dir():
        raise CheckpointError(
            f"{latest} names {name!r}, which is "
            + ("a link (perhaps out of the run directory)" if directory.is_symlink() else "missing")
            + f" in {run_dir}; resume reads checkpoints of the run directory only"
        )
    return directory


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's ``tensors.safetensors``, checked whole and finite."""
    if not path.is_file():
        raise CheckpointError(f"trainer checkpoint file {path} is missing")
    read_safetensors_header(path)  # CheckpointError naming the file: empty, truncated, ...
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"trainer checkpoint file {path} is unreadable: {err}") from None
    for name, tensor in sorted(tensors.items()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"trainer checkpoint file {path}: tensor {name!r} holds NaN or infinite "
                "values (a run never writes them: the file is corrupt)"
            )
    return tensors


def trainer_files(run_dir: str | os.PathLike) -> list[Path]:
    """A trainer's own entries in ``run_dir``: its ``step-NNNNNNN`` checkpoints, the
    ``latest`` file naming one, and the temporary ``.step-NNNNNNN.tmp`` and
    ``.latest.tmp`` a killed write leaves (sorted; none when the directory does not exist)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for path in run_dir.iterdir():
        if path.name in ("latest", ".latest.tmp"):
            text = path.read_text(errors="replace").strip() if path.is_file() else ""
            if _STEP.fullmatch(text) or path.name == ".latest.tmp":
                found.append(path)
        elif _STEP.fullmatch(path.name) and path.is_dir():
            found.append(path)
    return sorted(found)


def other_files(run_dir: str | os.PathLike) -> list[Path]:
    """The entries of ``run_dir`` that are not a trainer's own (`trainer_files`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    own = set(trainer_files(run_dir))
    return sorted(p for p in run_dir.iterdir() if p not in own)


def clear_trainer_files(run_dir: str | os.PathLike, subdirectories: bool = False) -> list[Path]:
    """Remove a trainer's own files from ``run_dir`` (`trainer_files`), and with
    ``subdirectories`` those of its immediate subdirectories too (where runs of several
    stages keep theirs); every other file stays. Returns what was removed."""
    run_dir = Path(run_dir)
    places = [run_dir]
    if subdirectories and run_dir.is_dir():
        own = trainer_files(run_dir)
        places += sorted(p for p in run_dir.iterdir() if p.is_dir() and p not in own)
    removed = []
    for place in places:
        for path in trainer_files(place):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed
