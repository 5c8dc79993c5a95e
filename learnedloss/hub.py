"""Checkpoint files on disk and on the Hugging Face Hub.

A checkpoint is a directory with three files:

- ``model.safetensors``: the loss network's tensors (never a pickle),
- ``config.json``: the architecture and metadata (see `learnedloss.config`),
- ``README.md``: the model card (see `learnedloss.card`).

This module reads and writes those files, resolves a name to such a directory (a local path,
a bundled loss or a Hub repo id through ``huggingface_hub``'s cache), and uploads one in a
single Hub commit. It works on plain configs and tensors (it never imports
`learnedloss.LearnedLoss`, whose loading and saving call it); it builds a loss network only on
the ``meta`` device, to learn the tensor shapes a config needs without allocating them.

**One writer at a time.** A save and a read hold the directory's inter-process lock
(`learnedloss.locking`, kept outside the directory), so two processes that save into one
directory take turns (the last one's checkpoint stays, whole), and a process that reads
while another saves gets the checkpoint before or after the save, never a mix of the two.

**Writing is all or nothing** (`write_checkpoint`). The three files are first written into a
fresh hidden journal directory inside the checkpoint directory, ``.learnedloss-save-*/``,
and flushed to disk; a ``COMMITTED`` marker written last (by rename) is the commit point.
Only then are the files moved into place (each by an atomic rename of a hard link), and the
journal is removed, its marker first. A writer killed after its commit point leaves its
journal behind: the next reader or writer (holding the lock, so that writer is dead)
finishes the move when it had begun (some files in place, others not: the directory holds a
mix) and otherwise keeps the visible files, which are whole. So a hidden journal never wins
over whole visible files, after an interrupt at any point a reader gets the old checkpoint
or the new one, and the user's other files in the directory are never touched. Besides, the
weights file records the architecture it was saved with, so a ``config.json`` from another
save with the same shapes (another activation, say) is refused with a `CheckpointError`
instead of computing another function.

**Reading checks before it allocates.** Every file is read up to a size cap only
(`MAX_CONFIG_BYTES`, `MAX_HEADER_BYTES`, `MAX_WEIGHTS_BYTES`, `MAX_CARD_BYTES`). The tensor
names, shapes and dtypes in the weights file's header are compared with those the config
needs (from a module built on the ``meta`` device) before any tensor is loaded, so a
``config.json`` that claims huge layers fails fast; the weights must then be dense, finite
and at most `MAX_ABS_WEIGHT` in magnitude.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import math
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
    hf_hub_download,
)
from huggingface_hub.utils import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    validate_repo_id,
)
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from learnedloss.bundled import bundled_names, bundled_path
from learnedloss.card import render_model_card
from learnedloss.config import (
    SCHEMA_VERSION,
    LossConfig,
    config_from_json_dict,
    config_to_json_dict,
)
from learnedloss.errors import CardWarning, CheckpointError, ConfigError, LossNotFoundError
from learnedloss.locking import DirectoryLock
from learnedloss.networks import build_network

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
CHECKPOINT_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
"""The files of a checkpoint, in the order they are moved into place."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Weight-file endings that are (or usually are) pickles. learnedloss never loads them."""

JOURNAL_PREFIX = ".learnedloss-save-"
"""Name prefix of the hidden directory a save writes into before its commit point."""
COMMIT_MARKER = "COMMITTED"
"""The file whose presence in a journal directory says the journal holds a whole checkpoint."""

ARCHITECTURE_KEY = "learnedloss.architecture"
"""Key, in the safetensors header's string metadata, of the architecture the weights were
saved with (the JSON of `LossConfig.to_dict`)."""

MAX_CONFIG_BYTES = 16 * 2**20
"""``config.json`` files larger than this are refused (metadata is provenance, not data)."""
MAX_HEADER_BYTES = 16 * 2**20
"""safetensors headers larger than this are refused (a loss network has a few tensors)."""
MAX_WEIGHTS_BYTES = 2**30
"""Weights files larger than this are refused (the bundled losses' are under 100 kB)."""
MAX_CARD_BYTES = 2**20
"""Model cards larger than this are not read: the loss loads without its card, with a
`learnedloss.errors.CardWarning` (the bundled cards are under 20 kB)."""
MAX_ABS_WEIGHT = 1e15
"""Weights of a larger magnitude are refused, on saving and loading: no trained loss has
them, and float32 arithmetic on them overflows (a square of 2e19 is inf), so such a loss
would be inf or NaN on ordinary inputs."""

