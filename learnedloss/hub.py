"""Checkpoint files on disk and on the Hugging Face Hub.

A checkpoint is a directory with three files:

- ``model.safetensors``: the loss network's tensors (never a pickle),
- ``config.json``: the architecture and metadata (see `learnedloss.config`),
- ``README.md``: the model card (see `learnedloss.card`).

This module reads and writes those files, resolves a name to such a directory (a local path,
a bundled loss or a Hub repo id through ``huggingface_hub``'s cache), and uploads one with
``HfApi.upload_folder``. It works on plain configs and tensors; it does not build modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from learnedloss.bundled import bundled_names, bundled_path
from learnedloss.card import render_model_card
from learnedloss.config import LossConfig, config_from_json_dict, config_to_json_dict
from learnedloss.errors import CheckpointError, ConfigError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Weight-file endings that are (or usually are) pickles. learnedloss never loads them."""


@dataclass
class Checkpoint:
    """What a checkpoint directory holds, validated.

    Attributes:
        config: the loss architecture.
        metadata: provenance and results from ``config.json``.
        tensors: the weights, on the CPU, in their stored dtype.
        card: the model card, or None when the directory has no ``README.md``.
        directory: where the files were read from.
    """

    config: LossConfig
    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    card: ModelCard | None
    directory: Path


def write_checkpoint(
    directory: str | os.PathLike,
    config: LossConfig,
    metadata: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    library_version: str,
    repo_id: str | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``directory``.

    Each file is written to a temporary name and renamed, so an interrupted save never leaves
    a half-written file under the final name. Non-finite weights are refused.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"refusing to save non-finite values in tensor {name!r}")
    config_json = json.dumps(
        config_to_json_dict(config, metadata, library_version), indent=2, sort_keys=True
    )
    card_text = str(render_model_card(config, metadata, repo_id=repo_id))

    _atomic_write(
        directory / WEIGHTS_NAME,
        lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "library": "learnedloss"}),
    )
    _atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config_json + "\n"))
    _atomic_write(directory / CARD_NAME, lambda tmp: Path(tmp).write_text(card_text))
    return directory


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual file mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint directory.

    Raises:
        CheckpointError: no safetensors weights (pickles are refused, never opened), or a
            truncated or foreign weights file.
        ConfigError: a missing, malformed or unsupported ``config.json``.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{directory} holds only pickle weights {pickles}; learnedloss loads "
                f"'{WEIGHTS_NAME}' (safetensors) only and never unpickles files. Convert the "
                "weights to safetensors where you trust their source."
            )
        raise CheckpointError(f"{directory} has no '{WEIGHTS_NAME}'")
    if not config_path.is_file():
        raise ConfigError(f"{directory} has no '{CONFIG_NAME}'")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{config_path} is not valid JSON: {err}") from None
    config, metadata = config_from_json_dict(data, source=str(config_path))
    tensors = _read_safetensors(weights_path)
    card_path = directory / CARD_NAME
    card = ModelCard.load(card_path) if card_path.is_file() else None
    return Checkpoint(config, metadata, tensors, card, directory)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointError(
            f"{path} ({size} bytes) is not a readable safetensors file: {err}. "
            "It may be truncated (an interrupted download or copy) or a file of another "
            "format renamed to model.safetensors."
        ) from None


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
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    bundled = bundled_path(name)
    if bundled is not None:
        return bundled
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(
            f"{name!r} is not a directory, not a bundled loss ({bundled_names()}) and not a "
            "valid Hugging Face Hub repo id ('name' or 'namespace/name')"
        ) from None
    download = dict(
        repo_id=name,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
        library_name="learnedloss",
    )
    try:
        config_file = hf_hub_download(filename=CONFIG_NAME, **download)
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"{name!r} is not a directory or a bundled loss ({bundled_names()}), and its "
            f"'{CONFIG_NAME}' is not in the local Hub cache (offline or local_files_only). "
            f"Details: {err}"
        ) from None
    snapshot = Path(config_file).parent
    try:
        hf_hub_download(filename=WEIGHTS_NAME, **download)
    except LocalEntryNotFoundError:
        if not any(p.suffix in PICKLE_SUFFIXES for p in snapshot.iterdir()):
            raise FileNotFoundError(
                f"'{WEIGHTS_NAME}' of Hub repo {name!r} is not in the local cache "
                "(offline or local_files_only)"
            ) from None
        # read_checkpoint names the pickle files and refuses them.
    except EntryNotFoundError:  # the repo exists but has no such file
        raise CheckpointError(
            f"Hub repo {name!r} has no '{WEIGHTS_NAME}'. learnedloss loads safetensors "
            "weights only and never downloads or unpickles .bin/.pt files."
        ) from None
    with contextlib.suppress(EntryNotFoundError):  # the model card is optional for loading
        hf_hub_download(filename=CARD_NAME, **download)
    return snapshot


def upload_checkpoint(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload learned loss with learnedloss",
    create_pr: bool = False,
) -> CommitInfo:
    """Create ``repo_id`` if needed and upload a checkpoint directory in one commit.

    Returns:
        ``huggingface_hub.CommitInfo`` for the commit.
    """
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(directory),
        allow_patterns=[WEIGHTS_NAME, CONFIG_NAME, CARD_NAME],
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
    )
