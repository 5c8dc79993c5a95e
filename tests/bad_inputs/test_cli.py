"""Bad command lines for ``learnedloss``: one line ``learnedloss: error: ...`` and status 2
before anything runs; a run that cannot train prints one such line, saves nothing and exits
with status 1."""

from __future__ import annotations

import pytest

from learnedloss.cli import main

TINY_TRAIN = ["--inner-steps", "2", "--meta-batch", "2", "--validation-size", "2"]
TINY_TRAIN += ["--validate-every", "1", "--hidden", "8"]


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("learnedloss: error: ")]


def _refused(argv, capsys, *fragments) -> str:
    """Run ``argv``, expect status 2 and one error line holding ``fragments``."""
    with pytest.raises(SystemExit) as exit:
        main([str(a) for a in argv])
    assert exit.value.code == 2
    (line,) = _error_lines(capsys)
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_a_missing_loss_is_refused(tmp_path, capsys):
    _refused(["evaluate", "sine", tmp_path / "absent"], capsys, "cannot load the loss")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--outer-steps", "0", "'0' is not a positive integer"),
        ("--outer-steps", "-1", "'-1' is not a positive integer"),
        ("--inner-steps", "0", "'0' is not a positive integer"),
        ("--meta-batch", "0", "'0' is not a positive integer"),
        ("--inner-lr", "0", "'0' is not a positive number"),
        ("--inner-lr", "nan", "'nan' is not a positive number"),
        ("--meta-lr", "inf", "'inf' is not a positive number"),
    ],
)
def test_a_bad_value_is_refused(tmp_path, capsys, option, value, message):
    _refused(["meta-train", "sine", "--out", tmp_path / "out", option, value], capsys, message)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    _refused(["meta-train", "sine", "--out", tmp_path / "a-file"], capsys, "is not a directory")


def test_a_used_run_dir_needs_resume_or_overwrite(tmp_path, capsys):
    run = ["meta-train", "sine", "--out", tmp_path / "out", "--run-dir", tmp_path / "run"]
    assert main([str(a) for a in [*run, "--outer-steps", "2", *TINY_TRAIN]]) == 0
    latest = (tmp_path / "run" / "latest").read_text()
    capsys.readouterr()
    _refused(
        [*run, "--outer-steps", "1", *TINY_TRAIN],
        capsys,
        "is not empty (it holds the checkpoints of a run)",
        "--resume",
        "--overwrite",
    )
    assert (tmp_path / "run" / "latest").read_text() == latest == "step-0000002"
    _refused([*run, "--resume", "--overwrite"], capsys, "pass one")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main([str(a) for a in [*run, "--outer-steps", "1", *TINY_TRAIN, "--overwrite"]]) == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "latest",
        "notes.txt",
        "step-0000001",
    ]


def test_a_run_that_cannot_train_saves_nothing_and_exits_1(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["meta-train", "sine", "--out", out, "--outer-steps", "2", "--inner-lr", "1e6"]
    with pytest.warns(UserWarning, match="update skipped"):
        status = main([str(a) for a in [*argv, *TINY_TRAIN]])
    assert status == 1
    (line,) = _error_lines(capsys)
    assert "meta-training failed, nothing was saved" in line
    assert "none of the 2 outer steps updated the loss" in line
    assert not out.exists()
