"""The command line's edges (issue 30): outputs are checked before any work and a failed final
save is rescued; sizes are capped before allocation; reversed or empty ranges, options that
do not apply and devices this machine lacks are one ``learnedloss: error: ...`` line and
status 2, printed by rank 0 only under ``torchrun``."""

from __future__ import annotations

import json

import pytest
import torch

from learnedloss.cli import build_parser, main
from learnedloss.cli.options import check_applicable, recipe_from_options
from learnedloss.errors import ConfigError
from learnedloss.families.sine.recipe import SineRecipe

TINY_TRAIN = ["--inner-steps", "1", "--meta-batch", "1", "--validation-size", "1"]
TINY_TRAIN += ["--validate-every", "1", "--hidden", "4", "--outer-steps", "1"]

UNWRITABLE = "/proc/learnedloss-test/out"
"""A path no process can create, root included (the proc file system takes no new file)."""


def _refused(argv, capsys, *fragments) -> str:
    """Run ``argv``, expect status 2, one error line holding ``fragments`` and no output."""
    with pytest.raises(SystemExit) as exit:
        main([str(a) for a in argv])
    assert exit.value.code == 2
    captured = capsys.readouterr()
    (line,) = [x for x in captured.err.splitlines() if x.startswith("learnedloss: error: ")]
    for fragment in fragments:
        assert fragment in line, line
    assert "meta-trained" not in captured.out
    return line


# -- work thrown away ----------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--out", "--run-dir"])
def test_meta_train_into_a_location_that_cannot_be_written_is_refused_before_training(
    tmp_path, capsys, monkeypatch, option
):
    monkeypatch.setattr(
        "learnedloss.families.recipe.MetaTrainer.fit",
        lambda *a, **k: pytest.fail("trained before checking the outputs"),
    )
    out = UNWRITABLE if option == "--out" else tmp_path / "out"
    argv = ["meta-train", "sine", "--out", out, *TINY_TRAIN]
    if option == "--run-dir":
        argv += ["--run-dir", UNWRITABLE]
    _refused(argv, capsys, option, "cannot be written")


def test_a_final_save_that_fails_is_rescued_and_the_path_printed(tmp_path, capsys, monkeypatch):
    from learnedloss.families import recipe

    original = recipe.save_run
    out = tmp_path / "out"

    def save_run(path, *args):
        if path == out:
            raise OSError(28, "No space left on device")
        return original(path, *args)

    monkeypatch.setattr(recipe, "save_run", save_run)
    monkeypatch.chdir(tmp_path)
    status = main([str(a) for a in ["meta-train", "sine", "--out", out, *TINY_TRAIN]])
    assert status == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert "No space left on device" in line and "the result was saved to" in line
    (rescued,) = tmp_path.glob("learnedloss-rescued-*")
    assert str(rescued) in line
    assert {"config.json", "model.safetensors", "history.json", "recipe.json"} <= {
        p.name for p in rescued.iterdir()
    }


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_evaluate_checks_its_outputs_before_evaluating(capsys, monkeypatch, option):
    from learnedloss.families.sine import family

    monkeypatch.setattr(family, "evaluate_at_tuned_lrs", lambda *a, **k: pytest.fail("ran"))
    _refused(["evaluate", "sine", "sine-regression", option, UNWRITABLE], capsys, option)


@pytest.mark.parametrize(
    ("knots", "message"),
    [
        (["100000000", "41"], "is more than the largest size"),
        (["100000", "41"], "knots in all, more than the largest grid"),
    ],
)
def test_export_caps_the_knots_before_allocating(tmp_path, capsys, knots, message):
    argv = ["export", "sine-regression", "--grid", "--out", tmp_path / "grid", "--knots", *knots]
    _refused(argv, capsys, message)
    assert not (tmp_path / "grid").exists()


# -- silent wrong --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["meta-train", "sine", "--amplitude", "5", "1"], "amplitude must be (low, high)"),
        (["meta-train", "sine", "--x-range", "1", "1"], "x_range must be (low, high)"),
        (["evaluate", "sine", "sine-regression", "--lr-range", "0.5", "0.001"], "reversed"),
        (["check", "sine-regression", "--target-range", "1", "-1"], "reversed"),
    ],
)
def test_reversed_or_empty_ranges_are_refused(tmp_path, capsys, argv, message):
    if argv[0] == "meta-train":
        argv = [*argv, "--out", tmp_path / "out", *TINY_TRAIN]
    _refused(argv, capsys, message)
    assert not (tmp_path / "out").exists()


