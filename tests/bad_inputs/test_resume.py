"""Resuming a corrupt run directory: each corruption is a CheckpointError that names the file
and what is wrong, raised before any training, and resume never leaves its run directory."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from learnedloss import CheckpointError
from tests.bad_inputs.conftest import make_trainer, refused


def _newest(run_dir):
    return run_dir / (run_dir / "latest").read_text().strip()


def _resume(run_dir):
    make_trainer(run_dir).fit(3, resume=True)


def _edit_state(run_dir, edit) -> None:
    path = _newest(run_dir) / "state.json"
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))


@pytest.mark.parametrize("keep_bytes", [0, 5, 100, -40])
def test_a_truncated_or_empty_tensors_file_names_the_file(used_run_dir, keep_bytes):
    path = _newest(used_run_dir) / "tensors.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])  # -40: the end of the data cut off
    with refused(CheckpointError, str(path), "not a readable safetensors file"):
        _resume(used_run_dir)


def test_a_missing_tensors_file_names_the_file(used_run_dir):
    path = _newest(used_run_dir) / "tensors.safetensors"
    path.unlink()
    with refused(CheckpointError, str(path), "is missing"):
        _resume(used_run_dir)


def test_a_missing_tensor_names_both_files_and_the_tensor(used_run_dir):
    path = _newest(used_run_dir) / "tensors.safetensors"
    tensors = load_file(str(path))
    name = next(n for n in tensors if n.startswith("state.loss."))
    del tensors[name]
    save_file(tensors, str(path))
    with refused(CheckpointError, "state.json refers to tensor", name, "does not hold"):
        _resume(used_run_dir)


@pytest.mark.parametrize("key", ["step", "identity", "meta_optimizer", "generator", "best"])
def test_a_missing_state_key_is_named(used_run_dir, key):
    _edit_state(used_run_dir, lambda state: state.pop(key))
    with refused(CheckpointError, "state.json", f"the entry {key!r} is missing"):
        _resume(used_run_dir)


def test_a_missing_nested_key_is_named(used_run_dir):
    _edit_state(used_run_dir, lambda state: state["meta_optimizer"].pop("param_groups"))
    with refused(CheckpointError, "'meta_optimizer.param_groups' is missing"):
        _resume(used_run_dir)


@pytest.mark.parametrize("step", ["2", 2.0, True, None, [2], -1])
def test_a_step_of_the_wrong_type_is_named(used_run_dir, step):
    _edit_state(used_run_dir, lambda state: state.update(step=step))
    with refused(CheckpointError, "state.json cannot be resumed", "step"):
        _resume(used_run_dir)


def test_a_state_that_is_not_json_names_the_file(used_run_dir):
    path = _newest(used_run_dir) / "state.json"
    path.write_text("{ not json")
    with refused(CheckpointError, str(path), "is unreadable"):
        _resume(used_run_dir)


def test_nan_weights_are_refused_at_resume_not_blamed_on_training(used_run_dir):
    path = _newest(used_run_dir) / "tensors.safetensors"
    tensors = load_file(str(path))
    name = next(n for n in tensors if n.startswith("state.loss."))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path))
    with refused(CheckpointError, str(path), name, "NaN or infinite"):
        _resume(used_run_dir)


@pytest.mark.parametrize("target", ["../elsewhere/step-0000002", "/tmp", "step-2", ""])
def test_resume_never_follows_latest_out_of_the_run_directory(used_run_dir, target):
    elsewhere = used_run_dir.parent / "elsewhere"
    elsewhere.mkdir()
    os.rename(_newest(used_run_dir), elsewhere / "step-0000002")
    (used_run_dir / "latest").write_text(target)
    with refused(CheckpointError, "latest", "not a checkpoint of this run directory"):
        _resume(used_run_dir)


def test_resume_never_follows_a_checkpoint_link_out_of_the_run_directory(used_run_dir):
    newest = _newest(used_run_dir)
    outside = used_run_dir.parent / "outside"
    os.rename(newest, outside)
    newest.symlink_to(outside, target_is_directory=True)
    with refused(CheckpointError, "a link (perhaps out of the run directory)"):
        _resume(used_run_dir)


def test_a_refused_resume_leaves_the_directory_free(used_run_dir):
    path = _newest(used_run_dir) / "state.json"
    original = path.read_text()
    path.write_text("[]")
    with refused(CheckpointError, "it holds a list, not an object"):
        _resume(used_run_dir)
    path.write_text(original)  # repaired: the run continues (the lock was released)
    trainer = make_trainer(used_run_dir)
    trainer.fit(3, resume=True)
    assert trainer.step == 3


def test_checkpoint_tensors_get_the_permissions_of_the_state_file(tmp_path):
    from learnedloss.meta.state import STATE_NAME, TENSORS_NAME, write_state

    write_state(tmp_path, 1, {"weights": {"w": torch.ones(2)}, "step": 1})
    step = tmp_path / "step-0000001"
    assert (step / TENSORS_NAME).stat().st_mode == (step / STATE_NAME).stat().st_mode
