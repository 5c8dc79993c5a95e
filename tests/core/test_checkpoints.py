"""save_pretrained / from_pretrained on local directories, and strict loading."""

from __future__ import annotations

import json
import pickle
import re
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


# ------------------------------------------------------------------ issue 16: malformed files


def test_config_from_another_save_with_the_same_shapes_is_refused(small_loss, saved, tmp_path):
    """Another activation has the same tensor shapes: only the recorded architecture tells."""
    torch.manual_seed(1)
    relu = LearnedLoss(LossConfig(hidden_sizes=(8, 8), activation="relu", bias=True))
    relu.save_pretrained(tmp_path / "relu")
    shutil.copy(tmp_path / "relu" / "config.json", saved / "config.json")
    with pytest.raises(
        CheckpointError,
        match=r"saved with another architecture than config.json describes "
        r"\(activation: 'elu' in the weights, 'relu' in config.json\).*save the loss again",
    ):
        LearnedLoss.from_pretrained(saved)


def test_metadata_may_be_edited_by_hand(saved):
    path = saved / "config.json"
    data = json.loads(path.read_text())
    data["metadata"]["description"] = "Edited."
    path.write_text(json.dumps(data))
    assert LearnedLoss.from_pretrained(saved).metadata["description"] == "Edited."


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="RLIMIT_AS needs Linux")
@pytest.mark.parametrize("sizes", [[20000, 20000], [10**9], [10**9, 10**9]])
def test_huge_sizes_in_config_fail_fast_without_allocating(tmp_path, sizes):
    """A config claiming gigabytes beside a tiny weights file: CheckpointError, checked in a
    process whose address space may grow by 256 MiB only."""
    import subprocess
    import sys

    torch.manual_seed(0)
    LearnedLoss(LossConfig(hidden_sizes=(2,))).save_pretrained(tmp_path / "loss")
    edit_config(tmp_path / "loss", hidden_sizes=sizes)
    script = f"""
import resource, time
import torch
from learnedloss import CheckpointError, LearnedLoss
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize"))
limit = vm * 1024 + 256 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
try:
    LearnedLoss.from_pretrained({str(tmp_path / "loss")!r})
except CheckpointError as err:
    print("CheckpointError", time.perf_counter() - start, err)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.startswith("CheckpointError"), out.stdout + out.stderr
    seconds = float(out.stdout.split()[1])
    assert seconds < 2.0
    assert re.search(r"(do not fit|do not match) the architecture in config.json", out.stdout)


def test_card_with_bad_yaml_warns_and_the_loss_loads(small_loss, saved):
    from learnedloss.errors import CardWarning

    (saved / "README.md").write_text("---\nlicense: [apache\n---\n# A card\n")
    with pytest.warns(CardWarning, match=r"README.md: the model card could not be read"):
        loaded = LearnedLoss.from_pretrained(saved)
    x, y = torch.randn(6), torch.randn(6)
    assert torch.equal(loaded(x, y), small_loss(x, y))


def test_card_in_another_encoding_warns_and_the_loss_loads(saved):
    from learnedloss.errors import CardWarning

    (saved / "README.md").write_bytes("---\nlicense: mit\n---\n# Café\n".encode("utf-16"))
    with pytest.warns(CardWarning, match=r"UnicodeDecodeError"):
        LearnedLoss.from_pretrained(saved)


def test_cli_info_reads_a_checkpoint_with_a_broken_card(saved, capsys):
    from learnedloss.cli import main
    from learnedloss.errors import CardWarning

    (saved / "README.md").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(CardWarning):
        assert main(["info", str(saved)]) == 0
    assert "model card:        none" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{ not json", r"is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, r"nests JSON arrays or objects too deeply"),
        (b"\xff\xfe{\x00}\x00", r"is not UTF-8 text"),
        ("[1, 2]", r"expected a JSON object, got list"),
    ],
)
def test_unreadable_config_is_a_config_error(saved, content, message):
    path = saved / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=message):
        LearnedLoss.from_pretrained(saved)


def test_deep_metadata_is_a_config_error(saved):
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    path = saved / "config.json"
    data = json.loads(path.read_text())
    text = json.dumps({k: v for k, v in data.items() if k != "metadata"})
    path.write_text(text[:-1] + ', "metadata": ' + '{"a": ' * 100 + "{}" + "}" * 100 + "}")
    with pytest.raises(ConfigError, match=r"metadata nests dicts and lists deeper than 32"):
        LearnedLoss.from_pretrained(saved)
    with pytest.raises(ConfigError, match=r"deeper than 32 levels"):
        LearnedLoss(metadata=deep)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": ["regression"]}, r"kind must be a string, got \['regression'\]"),
        ({"hidden_sizes": "8, 8"}, r"hidden_sizes must be a list of positive ints"),
        ({"hidden_sizes": [8.0, 8]}, r"hidden_sizes must be a sequence of positive ints"),
        ({"inputs": {"input": 1}}, r"inputs must be a list of names"),
        ({"activation": None}, r"activation must be a string"),
    ],
)
def test_config_values_of_the_wrong_type_are_config_errors(saved, change, message):
    edit_config(saved, **change)
    with pytest.raises(ConfigError, match=message):
        LearnedLoss.from_pretrained(saved)


def test_integer_weights_are_refused_before_loading(saved):
    from safetensors.torch import load_file

    tensors = load_file(saved / "model.safetensors")
    tensors["network.layers.0.weight"] = tensors["network.layers.0.weight"].long()
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"layers.0.weight' has dtype I64, expected float"):
        LearnedLoss.from_pretrained(saved)


def test_weights_header_pointing_outside_the_file_is_an_error(saved):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    name = "network.layers.0.weight"
    header[name]["data_offsets"][1] += 4
    header[name]["shape"][0] += 1 if header[name]["shape"][1] == 1 else 0
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length :])
    with pytest.raises(CheckpointError, match=r"not a readable safetensors file: the header entry"):
        LearnedLoss.from_pretrained(saved)


# ------------------------------------------------------------------ issue 16: atomic saves


def test_saving_keeps_the_users_other_files_and_leaves_no_journal(small_loss, saved):
    (saved / "history.json").write_text("[1, 2]")
    (saved / "notes").mkdir()
    (saved / "notes" / "a.txt").write_text("mine")
    small_loss.save_pretrained(saved)
    assert (saved / "history.json").read_text() == "[1, 2]"
    assert (saved / "notes" / "a.txt").read_text() == "mine"
    assert not [p for p in saved.iterdir() if p.name.startswith(".")]


def test_a_committed_journal_wins_over_half_replaced_files(small_loss, saved, tmp_path):
    """What an interrupt after the commit point leaves: the new files whole in the journal,
    the old ones (partly replaced) beside it. The reader takes the journal."""
    from learnedloss import hub

    torch.manual_seed(1)
    newer = LearnedLoss(LossConfig(hidden_sizes=(4,), activation="tanh"))
    newer.save_pretrained(tmp_path / "newer")
    journal = saved / f"{hub.JOURNAL_PREFIX}interrupted"
    shutil.copytree(tmp_path / "newer", journal)
    (journal / hub.COMMIT_MARKER).write_text(f"{10**19}\n")
    shutil.copy(journal / "model.safetensors", saved / "model.safetensors")  # half replaced
    loaded = LearnedLoss.from_pretrained(saved)
    assert loaded.config == newer.config
    small_loss.save_pretrained(saved)  # the next save finishes the interrupted one first
    assert not list(saved.glob(f"{hub.JOURNAL_PREFIX}*"))
    assert LearnedLoss.from_pretrained(saved).config == small_loss.config


def test_an_uncommitted_journal_is_ignored_and_cleaned_up(small_loss, saved):
    from learnedloss import hub

    journal = saved / f"{hub.JOURNAL_PREFIX}unfinished"
    journal.mkdir()
    (journal / "model.safetensors").write_bytes(b"half")
    assert LearnedLoss.from_pretrained(saved).config == small_loss.config
    small_loss.save_pretrained(saved)
    assert not journal.exists()
