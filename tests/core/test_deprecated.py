"""Release 0.2.0 removed the import paths that release 0.1 kept for one release: each old path
now fails at once, each replacement works, and CHANGELOG.md lists every removal."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REMOVED_MODULES = {
    "learnedloss.recipes": ("mse_start_config", "learnedloss.starts"),
    "learnedloss.baselines": ("standard_losses", "learnedloss.evaluation.baselines"),
    "learnedloss.plots": ("plot_landscapes", "learnedloss.families.shaped_sine.plots"),
    "learnedloss.shaping": ("ShapedSineRecipe", "learnedloss.families.shaped_sine.recipe"),
    "learnedloss.control": ("MountainCarRecipe", "learnedloss.families.mountain_car.recipe"),
    "learnedloss.digits_recipe": ("DigitsRecipe", "learnedloss.families.digits.recipe"),
    "learnedloss.policy_gradient": ("reinforce_start_config", "learnedloss.starts"),
    "learnedloss.model_based": ("ReacherRecipe", "learnedloss.families.reacher.recipe"),
    "learnedloss.classification": ("class_features", "learnedloss.kinds.classification"),
    "learnedloss.tasks.sine": ("mlp", "learnedloss.tasks.models"),
    "learnedloss.tasks.frequency": ("FrequencyTasks", "learnedloss.families.shaped_sine.tasks"),
    "learnedloss.tasks.mountain_car": (
        "MountainCarTasks",
        "learnedloss.families.mountain_car.tasks",
    ),
    "learnedloss.tasks.digits": ("DigitsTasks", "learnedloss.families.digits.tasks"),
    "learnedloss.tasks.point_mass": (
        "PointMassGoals",
        "learnedloss.families.policy_gradient.point_mass",
    ),
    "learnedloss.tasks.cart_pole": (
        "CartPoleTasks",
        "learnedloss.families.policy_gradient.cart_pole",
    ),
    "learnedloss.tasks.episodes": (
        "sample_episodes",
        "learnedloss.families.policy_gradient.episodes",
    ),
    "learnedloss.tasks.reacher": ("ReacherGoals", "learnedloss.families.reacher.tasks"),
    "learnedloss.networks.starts": ("grid_start_config", "learnedloss.starts"),
}
"""Each removed module, and one name users imported from it with the module it lives in now."""

REMOVED_NAMES = {
    ("learnedloss.tasks", "SineTasks"): "learnedloss.families.sine",
    ("learnedloss.tasks", "CartPoleTasks"): "learnedloss.families.policy_gradient",
    ("learnedloss.tasks", "PointMassGoals"): "learnedloss.families.policy_gradient",
    ("learnedloss.tasks", "ReacherGoals"): "learnedloss.families.reacher",
    ("learnedloss.networks", "grid_start_config"): "learnedloss.starts",
    ("learnedloss.networks", "taylor_start_config"): "learnedloss.starts",
    ("learnedloss.families.shaped_sine", "FrequencyRecipe"): "learnedloss.families.shaped_sine",
}
"""Each removed name, as (module, name), and the module that holds it (or its new name) now."""

RENAMED = {"FrequencyRecipe": "ShapedSineRecipe"}
"""Names that did not only move but were renamed."""


@pytest.mark.parametrize("old", sorted(REMOVED_MODULES))
def test_a_removed_module_path_is_gone(old):
    sys.modules.pop(old, None)
    with pytest.raises(ModuleNotFoundError, match=old.replace(".", r"\.")):
        importlib.import_module(old)


@pytest.mark.parametrize("old", sorted(REMOVED_MODULES))
def test_the_replacement_of_a_removed_module_works(old):
    name, new = REMOVED_MODULES[old]
    assert getattr(importlib.import_module(new), name) is not None


@pytest.mark.parametrize(("module", "name"), sorted(REMOVED_NAMES))
def test_a_removed_name_is_gone_and_its_replacement_works(module, name):
    with pytest.raises(AttributeError, match=f"has no attribute '{name}'"):
        getattr(importlib.import_module(module), name)
    new = importlib.import_module(REMOVED_NAMES[module, name])
    assert getattr(new, RENAMED.get(name, name)) is not None


def test_the_finder_for_old_paths_is_gone():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("learnedloss._deprecated")
    assert not [f for f in sys.meta_path if type(f).__module__.startswith("learnedloss")]


def test_the_new_paths_import_without_any_warning():
    script = (
        "import learnedloss\n"
        "from learnedloss.families.sine import SineTasks\n"
        "from learnedloss.families.shaped_sine import ShapedSineRecipe\n"
        "from learnedloss.starts import grid_start_config, mse_start_config\n"
        "from learnedloss.tasks import TaskFamily\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_changelog_lists_every_removal_with_its_replacement():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    rows = [line for line in changelog.splitlines() if line.startswith("| `")]
    for old, (_, new) in REMOVED_MODULES.items():
        assert any(f"| `{old}`" in row and new in row for row in rows), old
    for (module, name), new in REMOVED_NAMES.items():
        row = next((r for r in rows if r.startswith(f"| `{module}.{name}`")), None)
        assert row is not None and f"{new}." in row, f"{module}.{name}"
