"""The docs build strictly, and the examples run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(path: str, *args: str) -> str:
    """Run a repository script as a user would; return its standard output."""
    command = [sys.executable, str(ROOT / path), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_docs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "from_pretrained" in api and "push_to_hub" in api


def test_swap_example_runs_and_plots(tmp_path):
    png = tmp_path / "swap.png"
    stdout = run_script(
        "examples/swap_mse.py",
        "--steps",
        "60",
        "--seeds",
        "2",
        "--plot",
        str(png),
    )
    lines = stdout.splitlines()
    assert any(line.startswith("nn.MSELoss()") for line in lines)
    assert any("LearnedLoss.from_pretrained('mse-fit')" in line for line in lines)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kind", "size", "standard"),
    [("regression", "64x1", "MSELoss"), ("classification", "32x10", "CrossEntropyLoss")],
)
def test_benchmark_prints_a_table(kind, size, standard):
    quick = ["--repeats", "2", "--warmup", "1", "--no-compile"]
    stdout = run_script("benchmarks/loss_overhead.py", "--kind", kind, "--sizes", size, *quick)
    header, row = stdout.splitlines()[1:3]
    assert f"{standard} (ms)" in header and row.split("|")[0].strip() == size


def test_meta_speed_benchmark_times_the_mountain_car_recipe():
    quick = ["--batches", "2", "--inner-steps", "1", "--repeats", "1", "--paths", "vmap"]
    stdout = run_script("benchmarks/meta_speed.py", "--family", "mountain-car", *quick)
    assert stdout.startswith("family=mountain-car")
    row = stdout.splitlines()[2].split("|")
    assert [cell.strip() for cell in (row[0], row[1], row[-1])] == ["2", "vmap", "n/a"]
    assert float(row[2]) > 0


def test_custom_tasks_example_meta_trains_on_real_data(tmp_path):
    stdout = run_script(
        "examples/custom_tasks.py",
        "--outer-steps",
        "2",
        "--inner-steps",
        "3",
        "--out",
        str(tmp_path / "loss"),
    )
    assert "the loss started as MSE" in stdout
    assert "learned" in stdout and "1.5 x MSE" in stdout
    assert (tmp_path / "loss" / "model.safetensors").is_file()


@pytest.mark.slow
def test_ml3_reference_result_reproduces():
    """ML3's protocol: the learned loss beats MSE at the shared lr 1e-3 (reference 0.62)."""
    stdout = run_script("examples/reproduce_ml3_sine.py", "--seeds", "2")
    line = next(x for x in stdout.splitlines() if x.startswith("ratio learned / MSE"))
    ours = float(line.split("ours ")[1].split(",")[0])
    assert ours < 0.62


def test_robust_headroom_example_compares_with_the_oracle():
    stdout = run_script(
        "examples/robust_headroom.py",
        "--outliers",
        "0.2",
        "--n-tasks",
        "3",
        "--tune-tasks",
        "2",
        "--steps",
        "5",
        "--learned",
        "mse-fit",
    )
    rows = {line.split("|")[0].strip() for line in stdout.splitlines() if "|" in line}
    assert {"oracle", "Huber d=0.5", "L1", "gated Huber d=0.5", "learned (mse-fit)"} <= rows
    assert "80 clean points" in stdout


def test_shaped_sine_example_runs_and_plots(tmp_path):
    png = tmp_path / "landscape.png"
    stdout = run_script(
        "examples/shaped_sine.py",
        "--outer-steps",
        "20",
        "--finetune-steps",
        "5",
        "--n-tasks",
        "5",
        "--plot",
        str(png),
    )
    names = {line.split("|")[1].strip() for line in stdout.splitlines() if "|" in line}
    assert {"shaped", "unshaped", "MSE (lr 1)", "MSE (tuned lr)"} <= names
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_mountain_car_example_runs_and_plots(tmp_path):
    png = tmp_path / "trajectories.png"
    stdout = run_script(
        "examples/mountain_car.py", "--outer-steps", "1", "--n-random", "2", "--plot", str(png)
    )
    names = {line.split("|")[1].strip() for line in stdout.splitlines() if "|" in line}
    assert {"shaped", "unshaped", "task cost (lr 0.1)", "task cost (tuned lr)"} <= names
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_swap_cross_entropy_example_runs_both_losses():
    stdout = run_script(
        "examples/swap_cross_entropy.py",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--lrs",
        "0.1",
        "--label-noise",
        "0.4",
        "--loss",
        "noisy-labels",
    )
    rows = {line.split("|")[0].strip(): line for line in stdout.splitlines() if "|" in line}
    assert {"nn.CrossEntropyLoss", "noisy-labels"} <= set(rows)
    accuracy = float(rows["noisy-labels"].split("|")[2].split("±")[0])
    assert 0.0 <= accuracy <= 1.0


