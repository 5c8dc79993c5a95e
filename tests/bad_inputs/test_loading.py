"""Bad checkpoints: each is refused with the library's error, before any large allocation,
except a broken model card, which only warns (the card is documentation)."""

from __future__ import annotations

import json

import pytest

from learnedloss import (
    CardWarning,
    CheckpointError,
    ConfigError,
    LearnedLoss,
    LossConfig,
    LossNotFoundError,
)
from tests.bad_inputs.conftest import refused


def _edit_config(directory, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **changes}))


def test_huge_hidden_sizes_are_refused_without_building_them(saved_loss):
    _edit_config(saved_loss, hidden_sizes=[10**9, 10**9])
    with refused(CheckpointError, "tensors do not fit the architecture in config.json"):
        LearnedLoss.from_pretrained(saved_loss)


def test_a_bad_yaml_card_warns_and_the_loss_loads(saved_loss):
    (saved_loss / "README.md").write_text("---\nfoo: [unclosed\n---\n# a card\n")
    with pytest.warns(CardWarning, match="the model card could not be read") as caught:
        loaded = LearnedLoss.from_pretrained(saved_loss)
    assert "the loss loads without it" in str(caught[0].message)
    assert loaded.config.hidden_sizes == (8, 8)


def test_corrupt_weights_are_refused(saved_loss):
    (saved_loss / "model.safetensors").write_bytes(b"garbage")
    with refused(CheckpointError, "is not a readable safetensors file", "truncated"):
        LearnedLoss.from_pretrained(saved_loss)


def test_deeply_nested_metadata_is_refused(saved_loss):
    text = (saved_loss / "config.json").read_text().rstrip()
    nested = "[" * 100_000 + "]" * 100_000
    (saved_loss / "config.json").write_text(text[:-1] + f', "deep": {nested}}}')
    with refused(ConfigError, "nests JSON arrays or objects too deeply"):
        LearnedLoss.from_pretrained(saved_loss)


def test_a_missing_loss_names_the_bundled_ones(tmp_path):
    with refused(LossNotFoundError, "is not a directory, not a bundled loss", "mse-fit"):
        LearnedLoss.from_pretrained(tmp_path / "absent")


# ------------------------------------------------------------------ issue 30: hostile files


def _grid_loss_directory(tmp_path):
    config = LossConfig(
        parameterization="grid",
        inputs=("residual",),
        grid_knots=(9,),
        output_activation="identity",
    )
    directory = tmp_path / "grid"
    LearnedLoss(config).save_pretrained(directory, check=False)
    return directory


def test_a_1_gib_card_is_not_read_and_the_loss_loads_without_it(saved_loss):
    import time

    with open(saved_loss / "README.md", "wb") as handle:
        handle.truncate(2**30)  # sparse: no disk space, but reading it whole takes seconds
    start = time.perf_counter()
    with pytest.warns(CardWarning, match="larger than the 1048576 bytes a card may have"):
        loaded = LearnedLoss.from_pretrained(saved_loss)
    assert time.perf_counter() - start < 2.0
    assert loaded.config.hidden_sizes == (8, 8)


def test_a_weights_file_over_the_cap_is_refused_unread(saved_loss):
    with open(saved_loss / "model.safetensors", "r+b") as handle:
        handle.truncate(2**30 + 1)
    with refused(CheckpointError, "model.safetensors is 1073741825 bytes, more than the"):
        LearnedLoss.from_pretrained(saved_loss)


def test_grid_values_of_3e38_are_refused_at_load(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    directory = _grid_loss_directory(tmp_path)
    weights = directory / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        header = handle.metadata()
    tensors = {k: torch.full_like(v, 3e38) for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata=header)
    with refused(CheckpointError, "model.safetensors", "absurdly large values", "3e+38"):
        LearnedLoss.from_pretrained(directory)


def test_schema_version_true_is_not_1(saved_loss):
    _edit_config(saved_loss, schema_version=True)
    with refused(ConfigError, "unknown schema_version True"):
        LearnedLoss.from_pretrained(saved_loss)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_sizes": [10**30]}, "hidden_sizes must be a sequence of positive ints of at most"),
        ({"hidden_sizes": [4] * 65}, "hidden_sizes may name at most 64 layers"),
        ({"grid_knots": [10**30]}, "at most 4194304 knots together"),
        ({"grid_knots": [10**8]}, "at most 4194304 knots together"),
    ],
)
def test_absurd_sizes_are_config_errors_before_allocation(tmp_path, change, message):
    directory = _grid_loss_directory(tmp_path)
    if "hidden_sizes" in change:  # an MLP loss: the grid fields would not apply
        directory = tmp_path / "mlp"
        LearnedLoss(LossConfig(hidden_sizes=(4,))).save_pretrained(directory, check=False)
    _edit_config(directory, **change)
    with refused(ConfigError, "config.json", message):
        LearnedLoss.from_pretrained(directory)


def test_an_unhashable_inputs_entry_is_a_config_error(saved_loss):
    _edit_config(saved_loss, inputs=[["input"], "target"])
    with refused(ConfigError, "inputs must be distinct feature names"):
        LearnedLoss.from_pretrained(saved_loss)


@pytest.mark.parametrize("prefix", ["", "directory/"])
def test_a_300_character_name_is_not_found(tmp_path, prefix):
    name = prefix + "a" * 300
    with refused(LossNotFoundError, "is not a directory, not a bundled loss"):
        LearnedLoss.from_pretrained(name)
    with refused(LossNotFoundError, "is not a directory"):
        LearnedLoss.from_pretrained(tmp_path / name)


def test_sparse_weights_are_refused(saved_loss):
    loss = LearnedLoss.from_pretrained(saved_loss).unfreeze()
    sparse = {name: t.to_sparse() for name, t in loss.weights().items()}
    with refused(CheckpointError, "sparse values", "to_dense"):
        loss.load_state_dict_strict(sparse)


def test_a_hidden_committed_journal_does_not_win_over_the_visible_files(saved_loss, tmp_path):
    """A committed journal none of whose files are in place (copied in, or left by a save
    killed before it moved any file): the visible checkpoint is whole and loads."""
    import shutil

    import torch

    from learnedloss import hub

    torch.manual_seed(3)
    other = tmp_path / "other"
    LearnedLoss(LossConfig(hidden_sizes=(4,), activation="tanh")).save_pretrained(other)
    journal = saved_loss / f"{hub.JOURNAL_PREFIX}planted"
    shutil.copytree(other, journal)
    (journal / hub.COMMIT_MARKER).write_text(f"{10**19}\n")
    visible = json.loads((saved_loss / "config.json").read_text())
    loaded = LearnedLoss.from_pretrained(saved_loss)
    assert loaded.config.hidden_sizes == tuple(visible["hidden_sizes"]) == (8, 8)
    LearnedLoss(LossConfig(hidden_sizes=(2,))).save_pretrained(saved_loss, check=False)
    assert not list(saved_loss.glob(f"{hub.JOURNAL_PREFIX}*"))
    assert LearnedLoss.from_pretrained(saved_loss).config.hidden_sizes == (2,)
