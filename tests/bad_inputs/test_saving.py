"""Bad things to save: each is refused before anything is written."""

from __future__ import annotations

import pytest
import torch

from learnedloss import CheckpointError, ConfigError, LearnedLoss, LossConfig
from tests.bad_inputs.conftest import refused


def _loss() -> LearnedLoss:
    torch.manual_seed(0)
    return LearnedLoss(LossConfig(hidden_sizes=(8,)))


def test_deeply_nested_metadata_is_refused(tmp_path):
    loss, deep = _loss(), {}
    level = deep
    for _ in range(100):
        level["a"] = {}
        level = level["a"]
    loss.metadata = deep
    with refused(ConfigError, "metadata nests dicts and lists deeper than 32 levels", "flatten"):
        loss.save_pretrained(tmp_path / "deep")
    assert not (tmp_path / "deep" / "model.safetensors").exists()


def test_non_finite_weights_are_refused(tmp_path):
    loss = _loss()
    with torch.no_grad():
        next(loss.parameters()).fill_(float("nan"))
    with refused(CheckpointError, "refusing to save non-finite values in tensor"):
        loss.save_pretrained(tmp_path / "nan")
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_saving_onto_a_file_is_a_checkpoint_error_and_keeps_the_file(tmp_path):
    target = tmp_path / "not-a-directory"
    target.write_text("user data")
    with pytest.raises(CheckpointError, match="it is a file, not a directory"):
        LearnedLoss(LossConfig(hidden_sizes=(4,))).save_pretrained(target)
    assert target.read_text() == "user data"


# ------------------------------------------------------------------ issue 30


def test_the_weights_get_the_permissions_of_the_other_files(tmp_path):
    import os
    import stat

    previous = os.umask(0o027)
    try:
        directory = _loss().save_pretrained(tmp_path / "modes", check=False)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
    assert modes == dict.fromkeys(["README.md", "config.json", "model.safetensors"], 0o640)


@pytest.mark.parametrize(
    "repo_id", ["org/x\nimport os", 'org/x")\nimport os  #', "org/a b", "a/b/c", "x" * 97]
)
def test_an_unsafe_repo_id_is_refused_before_anything_is_written(tmp_path, repo_id):
    with refused(ConfigError, "is not a Hugging Face Hub repo id"):
        _loss().save_pretrained(tmp_path / "card", repo_id=repo_id, check=False)
    assert not (tmp_path / "card").exists()


def test_absurdly_large_weights_are_refused(tmp_path):
    loss = _loss()
    with torch.no_grad():
        next(loss.parameters()).fill_(3e38)
    with refused(CheckpointError, "refusing to save absurdly large values in tensor"):
        loss.save_pretrained(tmp_path / "huge", check=False)
    assert not (tmp_path / "huge").exists()