def test_classification_report_gives_mean_and_std_over_seeds(tmp_path):
    report = tmp_path / "report.json"
    run_script(
        "examples/classification_report.py",
        "digits-classification",
        "digits-classification",
        "--conditions",
        "n_way=2,n_shot=5",
        "--steps",
        "5",
        "--n-tasks",
        "2",
        "--tune-tasks",
        "2",
        "--json",
        str(report),
    )
    rows = json.loads(report.read_text())["n_way=2,n_shot=5"]["losses"]
    assert {"learned", "CE", "GCE q=0.7", "CE, smoothing 0.1", "1.5 x CE"} <= set(rows)
    assert len(rows["learned"]["accuracy"]) == 2  # one per loss (seed)
    assert any(name.startswith("learned at lr") for name in rows)


@pytest.mark.slow
def test_robust_sine_es_example_meta_trains_and_scores_against_huber():
    stdout = run_script(
        "examples/robust_sine_es.py", "--outer-steps", "1", "--n-tasks", "2", "--tune-tasks", "2"
    )
    rows = {line.split("|")[0].strip() for line in stdout.splitlines() if "|" in line}
    assert {"Huber d=0.5", "Huber d=1", "learned"} <= rows
    assert "best meta-validation" in stdout


def test_progress_schedule_example_meta_trains_and_trains_with_and_without_the_line():
    stdout = run_script(
        "examples/progress_schedule.py", "--outer-steps", "1", "--seeds", "2", "--steps", "20"
    )
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 2 and "±" in cells[1]:
            rows[cells[0]] = float(cells[1].split("±")[0])
    assert list(rows) == [
        "nn.MSELoss()",
        "nn.HuberLoss()",
        "learned, no extra line",
        "learned, loss_fn.progress(step, total)",
    ]
    assert all(0 < value < float("inf") for value in rows.values())
    # the schedule changes training: the two learned rows train differently
    assert rows["learned, no extra line"] != rows["learned, loss_fn.progress(step, total)"]


@pytest.mark.slow
def test_es_cost_benchmark_prints_its_table():
    stdout = run_script(
        "benchmarks/es_cost.py",
        "--pairs",
        "1",
        "--meta-batch",
        "2",
        "--inner-steps",
        "2",
        "--repeats",
        "1",
    )
    rows = [line.split("|") for line in stdout.splitlines() if "|" in line][1:]
    assert [row[0].strip() for row in rows] == ["backprop (exact)", "ES, 1 pairs"]
    assert all(float(row[1]) > 0 for row in rows)


@pytest.mark.slow
def test_policy_gradient_example_meta_trains_and_compares(tmp_path):
    png = tmp_path / "pg.png"
    stdout = run_script(
        "examples/policy_gradient.py",
        "--outer-steps",
        "1",
        "--n-tasks",
        "2",
        "--tune-tasks",
        "2",
        "--plot",
        str(png),
    )
    assert "REINFORCE + baseline" in stdout and "learned / REINFORCE + baseline" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reacher_example_meta_trains_and_measures_in_mujoco():
    stdout = run_script(
        "examples/reacher.py",
        "--outer-steps",
        "1",
        "--random-episodes",
        "4",
        "--fit-steps",
        "20",
        "--seeds",
        "1",
        "--n-goals",
        "2",
    )
    assert "collapsed at: None" in stdout
    assert "task loss (tuned lr)" in stdout and "mean ± std over 1 seeds" in stdout