def test_a_range_of_one_value_is_a_fixed_value_but_an_empty_interval_is_refused():
    assert SineRecipe(amplitude=(2.0, 2.0)).amplitude == (2.0, 2.0)
    with pytest.raises(ConfigError, match=r"x_range must be .* it is empty"):
        SineRecipe(x_range=(1.0, 1.0))
    with pytest.raises(ConfigError, match=r"phase must be .* it is reversed"):
        SineRecipe.from_dict({"phase": [1.0, -1.0]})  # a stored recipe too


def test_es_options_without_es_are_refused(tmp_path, capsys):
    argv = ["meta-train", "sine", "--out", tmp_path / "out", *TINY_TRAIN, "--es-pairs", "4"]
    _refused(argv, capsys, "--es-pairs applies only with --meta-gradient es")
    args = build_parser(["sine"]).parse_args([str(a) for a in argv] + ["--meta-gradient", "es"])
    recipe = recipe_from_options(SineRecipe, args)
    check_applicable(SineRecipe, recipe, args)  # applies: no error
    assert recipe.es_pairs == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--outer-steps", "3"], "--outer-steps needs --meta-train"),
        (["demo", "--meta-train", "--steps", "3"], "--steps does not apply with --meta-train"),
    ],
)
def test_demo_options_that_do_not_apply_are_refused(capsys, monkeypatch, argv, message):
    from learnedloss.families.registry import family

    for name in ("robust-regression", "sine"):
        parts = family(name).parts()
        monkeypatch.setattr(type(parts), "demo", property(lambda self: pytest.fail("ran")))
    _refused(argv, capsys, message)


def test_plot_vs_for_a_classification_loss_is_refused(tmp_path, capsys):
    argv = ["plot", "noisy-labels", "--vs", "huber", "--out", tmp_path / "p.png"]
    _refused(argv, capsys, "--vs draws regression losses", "classification")


def test_plot_out_an_existing_directory_writes_name_png_inside(tmp_path, capsys):
    assert main(["plot", "sine-regression", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sine-regression.png").is_file()
    assert not (tmp_path.parent / f"{tmp_path.name}.png").exists()
    assert capsys.readouterr().out.strip() == str(tmp_path / "sine-regression.png")


# -- unclear crashes -----------------------------------------------------------------------


def _missing_cuda() -> str:
    if not torch.cuda.is_available():
        return "cuda"
    return f"cuda:{torch.cuda.device_count()}"


@pytest.mark.parametrize(
    ("device", "message"),
    [("bogus", "is not a torch device"), (_missing_cuda(), "cuda")],
)
def test_a_device_this_machine_lacks_is_refused(tmp_path, capsys, device, message):
    argv = ["meta-train", "sine", "--out", tmp_path / "out", *TINY_TRAIN, "--device", device]
    _refused(argv, capsys, "argument --device", message)


def test_repeated_loss_inputs_are_one_error_line(tmp_path, capsys):
    argv = ["meta-train", "sine", "--out", tmp_path / "out", *TINY_TRAIN]
    _refused([*argv, "--inputs", "input", "input"], capsys, "inputs must be distinct")


@pytest.mark.parametrize(
    ("loss", "option", "message"),
    [
        ("sine-regression", "--logit-range", "applies to classification losses"),
        ("noisy-labels", "--target-range", "applies to regression losses"),
        ("noisy-labels", "--residual-range", "applies to regression losses"),
    ],
)
def test_check_with_a_range_of_another_kind_is_refused(capsys, loss, option, message):
    _refused(["check", loss, option, "-1", "1"], capsys, option, message)


def test_check_with_one_regression_range_completes_the_other(capsys):
    assert main(["check", "sine-regression", "--target-range", "-1", "1", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["criteria"]


def test_export_onto_an_existing_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    argv = ["export", "sine-regression", "--grid", "--out", tmp_path / "a-file"]
    _refused(argv, capsys, "exists and is not a directory")
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("rank", ["0", "1", "3"])
def test_under_torchrun_only_rank_0_prints_a_user_error(tmp_path, capsys, monkeypatch, rank):
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(SystemExit) as exit:
        main(["meta-train", "sine", "--out", str(tmp_path / "out"), "--amplitude", "5", "1"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert (err.count("learnedloss: error: ") == 1) == (rank == "0")
    assert err == "" or rank == "0"
