"""`learnedloss meta-train FAMILY` and `learnedloss evaluate FAMILY`, end to end at tiny
sizes."""

from __future__ import annotations

import json

import pytest
import torch

from learnedloss import LearnedLoss, LossConfig
from learnedloss.cli import main

TINY_TRAIN = [
    "--outer-steps",
    "3",
    "--inner-steps",
    "2",
    "--meta-batch",
    "2",
    "--validate-every",
    "1",
    "--hidden",
    "8",
    "8",
]


def test_meta_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "loss"
    assert (
        main(
            [
                "meta-train",
                "sine",
                "--outliers",
                "0.2",
                "--inputs",
                "input",
                "target",
                "residual",
                "--out",
                str(out),
                *TINY_TRAIN,
            ]
        )
        == 0
    )
    assert "meta-trained 3 outer steps on the vmap path" in capsys.readouterr().out
    loss = LearnedLoss.from_pretrained(out)
    assert loss.config.inputs == ("input", "target", "residual")
    assert loss.metadata["training"]["tasks"]["outlier_fraction"] == 0.2
    history = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in history] == [1, 2, 3]

    png, scores = tmp_path / "eval.png", tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "sine",
                f"learned={out}",
                "--outliers",
                "0.2",
                "--steps",
                "4",
                "--n-tasks",
                "3",
                "--n-inits",
                "1",
                "--tune-tasks",
                "2",
                "--lr-range",
                "0.01",
                "0.02",
                "--same-lr",
                "0.01",
                "--plot",
                str(png),
                "--json",
                str(scores),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "each loss at its own tuned lr" in printed and "Huber d=1" in printed
    result = json.loads(scores.read_text())[0]
    assert set(result["tuned"]["losses"]) >= {"MSE", "learned", "1.1 x MSE", "L1"}
    assert result["same_lr"]["losses"]["learned"]["lr"] == 0.01
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_meta_train_resumes_from_its_run_dir(tmp_path, capsys):
    args = [
        "meta-train",
        "sine",
        "--out",
        str(tmp_path / "a"),
        "--run-dir",
        str(tmp_path / "run"),
        *TINY_TRAIN,
    ]
    assert main(args) == 0
    more = [a if a != "3" else "5" for a in args]  # 5 outer steps in total
    assert main([*more, "--resume"]) == 0
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5]


def test_ml3_start_uses_the_reference_network(tmp_path):
    out = tmp_path / "ml3"
    assert (
        main(
            [
                "meta-train",
                "sine",
                "--start",
                "ml3",
                "--inputs",
                "input",
                "target",
                "--out",
                str(out),
                *TINY_TRAIN,
            ]
        )
        == 0
    )
    assert LearnedLoss.from_pretrained(out).config == LossConfig(hidden_sizes=(8, 8))


def test_residual_input_feature():
    loss = LearnedLoss(LossConfig(hidden_sizes=(4,), inputs=("residual",), bias=True))
    x = torch.randn(5)
    # A loss of the residual alone is shift invariant.
    torch.testing.assert_close(loss(x, x * 0.5), loss(x + 3, x * 0.5 + 3))


def test_meta_train_digits_then_evaluate_on_other_settings(tmp_path, capsys):
    out = tmp_path / "digits"
    args = ["meta-train", "digits", "--label-noise", "0.2", "--n-way", "3", "--n-shot", "5"]
    args += ["--n-query", "5", "--out", str(out), *TINY_TRAIN]
    assert main(args) == 0
    assert "meta-trained 3 outer steps on the vmap path" in capsys.readouterr().out
    loss = LearnedLoss.from_pretrained(out)
    assert loss.config.kind == "classification"
    assert loss.metadata["recipe"]["label_noise"] == 0.2
    assert loss.metadata["training"]["tasks"]["meta_objective"] == "calibrated-cross-entropy"

    scores = tmp_path / "eval.json"
    evaluate = ["evaluate", "digits", f"learned={out}", "--steps", "3", "--n-tasks", "3"]
    evaluate += ["--n-inits", "1"]
    evaluate += ["--tune-tasks", "2", "--lr-range", "0.1", "0.2", "--same-lr", "0.1"]
    evaluate += ["--n-way", "4", "--model", "cnn", "--seeds", "2", "--json", str(scores)]
    assert main(evaluate) == 0
    printed = capsys.readouterr().out
    assert "4-way 5-shot, 20% flipped labels, SmallCNN" in printed
    assert "mean ± std over 2 seeds" in printed and "GCE q=0.7" in printed
    first = json.loads(scores.read_text())[0]
    assert first["tuned"]["protocol"]["select_by"] == "error"
    assert first["tuned"]["protocol"]["tasks"]["split"] == "meta-test"
    assert 0 <= first["tuned"]["losses"]["learned"]["error"] <= 1
    assert set(first["same_lr"]["losses"]) == {"CE", "learned"}


def test_meta_train_with_es_weights_and_keep_last(tmp_path, capsys):
    out = tmp_path / "loss"
    argv = ["meta-train", "sine", "--outliers", "0.4", "--start", "huber", "--out", str(out)]
    argv += ["--inputs", "input", "target", "residual", "--residual-form", "weight"]
    argv += ["--meta-gradient", "es", "--es-pairs", "2", "--es-sigma", "0.1", "--keep", "last"]
    assert main([*argv, *TINY_TRAIN]) == 0
    assert "kept the loss after the last step (3)" in capsys.readouterr().out
    loss = LearnedLoss.from_pretrained(out)
    assert loss.config.residual_form == "weight" and loss.config.output_activation == "huber"
    training = loss.metadata["training"]
    assert (training["meta_gradient"], training["es_pairs"], training["es_sigma"]) == ("es", 2, 0.1)
    assert training["kept"] == "last"
    assert json.loads((out / "recipe.json").read_text())["keep"] == "last"


TINY_EVALUATE = ["--steps", "2", "--n-tasks", "2", "--n-inits", "1", "--tune-tasks", "2"]
TINY_EVALUATE += ["--lr-range", "0.01", "0.02"]


def test_evaluate_several_losses_in_one_table(tmp_path, capsys):
    """Each loss's numbers are those of its own run; the baselines are listed once."""
    alone, both = tmp_path / "alone.json", tmp_path / "both.json"
    argv = ["evaluate", "sine", *TINY_EVALUATE, "--same-lr", "0.01"]
    assert main([*argv, "fit=mse-fit", "--json", str(alone)]) == 0
    assert main([*argv, "fit=mse-fit", "robust-regression", "--json", str(both)]) == 0
    printed = capsys.readouterr().out
    assert "robust-regression" in printed and printed.count("\nMSE ") == 4  # 2 runs x 2 tables
    one, two = json.loads(alone.read_text())[0], json.loads(both.read_text())[0]
    names = list(two["tuned"]["losses"])
    assert names[:3] == ["MSE", "fit", "robust-regression"]
    assert names[3:] == [n for n in one["tuned"]["losses"] if n not in ("MSE", "fit")]
    for name, row in one["tuned"]["losses"].items():
        assert two["tuned"]["losses"][name] == row
    assert list(two["same_lr"]["losses"]) == ["MSE", "fit", "robust-regression"]


def test_the_removed_evaluate_loss_form_is_refused(capsys):
    """Release 0.1's ``learnedloss evaluate LOSS`` (no family) was removed in 0.2."""
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", "mse-fit", *TINY_EVALUATE])
    assert exit.value.code == 2
    assert "invalid choice: 'mse-fit'" in capsys.readouterr().err
