"""save_pretrained / from_pretrained on local directories, and strict loading."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
import yaml
from safetensors.torch import save_file

from learnedloss import CheckpointError, ConfigError, LearnedLoss, LossConfig
from learnedloss.config import SCHEMA_VERSION


@pytest.fixture
def saved(small_loss, tmp_path):
    small_loss.metadata = {"description": "A test loss.", "training": {"steps": 3}}
    small_loss.save_pretrained(tmp_path / "loss")
    return tmp_path / "loss"


@pytest.fixture(autouse=True)
def _never_unpickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("learnedloss must never unpickle anything")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def edit_config(directory, **changes):
    path = directory / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_save_writes_the_three_files(saved):
    assert sorted(p.name for p in saved.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]


def test_config_records_schema_kind_architecture_and_convention(saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["schema_version"] == SCHEMA_VERSION
    assert config["library_name"] == "learnedloss"
    assert config["kind"] == "regression"
    assert config["inputs"] == ["input", "target"]
    assert config["input_convention"] == "elementwise"
    assert config["hidden_sizes"] == [8, 8]
    assert config["activation"] == "elu" and config["bias"] is True
    assert config["metadata"]["training"] == {"steps": 3}


def test_model_card_has_yaml_metadata(saved):
    text = (saved / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "learnedloss"
    assert {"learned-loss", "regression"} <= set(front["tags"])
    assert "A test loss." in text and "LearnedLoss.from_pretrained" in text


def test_round_trip_gives_identical_values(small_loss, saved):
    loaded = LearnedLoss.from_pretrained(saved, reduction="sum")
    assert loaded.config == small_loss.config
    assert loaded.metadata == small_loss.metadata
    assert loaded.reduction == "sum"
    input, target = torch.randn(40, 2), torch.randn(40, 2)
    small_loss.reduction = "sum"
    assert torch.equal(loaded(input, target), small_loss(input, target))


def test_missing_tensor_is_an_error(saved):
    from safetensors.torch import load_file

    tensors = load_file(saved / "model.safetensors")
    del tensors["network.layers.1.bias"]
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing tensors \['network.layers.1.bias'\]"):
        LearnedLoss.from_pretrained(saved)


def test_unexpected_tensor_is_an_error(saved):
    from safetensors.torch import load_file

    tensors = load_file(saved / "model.safetensors")
    tensors["network.extra"] = torch.zeros(3)
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected tensors \['network.extra'\]"):
        LearnedLoss.from_pretrained(saved)


def test_mis_shaped_tensor_is_an_error(saved):
    edit_config(saved, hidden_sizes=[8, 9])
    with pytest.raises(
        CheckpointError,
        match=r"'network.layers.1.bias' has shape \(8,\), "
        r"expected \(9,\); 'network.layers.1.weight' has shape \(8, 8\), "
        r"expected \(9, 8\); 'network.layers.2.weight' has shape \(1, 8\)",
    ):
        LearnedLoss.from_pretrained(saved)


def test_non_finite_weights_are_an_error(saved):
    from safetensors.torch import load_file

    tensors = load_file(saved / "model.safetensors")
    tensors["network.layers.0.weight"][0, 0] = float("nan")
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"layers.0.weight.*NaN or infinite"):
        LearnedLoss.from_pretrained(saved)


def test_saving_non_finite_weights_is_refused(small_loss, tmp_path):
    with torch.no_grad():
        small_loss.network.layers[0].weight[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="refusing to save non-finite"):
        small_loss.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 99}, r"unknown schema_version 99.*reads \[1\].*Upgrade"),
        ({"kind": "ranking"}, r"kind must be one of \['regression', 'classif.*got 'ranking'"),
        ({"activation": "swish"}, r"activation must be one of .* got 'swish'"),
        ({"colour": "blue"}, r"unknown keys \['colour'\]"),
        ({"library_name": "transformers"}, r"not a learnedloss checkpoint"),
        ({"inputs": ["input", "target", "2x"]}, r"inputs must be distinct feature names"),
        ({"input_convention": "rowwise"}, r"unknown input_convention 'rowwise'"),
        ({"metadata": {"score": float("nan")}}, r"metadata.score is nan"),
        (
            {"residual_form": "multiply"},
            r"residual_form must be one of \['add', 'scale', 'weight', 'baseline'\]",
        ),
    ],
)
def test_bad_configs_are_errors(saved, change, message):
    edit_config(saved, **change)
    with pytest.raises(ConfigError, match=message):
        LearnedLoss.from_pretrained(saved)


def test_missing_config_key_is_an_error(saved):
    path = saved / "config.json"
    data = json.loads(path.read_text())
    del data["hidden_sizes"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"missing keys \['hidden_sizes'\]"):
        LearnedLoss.from_pretrained(saved)


def test_config_that_is_not_json_is_an_error(saved):
    (saved / "config.json").write_text("{ not json")
    with pytest.raises(ConfigError, match=r"config.json is not valid JSON"):
        LearnedLoss.from_pretrained(saved)


def test_truncated_weights_are_an_error(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        CheckpointError,
        match=r"\(200 bytes\) is not a readable safetensors.*"
        r"truncated",
    ):
        LearnedLoss.from_pretrained(saved)


def test_foreign_weights_file_is_an_error(saved):
    (saved / "model.safetensors").write_bytes(b"PK\x03\x04 this is a zip archive, not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        LearnedLoss.from_pretrained(saved)


def test_pickle_only_directory_is_refused_without_unpickling(saved):
    (saved / "model.safetensors").unlink()
    (saved / "pytorch_model.bin").write_bytes(b"\x80\x04 pickle bytes that must never be read")
    with pytest.raises(
        CheckpointError,
        match=r"only pickle weights \['pytorch_model.bin'\].*"
        r"never unpickles",
    ):
        LearnedLoss.from_pretrained(saved)


def test_directory_without_weights_is_an_error(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"has no 'model.safetensors'"):
        LearnedLoss.from_pretrained(saved)


def test_non_json_metadata_is_refused():
    with pytest.raises(ConfigError, match=r"metadata.when is a datetime"):
        import datetime

        LearnedLoss(metadata={"when": datetime.datetime.now()})


def test_saving_again_overwrites_cleanly(small_loss, saved):
    with torch.no_grad():
        small_loss.network.layers[0].weight.add_(1.0)
    small_loss.save_pretrained(saved)
    loaded = LearnedLoss.from_pretrained(saved)
    assert torch.equal(loaded.network.layers[0].weight, small_loss.network.layers[0].weight)
    assert not [p for p in saved.iterdir() if p.name.endswith(".tmp")]


def test_local_directory_wins_over_bundled_name(tmp_path, monkeypatch, small_loss):
    small_loss.save_pretrained(tmp_path / "mse-fit")
    monkeypatch.chdir(tmp_path)
    loaded = LearnedLoss.from_pretrained("mse-fit")
    assert loaded.config == small_loss.config  # the local one, not the bundled (50, 50) loss


def test_bundled_loss_loads_by_name_and_is_frozen():
    loss = LearnedLoss.from_pretrained("mse-fit")
    assert loss.config == LossConfig(
        hidden_sizes=(50, 50), activation="elu", output_activation="square", bias=True
    )
    assert "not meta-trained" in loss.metadata["description"]


def test_load_to_another_dtype_and_device(saved):
    loss = LearnedLoss.from_pretrained(saved, map_location="cpu").double()
    assert (
        loss(torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)).dtype
        == torch.float64
    )


def test_copying_a_checkpoint_directory_keeps_it_loadable(saved, tmp_path):
    copy = shutil.copytree(saved, tmp_path / "copy")
    LearnedLoss.from_pretrained(copy)


def test_bundled_sine_regression_is_meta_trained_and_says_how_it_scored():
    loss = LearnedLoss.from_pretrained("sine-regression")
    training = loss.metadata["training"]
    assert training["method"].startswith("ML3 meta-training")
    assert training["inner_steps"] == 100 and training["tasks"]["family"] == "sine"
    assert any(k.endswith("learned") for k in loss.metadata["results"])
    assert "learnedloss meta-train sine" in loss.metadata["reproduce"]
    # It is a residual loss that started as exactly MSE; it must still be a sane loss:
    # zero error costs (almost) nothing, and a larger error costs more.
    target = torch.zeros(3)
    values = LearnedLoss.from_pretrained("sine-regression", reduction="none")(
        torch.tensor([0.0, 1.0, 3.0]), target
    )
    assert values[0] < 0.05 and values[0] < values[1] < values[2]


@pytest.mark.parametrize("form", ["scale", "weight"])
def test_residual_forms_round_trip_and_the_default_is_not_written(tmp_path, form):
    torch.manual_seed(0)
    scaled = LearnedLoss(LossConfig(hidden_sizes=(4,), residual=True, residual_form=form))
    torch.nn.init.normal_(scaled.network.layers[-1].weight)  # away from the exact-MSE start
    scaled.save_pretrained(tmp_path / "scaled")
    assert json.loads((tmp_path / "scaled" / "config.json").read_text())["residual_form"] == form
    loaded = LearnedLoss.from_pretrained(tmp_path / "scaled")
    assert loaded.config.residual_form == form
    x, y = torch.randn(20), torch.randn(20)
    torch.testing.assert_close(loaded(x, y), scaled(x, y), rtol=0, atol=0)
    LearnedLoss(LossConfig(hidden_sizes=(4,), residual=True)).save_pretrained(tmp_path / "added")
    assert "residual_form" not in json.loads((tmp_path / "added" / "config.json").read_text())