LOCK_TIMEOUT_SECONDS = 300.0
"""How long a save or a read waits for another process's save into the same directory."""
_LOCK_PURPOSE = "checkpoint"

_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_TORCH_DTYPE_NAMES = {
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
}
_OTHER_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "I32": 4,
    "U32": 4,
    "I64": 8,
    "U64": 8,
}


@dataclass
class Checkpoint:
    """What a checkpoint directory holds, validated.

    Attributes:
        config: the loss architecture.
        metadata: provenance and results from ``config.json``.
        tensors: the weights, on the CPU, in their stored dtype.
        card: the model card, or None when the directory has no readable ``README.md``.
        directory: where the files were read from.
    """

    config: LossConfig
    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    card: ModelCard | None
    directory: Path


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header: the dtype (``"F32"``, ...) and the shape."""

    dtype: str
    shape: tuple[int, ...]


# --------------------------------------------------------------------------------- writing


def write_checkpoint(
    directory: str | os.PathLike,
    config: LossConfig,
    metadata: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    library_version: str,
    repo_id: str | None = None,
    checks: dict[str, Any] | str | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``directory``.

    ``checks`` (a check report as a dict, or why none was run) goes into the model card.

    The save is all or nothing (see the module docstring): after an interrupt at any point,
    `read_checkpoint` returns the checkpoint the directory held before or the new one. Other
    files in ``directory`` are left as they are. Saves into one directory from several
    processes take turns (the last one's checkpoint stays). Sparse, non-finite and absurdly
    large weights are refused (`weight_problem`). The files get the permissions the
    process's umask gives new files.

    Raises:
        CheckpointError: refused weights, ``directory`` is a file, or another process held
            the directory's lock for `LOCK_TIMEOUT_SECONDS`.
        ConfigError: metadata that is not JSON, or a ``repo_id`` that is not a Hub repo id.
    """
    directory = Path(directory)
    for name, tensor in sorted(state_dict.items()):
        problem = weight_problem(tensor)
        if problem is not None:
            what, detail = problem
            raise CheckpointError(f"refusing to save {what} in tensor {name!r} ({detail})")
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    config_json = json.dumps(
        config_to_json_dict(config, metadata, library_version), indent=2, sort_keys=True
    )
    card_text = str(render_model_card(config, metadata, repo_id=repo_id, checks=checks))
    header = {
        "format": "pt",
        "library": "learnedloss",
        ARCHITECTURE_KEY: json.dumps(config.to_dict(), sort_keys=True),
    }

    if directory.exists() and not directory.is_dir():
        raise CheckpointError(
            f"cannot save into {str(directory)!r}: it is a file, not a directory; "
            "save_pretrained takes the directory to write the checkpoint into"
        )
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory, for_reading=False):
        _recover(directory)
        journal = Path(tempfile.mkdtemp(dir=directory, prefix=JOURNAL_PREFIX))
        try:
            (journal / CONFIG_NAME).write_text(config_json + "\n", encoding="utf-8")
            (journal / CARD_NAME).write_text(card_text, encoding="utf-8")
            save_file(tensors, str(journal / WEIGHTS_NAME), metadata=header)
            # safetensors writes 0600; give it the mode (umask) the other files got
            os.chmod(journal / WEIGHTS_NAME, stat.S_IMODE((journal / CONFIG_NAME).stat().st_mode))
            _commit(journal)
        except BaseException:
            shutil.rmtree(journal, ignore_errors=True)
            raise
        _roll_forward(journal, directory)
    return directory


def _commit(journal: Path) -> None:
    """Flush a journal's files, then write its ``COMMITTED`` marker (the commit point)."""
    for name in CHECKPOINT_FILES:
        _fsync(journal / name)
    _fsync_dir(journal)
    marker_tmp = journal / f".{COMMIT_MARKER}.tmp"
    marker_tmp.write_text(f"{time.time_ns()}\n")
    _fsync(marker_tmp)
    os.replace(marker_tmp, journal / COMMIT_MARKER)  # the commit point
    _fsync_dir(journal)


