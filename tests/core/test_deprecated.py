"""The import paths of release 0.1 still work for this release, and say they moved."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from learnedloss._deprecated import MOVED_MODULES, MOVED_TASK_NAMES

# One name users import from each old module, and where it lives now.
EXAMPLES = {
    "learnedloss.recipes": ("mse_start_config", "learnedloss.starts"),
    "learnedloss.baselines": ("standard_losses", "learnedloss.evaluation.baselines"),
    "learnedloss.plots": ("plot_landscapes", "learnedloss.families.shaped_sine.plots"),
    "learnedloss.shaping": ("FrequencyRecipe", "learnedloss.families.shaped_sine.recipe"),
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
}


def test_every_moved_module_has_an_example():
    assert set(EXAMPLES) == set(MOVED_MODULES)


@pytest.mark.parametrize("old", sorted(EXAMPLES))
def test_an_old_module_path_warns_and_gives_the_new_objects(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    name, new = EXAMPLES[old]
    with pytest.warns(DeprecationWarning, match=f"{old} moved to"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert name in dir(module)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", sorted(MOVED_TASK_NAMES))
def test_old_task_names_warn_and_give_the_family_classes(name):
    import learnedloss.tasks

    with pytest.warns(DeprecationWarning, match=f"learnedloss.tasks.{name} moved to"):
        old = getattr(learnedloss.tasks, name)
    assert old is getattr(importlib.import_module(MOVED_TASK_NAMES[name]), name)


def test_new_paths_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from learnedloss.families.sine import SineTasks  # noqa: F401
        from learnedloss.starts import mse_start_config  # noqa: F401
        from learnedloss.tasks import TaskFamily  # noqa: F401
