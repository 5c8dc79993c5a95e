"""The `learnedloss` command."""

from __future__ import annotations

import json
import shutil
import subprocess

from learnedloss.cli import main


def test_info_prints_config_and_card_summary(capsys):
    assert main(["info", "mse-fit"]) == 0
    out = capsys.readouterr().out
    assert "kind:              regression" in out
    assert "hidden sizes:      [50, 50]" in out
    assert "elu -> square" in out
    assert "parameters:        2751" in out  # 2*50+50 + 50*50+50 + 50+1
    assert "mse-fit: a loss network fitted to reproduce MSE" in out
    assert "not meta-trained" in out


def test_info_json_is_machine_readable(capsys, small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "loss")
    assert main(["info", str(tmp_path / "loss"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["hidden_sizes"] == [8, 8]
    assert info["parameters"] == sum(p.numel() for p in small_loss.parameters())
    assert info["model_card"]["card_data"]["library_name"] == "learnedloss"


def test_info_on_a_bad_checkpoint_exits_2_with_the_reason(capsys, small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "loss")
    (tmp_path / "loss" / "model.safetensors").write_bytes(b"garbage")
    assert main(["info", str(tmp_path / "loss")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert main(["info", "nobody/absent"]) == 2


def test_list_names_the_bundled_losses(capsys):
    assert main(["list"]) == 0
    assert "mse-fit" in capsys.readouterr().out.split()


def test_console_script_is_installed():
    exe = shutil.which("learnedloss")
    assert exe is not None, "the learnedloss console script is not on PATH"
    result = subprocess.run([exe, "info", "mse-fit"], capture_output=True, text=True, check=True)
    assert "regression" in result.stdout