@contextlib.contextmanager
def _locked(directory: Path, for_reading: bool) -> Iterator[None]:
    """Hold ``directory``'s checkpoint lock for a block (`learnedloss.locking`).

    A reader that cannot make a lock file at all reads without it; a writer cannot.

    Raises:
        CheckpointError: another process held the lock for `LOCK_TIMEOUT_SECONDS`.
    """
    lock = DirectoryLock(directory, _LOCK_PURPOSE)
    try:
        taken = lock.acquire(LOCK_TIMEOUT_SECONDS)
    except OSError:
        if not for_reading:
            raise
        yield
        return
    if not taken:
        raise CheckpointError(
            f"another process has held the checkpoint {str(directory)!r} for "
            f"{LOCK_TIMEOUT_SECONDS:g} s, saving or reading it (lock file {lock.lock_file}); "
            "wait for it to finish, or stop it"
        )
    try:
        yield
    finally:
        lock.release()


def _recover(directory: Path) -> None:
    """Finish what a killed save left (the lock is held, so its writer is dead): complete an
    interrupted move into place (`interrupted_journal`), then remove every journal, so that
    a save starts from a directory with at most its own journal."""
    journal = interrupted_journal(directory)
    if journal is not None:
        _roll_forward(journal, directory)
    for journal in _journals(directory):
        _remove_journal(journal)


def interrupted_journal(directory: Path) -> Path | None:
    """The committed journal whose move into place a killed save left half done, if any.

    The newest committed journal counts when some of its files are in place (the same file
    or the same bytes) and others are not: then the visible files are a mix and the journal
    holds the checkpoint that was being installed. A journal none of whose files are in
    place (the save was killed before it moved any, or the journal was copied in from
    elsewhere) is ignored: the visible files are whole and win.
    """
    committed = [(s, j) for j in _journals(directory) if (s := _journal_stamp(j)) is not None]
    if not committed:
        return None
    journal = max(committed)[1]
    placed = [_same_content(journal / name, directory / name) for name in CHECKPOINT_FILES]
    return journal if any(placed) and not all(placed) else None


def _same_content(a: Path, b: Path) -> bool:
    """Whether two files are one file or hold the same bytes (False if either is missing)."""
    try:
        if os.path.samefile(a, b):
            return True
        size = a.stat().st_size
        if size != b.stat().st_size or size > MAX_WEIGHTS_BYTES:
            return False
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _roll_forward(journal: Path, directory: Path) -> None:
    """Move a committed journal's checkpoint into place, then remove the journal."""
    for name in CHECKPOINT_FILES:
        _install(journal / name, directory / name)
    _fsync_dir(directory)
    _remove_journal(journal)


