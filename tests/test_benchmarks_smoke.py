"""The per-step and per-call benchmarks of issue 28 run as a user runs them and print their
tables: a header and one row per loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from learnedloss import LearnedLoss, bundled_names

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(path: str, *args: str, timeout: float = 120) -> list[str]:
    """Run a benchmark script with ``--quick``; return its standard output's lines."""
    command = [sys.executable, str(ROOT / path), "--quick", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def table_after(lines: list[str], heading: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and body rows (cells) of the first markdown table after a line that
    starts with ``heading``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
        elif table:
            break
    header, separator, *rows = table
    assert set("".join(separator)) == {"-"}
    return header, rows


@pytest.fixture(scope="module")
def bundled_by_kind() -> dict[str, dict[str, bool]]:
    """kind -> {bundled name: whether it is a drop-in (reads no side inputs)}."""
    kinds: dict[str, dict[str, bool]] = {"regression": {}, "classification": {}}
    for name in bundled_names():
        config = LearnedLoss.from_pretrained(name).config
        if config.kind in kinds:
            kinds[config.kind][name] = not config.side_inputs
    return kinds


def test_step_overhead_prints_a_row_per_loss(bundled_by_kind):
    lines = run_benchmark("benchmarks/step_overhead.py", "--device", "cpu")
    workloads = [("### tabular MLP", "regression", "nn.MSELoss")]
    workloads += [("### MLP 128-256-256-1", "regression", "nn.MSELoss")]
    workloads += [("### small CNN", "classification", "nn.CrossEntropyLoss")]
    for heading, kind, standard in workloads:
        header, rows = table_after(lines, heading)
        assert header[:5] == ["loss", "form", "ms/step", "+ms/step", "× standard"]
        drop_ins = [name for name, drop_in in bundled_by_kind[kind].items() if drop_in]
        left_out = [name for name, drop_in in bundled_by_kind[kind].items() if not drop_in]
        assert [row[0] for row in rows] == [standard, *drop_ins, *left_out]
        assert rows[0][4] == "1.00×"
        for name, cells in ((row[0], row) for row in rows[1:]):
            if bundled_by_kind[kind][name]:
                assert float(cells[2]) > 0 and cells[4].endswith("×")
            else:
                assert cells[2].startswith("skipped: reads side inputs")


def test_call_profile_prints_a_table_per_loss_and_the_targets(bundled_by_kind):
    lines = run_benchmark("benchmarks/call_profile.py")
    standard = {
        "regression": ["nn.HuberLoss", "nn.MSELoss"],
        "classification": ["nn.CrossEntropyLoss"],
    }
    for kind, names in bundled_by_kind.items():
        losses = standard[kind] + [name for name, drop_in in names.items() if drop_in]
        for loss in losses:
            header, rows = table_after(lines, f"#### {loss} ({kind}")
            assert header[:4] == ["elements", "µs/call", f"× {standard[kind][0]}", "aten ops/call"]
            assert [row[0] for row in rows] == ["32", "256"]
            assert all(float(row[3]) > 0 for row in rows)
        header, rows = table_after(lines, f"### Per call, {kind}")
        shapes = {"regression": 3, "classification": 2}[kind]
        assert header[:2] == ["loss", "form"] and len(header) == 2 + shapes
        assert [row[0] for row in rows] == losses
        assert rows[0][2].endswith("(1.00×)")


def test_adaptive_losses_prints_a_table_per_condition_with_every_group(tmp_path):
    """Issue 27's result tables at the tiniest size: one table per condition, the learned
    loss, the tuned and default baselines and the control as rows, and a JSON file."""
    from learnedloss.evaluation.baselines import (
        noisy_label_baselines,
        noisy_label_defaults,
        robust_regression_baselines,
        robust_regression_defaults,
    )

    path = tmp_path / "tables.json"
    lines = run_benchmark("benchmarks/adaptive_losses.py", "--json", str(path), timeout=300)
    sides = [
        (
            "### regression: diabetes",
            "robust-regression",
            "ratio",
            robust_regression_baselines(),
            robust_regression_defaults(),
        ),
        (
            "### classification: digits",
            "noisy-labels",
            "points",
            noisy_label_baselines(),
            noisy_label_defaults(),
        ),
    ]
    for heading, learned, unit, tuned, defaults in sides:
        header, rows = table_after(lines, heading)
        assert header[:3] == ["loss", "group", "last step"]
        assert f"vs best tuned ({unit})" in header and f"vs best default ({unit})" in header
        expected = [learned, *(name for name in tuned if not name.startswith("1.5 x"))]
        expected += [name for name in defaults if name not in tuned]
        expected += [name for name in tuned if name.startswith("1.5 x")]
        assert [row[0] for row in rows] == expected
        assert all("±" in row[2] for row in rows)
    results = json.loads(path.read_text())["results"]
    assert [r["condition"]["kind"] for r in results] == ["regression", "classification"]
    assert all(len(r["seeds"]) == 2 for r in results)
