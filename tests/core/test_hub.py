"""Hub repo ids through huggingface_hub's cache in offline mode."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from learnedloss import CheckpointError, LearnedLoss

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def put_in_hub_cache(repo_id: str, source: Path, commit: str, ref: str | None = "main") -> Path:
    """Lay out files as huggingface_hub's cache does: blobs by hash, snapshot links, refs."""
    repo_dir = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        data = file.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    if ref is not None:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


def scaled_copy(loss: LearnedLoss, factor: float) -> LearnedLoss:
    copy = LearnedLoss(loss.config)
    copy.load_state_dict({k: v * factor for k, v in loss.state_dict().items()})
    return copy


def test_repo_id_loads_from_the_offline_cache(small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "export")
    snapshot = put_in_hub_cache("someone/sine-loss", tmp_path / "export", COMMIT_A)
    loaded = LearnedLoss.from_pretrained("someone/sine-loss")
    input, target = torch.randn(9, 2), torch.randn(9, 2)
    assert torch.equal(loaded(input, target), small_loss(input, target))
    assert not any(p.requires_grad for p in loaded.parameters())
    assert Path(snapshot / "config.json").is_symlink()


def test_revision_selects_the_snapshot(small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "v1")
    scaled_copy(small_loss, 2.0).save_pretrained(tmp_path / "v2")
    put_in_hub_cache("someone/sine-loss", tmp_path / "v1", COMMIT_A, ref="v1")
    put_in_hub_cache("someone/sine-loss", tmp_path / "v2", COMMIT_B, ref="main")
    latest = LearnedLoss.from_pretrained("someone/sine-loss")
    by_tag = LearnedLoss.from_pretrained("someone/sine-loss", revision="v1")
    by_commit = LearnedLoss.from_pretrained("someone/sine-loss", revision=COMMIT_A)
    weight = "network.layers.0.weight"
    torch.testing.assert_close(latest.state_dict()[weight], 2 * small_loss.state_dict()[weight])
    assert torch.equal(by_tag.state_dict()[weight], small_loss.state_dict()[weight])
    assert torch.equal(by_commit.state_dict()[weight], small_loss.state_dict()[weight])


def test_cache_dir_argument_is_used(small_loss, tmp_path, monkeypatch):
    small_loss.save_pretrained(tmp_path / "export")
    put_in_hub_cache("someone/sine-loss", tmp_path / "export", COMMIT_A)
    cache = constants.HF_HUB_CACHE
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError):
        LearnedLoss.from_pretrained("someone/sine-loss")
    LearnedLoss.from_pretrained("someone/sine-loss", cache_dir=cache, local_files_only=True)


def test_uncached_repo_is_a_clear_error_offline():
    with pytest.raises(
        FileNotFoundError,
        match=r"'nobody/absent' is not a directory or a bundled "
        r"loss \(\[.*'mse-fit'.*\]\).*not in the local Hub",
    ):
        LearnedLoss.from_pretrained("nobody/absent")


def test_name_that_is_nothing_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not a valid Hugging Face Hub repo id"):
        LearnedLoss.from_pretrained("no such/dir//x")


def test_cached_repo_with_only_pickle_weights_is_refused(small_loss, tmp_path, monkeypatch):
    small_loss.save_pretrained(tmp_path / "export")
    (tmp_path / "export" / "model.safetensors").unlink()
    (tmp_path / "export" / "pytorch_model.bin").write_bytes(b"\x80\x04 not to be unpickled")
    put_in_hub_cache("someone/pickled", tmp_path / "export", COMMIT_A)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(CheckpointError, match=r"only pickle weights.*never unpickles"):
        LearnedLoss.from_pretrained("someone/pickled")


def test_cached_repo_without_card_still_loads(small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "export")
    (tmp_path / "export" / "README.md").unlink()
    put_in_hub_cache("someone/no-card", tmp_path / "export", COMMIT_A)
    LearnedLoss.from_pretrained("someone/no-card")


# What push_to_hub sends, and loading by repo id online, go through huggingface_hub's real
# client against a stand-in Hub on 127.0.0.1: tests/core/test_hub_server.py.