def _install(source: Path, target: Path) -> None:
    """Put a copy of ``source`` at ``target`` with one atomic rename (a hard link if possible)."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, tmp)
            _fsync(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames) to disk where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows, where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _journal_stamp(journal: Path) -> int | None:
    """The commit stamp of a journal directory, or None if it is not (or no longer) committed."""
    try:
        with open(journal / COMMIT_MARKER, "rb") as handle:
            return int(handle.read(64))
    except (OSError, ValueError):
        return None


def _journals(directory: Path) -> list[Path]:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.name.startswith(JOURNAL_PREFIX) and p.is_dir()]


def _remove_journal(journal: Path) -> None:
    """Remove a journal directory, its commit marker first, so that a reader never takes a
    journal whose files are being deleted for a whole checkpoint."""
    with contextlib.suppress(FileNotFoundError):
        (journal / COMMIT_MARKER).unlink()
    shutil.rmtree(journal, ignore_errors=True)


# --------------------------------------------------------------------------------- reading


def read_checkpoint(
    directory: str | os.PathLike,
    *,
    expected_tensors: Callable[[LossConfig], dict[str, tuple[int, ...]]] | None = None,
) -> Checkpoint:
    """Read and validate a checkpoint directory.

    Checks, in order, before anything the config sizes is allocated: ``config.json`` (size,
    encoding, JSON, schema, metadata), the weights file's header (size, format, tensor
    names, shapes and dtypes against what the config needs, the architecture the weights
    were saved with); then loads the tensors and checks their values
    (`check_weight_values`). A model card that cannot be read (or is larger than
    `MAX_CARD_BYTES`) gives a `learnedloss.errors.CardWarning`, not an error: it is
    optional. The read holds the directory's lock, so a save into it from another process
    waits (see the module docstring); a save another process was killed in is finished or
    ignored first.

    Args:
        directory: the checkpoint directory.
        expected_tensors: the tensor shapes a config needs; by default its loss network's
            (`module_tensor_shapes`).

    Raises:
        CheckpointError: no safetensors weights (pickles are refused, never opened), a
            truncated, foreign or too large weights file, tensors missing, unexpected,
            mis-shaped, not floating point, not finite or absurdly large, or weights saved
            with another architecture.
        ConfigError: a missing, malformed or unsupported ``config.json``.
    """
    directory = Path(directory)
    with _locked(directory, for_reading=True):  # no save runs meanwhile
        journal = interrupted_journal(directory)
        if journal is None:
            return _read_files(directory, directory, expected_tensors)
        try:  # finish the killed save's move into place, so the visible files are whole
            _roll_forward(journal, directory)
        except OSError:  # a directory this process may not write: read the journal itself
            return _read_files(journal, directory, expected_tensors)
        return _read_files(directory, directory, expected_tensors)


def _read_files(
    source: Path,
    directory: Path,
    expected_tensors: Callable[[LossConfig], dict[str, tuple[int, ...]]] | None,
) -> Checkpoint:
    config_path = source / CONFIG_NAME
    weights_path = source / WEIGHTS_NAME
    if not weights_path.is_file():
        pickles = sorted(p.name for p in source.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{directory} holds only pickle weights {pickles}; learnedloss loads "
                f"'{WEIGHTS_NAME}' (safetensors) only and never unpickles files. Convert the "
                "weights to safetensors where you trust their source."
            )
        raise CheckpointError(f"{directory} has no '{WEIGHTS_NAME}'")
    if not config_path.is_file():
        raise ConfigError(f"{directory} has no '{CONFIG_NAME}'")
    config, metadata = read_config(config_path)

    infos, header_metadata = read_safetensors_header(weights_path)
    expected = (expected_tensors or module_tensor_shapes)(config)
    check_tensor_infos(infos, expected, config, source=str(weights_path))
    check_saved_architecture(header_metadata, config, source=str(weights_path))

    tensors = _read_safetensors(weights_path)
    check_weight_values(tensors, source=str(weights_path))
    card = read_card(source / CARD_NAME)
    return Checkpoint(config, metadata, tensors, card, directory)


def read_config(path: Path) -> tuple[LossConfig, dict[str, Any]]:
    """Read and validate a ``config.json``.

    Raises:
        ConfigError: too large, not UTF-8, not JSON, nested too deeply, or not a valid
            learnedloss config.
    """
    raw = read_capped(path, MAX_CONFIG_BYTES)
    if raw is None:
        raise ConfigError(
            f"{path} is {path.stat().st_size} bytes, more than the {MAX_CONFIG_BYTES} a "
            "learnedloss config may have; it is not a learnedloss config.json"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    except RecursionError:
        raise ConfigError(
            f"{path} nests JSON arrays or objects too deeply to read; it is not a learnedloss "
            "config.json"
        ) from None
    return config_from_json_dict(data, source=str(path))


def read_card(path: Path) -> ModelCard | None:
    """The model card at ``path``, or None if there is none or it cannot be read.

    The card is optional documentation, so a broken one (bad YAML, another encoding) gives a
    `learnedloss.errors.CardWarning` and None instead of an error.
    """
    if not path.is_file():
        return None
    try:
        raw = read_capped(path, MAX_CARD_BYTES)
        if raw is None:
            raise ValueError(f"it is larger than the {MAX_CARD_BYTES} bytes a card may have")
        return ModelCard(raw.decode("utf-8"))
    except Exception as err:  # any failure of an optional file: warn, load without it
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        warnings.warn(
            f"{path}: the model card could not be read ({type(err).__name__}: {reason}); "
            "the loss loads without it. Save the loss again to rewrite the card.",
            CardWarning,
            stacklevel=3,
        )
        return None


def read_capped(path: Path, cap: int) -> bytes | None:
    """The bytes of a file, or None if it holds more than ``cap`` bytes; never reads more
    than ``cap + 1`` bytes, whatever the file's size (or growth meanwhile).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        raw = handle.read(cap + 1)
    return raw if len(raw) <= cap else None


