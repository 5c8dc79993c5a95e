"""Bad checkpoints: each is refused with the library's error, before any large allocation,
except a broken model card, which only warns (the card is documentation)."""

from __future__ import annotations

import json

import pytest

from learnedloss import CardWarning, CheckpointError, ConfigError, LearnedLoss, LossNotFoundError
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
