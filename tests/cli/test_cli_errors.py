"""Mistakes on the `learnedloss` command line: one line ``learnedloss: error: ...`` on stderr,
exit status 2, nothing run; and the command forms release 0.2 removed are refused."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import pytest

from learnedloss.cli import main
from learnedloss.families.registry import FAMILIES

# {file}: an existing file; {dir}: an existing empty directory; {tmp}: a fresh path;
# {used}: a directory that holds a file.
MISTAKES = {
    "unknown family to meta-train": (["meta-train", "bogus", "--out", "{tmp}"], "invalid choice"),
    "unknown family to evaluate": (["evaluate", "bogus", "mse-fit"], "invalid choice"),
    "missing loss path": (["evaluate", "sine", "{tmp}/absent"], "cannot load the loss"),
    "missing bundled name": (["evaluate", "sine", "x=no-such-loss"], "cannot load the loss"),
    "unreadable checkpoint": (["evaluate", "sine", "{broken}"], "not a readable safetensors"),
    "loss of another kind": (["evaluate", "digits", "mse-fit"], "is a regression loss"),
    "two losses, one name": (["evaluate", "sine", "a=mse-fit", "a=mse-fit"], "two losses"),
    "no seeds": (["evaluate", "sine", "mse-fit", "--seeds", "0"], "--seeds: '0' is not a pos"),
    "negative count": (["evaluate", "sine", "mse-fit", "--n-tasks", "-3"], "positive integer"),
    "count not a number": (["evaluate", "sine", "mse-fit", "--n-inits", "x"], "not an integer"),
    "zero shared lr": (["evaluate", "sine", "mse-fit", "--same-lr", "0"], "positive number"),
    "outliers over 1": (["evaluate", "sine", "mse-fit", "--outliers", "2"], "fraction"),
    "negative lr range": (
        ["evaluate", "digits", "digits-classification", "--lr-range", "-1", "2"],
        "positive number",
    ),
    "json under a file": (["evaluate", "sine", "mse-fit", "--json", "{file}/r.json"], "is a file"),
    "plot under a file": (["evaluate", "sine", "mse-fit", "--plot", "{file}/c.png"], "is a file"),
    "json is a directory": (["evaluate", "sine", "mse-fit", "--json", "{dir}"], "is a directory"),
    "out is a file": (["meta-train", "sine", "--out", "{file}"], "is not a directory"),
    "no out": (["meta-train", "digits"], "required: --out"),
    "zero inner lr": (["meta-train", "sine", "--out", "{tmp}", "--inner-lr", "0"], "positive"),
    "negative meta lr": (
        ["meta-train", "shaped-sine", "--out", "{tmp}", "--meta-lr=-1e-3"],
        "positive number",
    ),
    "negative outer steps": (
        ["meta-train", "policy-gradient", "--out", "{tmp}", "--outer-steps", "-2"],
        "positive integer",
    ),
    "zero minutes": (["meta-train", "sine", "--out", "{tmp}", "--max-minutes", "0"], "positive"),
    "resume without run dir": (["meta-train", "sine", "--out", "{tmp}", "--resume"], "--run-dir"),
    "resume from nothing": (
        ["meta-train", "sine", "--out", "{tmp}", "--resume", "--run-dir", "{dir}"],
        "cannot resume",
    ),
    "fresh run in a used run dir": (
        ["meta-train", "sine", "--out", "{tmp}", "--run-dir", "{used}"],
        "is not empty (it holds notes.txt): add --resume to continue that run, or --overwrite",
    ),
    "resume and overwrite": (
        ["meta-train", "sine", "--out", "{tmp}", "--run-dir", "{dir}", "--resume", "--overwrite"],
        "pass one",
    ),
    "overwrite without run dir": (
        ["meta-train", "sine", "--out", "{tmp}", "--overwrite"],
        "--overwrite needs --run-dir",
    ),
    "resume a reacher run": (
        ["meta-train", "reacher", "--out", "{tmp}", "--resume", "--run-dir", "{dir}"],
        "cannot be resumed",
    ),
    "removed form": (["evaluate", "mse-fit", "--seeds", "0"], "invalid choice"),
    "demo, bad value": (["demo", "--outer-steps", "0"], "positive integer"),
}


@pytest.fixture
def nothing_runs(monkeypatch):
    """Make any training or evaluation fail the test: errors come before them."""

    def refuse(*args, **kwargs):
        raise AssertionError("a mistake on the command line reached training or evaluation")

    for family in FAMILIES:
        parts = family.parts()
        demo = None if parts.demo is None else refuse
        refusing = dataclasses.replace(parts, meta_train=refuse, evaluate=refuse, demo=demo)
        monkeypatch.setattr(importlib.import_module(family.module), "PARTS", refusing)


def _fill(argv: list[str], tmp_path, small_loss) -> list[str]:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "a-dir").mkdir(exist_ok=True)
    (tmp_path / "used").mkdir(exist_ok=True)
    (tmp_path / "used" / "notes.txt").write_text("mine")
    broken = tmp_path / "broken"
    small_loss.save_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    places = {
        "{file}": str(tmp_path / "a-file"),
        "{dir}": str(tmp_path / "a-dir"),
        "{tmp}": str(tmp_path / "fresh"),
        "{broken}": str(broken),
        "{used}": str(tmp_path / "used"),
    }
    filled = []
    for arg in argv:
        for key, value in places.items():
            arg = arg.replace(key, value)
        filled.append(arg)
    return filled


@pytest.mark.parametrize(("argv", "reason"), list(MISTAKES.values()), ids=list(MISTAKES))
def test_a_mistake_exits_2_with_one_error_line(
    argv, reason, tmp_path, small_loss, capsys, nothing_runs
):
    with pytest.raises(SystemExit) as exit:
        main(_fill(argv, tmp_path, small_loss))
    assert exit.value.code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("learnedloss: error")]
    assert len(errors) == 1, captured.err
    assert errors[0].startswith("learnedloss: error: ") and reason in errors[0]
    others = [line for line in captured.err.splitlines() if not line.startswith("learnedloss: ")]
    assert not others, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "fresh").exists()


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    for argv in (["meta-train", "nope", "--out", "x"], ["evaluate", "sine", str(tmp_path / "x")]):
        result = subprocess.run(
            [sys.executable, "-m", "learnedloss", *argv], capture_output=True, text=True
        )
        assert result.returncode == 2
        assert result.stderr.startswith("learnedloss: error: ")
        assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize("alias", ["evaluate-shaped", "evaluate-mountain-car", "evaluate-reacher"])
def test_the_removed_evaluate_aliases_are_refused(alias, capsys):
    """Release 0.1's ``evaluate-*`` aliases were removed in 0.2: ``learnedloss evaluate
    FAMILY`` replaces them."""
    with pytest.raises(SystemExit) as exit:
        main([alias, "x=mse-fit"])
    assert exit.value.code == 2
    assert f"invalid choice: '{alias}'" in capsys.readouterr().err