def _unreadable(path: Path, reason: str) -> CheckpointError:
    size = path.stat().st_size
    return CheckpointError(
        f"{path} ({size} bytes) is not a readable safetensors file: {reason}. "
        "It may be truncated (an interrupted download or copy) or a file of another "
        f"format renamed to {path.name}."
    )


def read_safetensors_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensor names, dtypes and shapes, and the string metadata, of a safetensors file.

    Reads the header only (8 bytes of length, then JSON), never the tensor data, and checks
    that every tensor's bytes lie inside the file.

    Raises:
        CheckpointError: the file is not a well-formed safetensors file.
    """
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            f"{path} is {size} bytes, more than the {MAX_WEIGHTS_BYTES} the weights of a "
            "learned loss may have; it is not a learnedloss weights file"
        )
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _unreadable(path, "shorter than the 8-byte header length")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise _unreadable(path, f"a header of {length} bytes does not fit the file")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise _unreadable(path, f"the header is not JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise _unreadable(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _unreadable(path, "the header's __metadata__ is not a map of strings")
    data_size = size - 8 - length
    infos = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise _unreadable(path, f"the header entry of {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        item = _FLOAT_DTYPES.get(dtype) or _OTHER_DTYPES.get(dtype)
        if (
            item is None
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
            or offsets[1] - offsets[0] != math.prod(shape) * item
        ):
            raise _unreadable(path, f"the header entry of {name!r} is malformed: {entry!r:.200}")
        infos[name] = TensorInfo(dtype, tuple(shape))
    return infos, metadata


def module_tensor_shapes(
    config: LossConfig, module_class: type[torch.nn.Module] | None = None
) -> dict[str, tuple[int, ...]]:
    """The checkpoint's tensor shapes for this config, by name: those of its loss network
    (`learnedloss.networks.build_network`), named ``"network.<name>"`` as
    `learnedloss.LearnedLoss.weights` names them, or the state dict of ``module_class(config)``.
    Nothing is allocated (the module is built on the ``meta`` device).

    Raises:
        CheckpointError: the config describes a network too large to build at all.
    """
    try:
        with torch.device("meta"):
            if module_class is None:
                named = {f"network.{n}": t for n, t in build_network(config).state_dict().items()}
            else:
                named = module_class(config).state_dict()
        return {name: tuple(t.shape) for name, t in named.items()}
    except (RuntimeError, OverflowError, ValueError) as err:
        raise CheckpointError(
            f"the architecture in config.json ({config}) cannot be built: {err}"
        ) from None


def tensor_infos(tensors: dict[str, torch.Tensor]) -> dict[str, TensorInfo]:
    """The dtypes (as safetensors names them) and shapes of tensors in memory, by name, for
    `check_tensor_infos`."""
    return {
        name: TensorInfo(_TORCH_DTYPE_NAMES.get(t.dtype, str(t.dtype)), tuple(t.shape))
        for name, t in tensors.items()
    }


def check_tensor_infos(
    infos: dict[str, TensorInfo],
    expected: dict[str, tuple[int, ...]],
    config: LossConfig,
    source: str,
) -> None:
    """Compare tensors' names, shapes and dtypes (a weights file's header, or `tensor_infos`
    of tensors to load) with the tensors a config needs: the one check of both.

    Raises:
        CheckpointError: listing missing, unexpected and mis-shaped tensors, or tensors that
            are not floating point.
    """
    missing = sorted(set(expected) - set(infos))
    unexpected = sorted(set(infos) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not match the architecture in config.json "
            f"({config}): missing tensors {missing}, unexpected tensors {unexpected}"
        )
    mis_shaped = [
        f"{name!r} has shape {info.shape}, expected {expected[name]}"
        for name, info in sorted(infos.items())
        if info.shape != tuple(expected[name])
    ]
    if mis_shaped:
        raise CheckpointError(
            f"{source}: tensors do not fit the architecture in config.json "
            f"({config}): " + "; ".join(mis_shaped)
        )
    for name, info in sorted(infos.items()):
        if info.dtype not in _FLOAT_DTYPES:
            raise CheckpointError(
                f"{source}: tensor {name!r} has dtype {info.dtype}, expected floating point "
                f"({', '.join(_FLOAT_DTYPES)})"
            )


def check_weight_values(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights that a loaded loss cannot have (`weight_problem`).

    Raises:
        CheckpointError: naming the first such tensor (by name) and what is wrong.
    """
    for name, tensor in sorted(tensors.items()):
        problem = weight_problem(tensor)
        if problem is not None:
            what, detail = problem
            raise CheckpointError(f"{source}: tensor {name!r} holds {what} ({detail})")


def weight_problem(tensor: torch.Tensor) -> tuple[str, str] | None:
    """What makes a tensor unfit to be a loss's weight, as ``(what, detail)``, or None: a
    sparse (non-strided) layout, NaN or infinite values, or values larger in magnitude than
    `MAX_ABS_WEIGHT`. The one rule of saving and loading."""
    if tensor.layout != torch.strided:
        return "sparse values", f"layout {tensor.layout}; weights are dense: call .to_dense()"
    if not tensor.is_floating_point():
        return None  # check_tensor_infos refuses these where weights must be floats
    if not torch.isfinite(tensor).all():
        return "non-finite values", "NaN or infinite"
    largest = float(tensor.detach().abs().max()) if tensor.numel() else 0.0
    if largest > MAX_ABS_WEIGHT:
        return "absurdly large values", (
            f"magnitude {largest:.3g}, more than the {MAX_ABS_WEIGHT:g} a loss's weight may "
            "have: no trained loss has them, and a loss with them is inf or NaN on ordinary "
            "inputs"
        )
    return None


def check_saved_architecture(header_metadata: dict[str, str], config: LossConfig, source: str):
    """Refuse weights saved with another architecture than ``config.json`` describes.

    Weights files written by learnedloss record the architecture they were saved with; files
    from releases that did not are accepted as they are.

    Raises:
        CheckpointError: the recorded architecture differs from ``config``.
    """
    recorded = header_metadata.get(ARCHITECTURE_KEY)
    if recorded is None:
        return
    try:
        data = json.loads(recorded)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        saved, _ = config_from_json_dict(
            {"schema_version": SCHEMA_VERSION, "library_name": "learnedloss", **data},
            source="the architecture recorded in the weights",
        )
    except (ValueError, RecursionError) as err:
        raise CheckpointError(
            f"{source}: the architecture recorded in the weights file is malformed ({err})"
        ) from None
    if saved != config:
        before, now = saved.to_dict(), config.to_dict()
        differing = "; ".join(
            f"{key}: {before.get(key)!r} in the weights, {now.get(key)!r} in config.json"
            for key in sorted(set(before) | set(now))
            if before.get(key) != now.get(key)
        )
        raise CheckpointError(
            f"{source} was saved with another architecture than config.json describes "
            f"({differing}). The two files come from different saves (a copy or an edit "
            "mixed them): save the loss again, or restore the matching config.json."
        )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        # Real CPU tensors, whatever device context the caller is in (some safetensors
        # releases create them under the ambient one, e.g. `with torch.device("meta")`).
        with torch.device("cpu"), safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, str(err)) from None


# --------------------------------------------------------------------------------- resolving


_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def resolve_checkpoint_dir(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """Find the directory that holds the checkpoint ``name_or_path`` names.

    Looked up in this order:

    1. an existing local directory;
    2. the short name of a loss bundled with learnedloss (see `bundled_names`);
    3. a Hugging Face Hub repo id, fetched with ``hf_hub_download`` into the Hub cache
       (respecting ``HF_HUB_OFFLINE``, ``revision``, ``cache_dir`` and ``local_files_only``).
       All files come from one commit: the one ``config.json`` was resolved at, even if
       the branch moves during the download.
    """
    path = Path(name_or_path)
    if _is_directory(path):
        return path
    name = str(name_or_path)
    bundled = bundled_path(name)
    if bundled is not None:
        return bundled
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise LossNotFoundError(
            f"{name!r} is not a directory, not a bundled loss ({bundled_names()}) and not a "
            "valid Hugging Face Hub repo id ('name' or 'namespace/name')"
        ) from None
    download = dict(
        repo_id=name,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
        library_name="learnedloss",
    )
    try:
        config_file = hf_hub_download(filename=CONFIG_NAME, revision=revision, **download)
    except LocalEntryNotFoundError as err:
        raise LossNotFoundError(
            f"{name!r} is not a directory or a bundled loss ({bundled_names()}), and its "
            f"'{CONFIG_NAME}' is not in the local Hub cache (offline or local_files_only). "
            f"Details: {err}"
        ) from None
    except RepositoryNotFoundError:
        raise LossNotFoundError(
            f"{name!r} is not a directory, not a bundled loss ({bundled_names()}) and not a "
            "Hub repo you can read (pass token= for a private one)"
        ) from None
    except RevisionNotFoundError:
        raise LossNotFoundError(
            f"Hub repo {name!r} has no revision {revision!r} (a branch, tag or commit)"
        ) from None
    except EntryNotFoundError:
        raise ConfigError(
            f"Hub repo {name!r} has no '{CONFIG_NAME}'; it is not a learnedloss checkpoint"
        ) from None
    snapshot = Path(config_file).parent
    # The snapshot folder is named by the commit: fetch the other files at that commit.
    commit = snapshot.name if _COMMIT_SHA.match(snapshot.name) else revision
    try:
        hf_hub_download(filename=WEIGHTS_NAME, revision=commit, **download)
    except LocalEntryNotFoundError:
        if not any(p.suffix in PICKLE_SUFFIXES for p in snapshot.iterdir()):
            raise LossNotFoundError(
                f"'{WEIGHTS_NAME}' of Hub repo {name!r} is not in the local cache "
                "(offline or local_files_only)"
            ) from None
        # read_checkpoint names the pickle files and refuses them.
    except EntryNotFoundError:  # the repo exists but has no such file
        raise CheckpointError(
            f"Hub repo {name!r} has no '{WEIGHTS_NAME}'. learnedloss loads safetensors "
            "weights only and never downloads or unpickles .bin/.pt files."
        ) from None
    # The model card is optional for loading.
    with contextlib.suppress(EntryNotFoundError, LocalEntryNotFoundError):
        hf_hub_download(filename=CARD_NAME, revision=commit, **download)
    return snapshot


def _is_directory(path: Path) -> bool:
    """``path.is_dir()``, False for a name the file system cannot even look up (too long,
    a NUL byte): such a name is not a directory, and may still be a bundled name or repo id."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------- uploading


def upload_checkpoint(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | bool | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload learned loss with learnedloss",
    commit_description: str | None = None,
    create_pr: bool = False,
    delete_stale: bool = True,
) -> CommitInfo:
    """Upload a checkpoint directory to the Hub in one commit.

    Creates ``repo_id`` if needed, and the branch ``revision`` (from ``main``) if it does not
    exist yet. The commit adds ``model.safetensors``, ``config.json`` and ``README.md`` and,
    with ``delete_stale``, deletes every other file of the branch (except
    ``.gitattributes``), so the repo holds exactly the new checkpoint: no weights of an
    older save in another format stay behind. With ``create_pr`` the commit opens a pull
    request against ``revision`` (default ``main``) instead of changing it.

    Returns:
        ``huggingface_hub.CommitInfo`` for the commit (``pr_url`` set for a pull request).
    """
    directory = Path(directory)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and revision != "main" and not _COMMIT_SHA.match(revision):
        api.create_branch(repo_id=repo_id, branch=revision, exist_ok=True)
    operations: list = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
        for name in CHECKPOINT_FILES
    ]
    if delete_stale:
        existing = api.list_repo_files(repo_id=repo_id, revision=revision)
        operations += [
            CommitOperationDelete(path_in_repo=path)
            for path in sorted(existing)
            if path not in CHECKPOINT_FILES and path != ".gitattributes"
        ]
    return api.create_commit(
        repo_id=repo_id,
        operations=operations,
        commit_message=commit_message,
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )
