"""Old import paths, kept for one release: importing one warns and gives the new module.

Release 0.2 moved each task family into its own folder under `learnedloss.families` and the
evaluation helpers into `learnedloss.evaluation`. ``import learnedloss.shaping`` and the
like still work until the next release: a finder on ``sys.meta_path`` answers for the old
names with a module that looks its attributes up in the new homes, and warns with a
`DeprecationWarning` that names them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "learnedloss.recipes": (
        "learnedloss.starts",
        "learnedloss.families.recipe",
        "learnedloss.families.sine.recipe",
    ),
    "learnedloss.baselines": ("learnedloss.evaluation.baselines",),
    "learnedloss.plots": (
        "learnedloss.evaluation.plots",
        "learnedloss.families.shaped_sine.plots",
        "learnedloss.families.mountain_car.plots",
    ),
    "learnedloss.shaping": ("learnedloss.families.shaped_sine.recipe",),
    "learnedloss.control": ("learnedloss.families.mountain_car.recipe",),
    "learnedloss.digits_recipe": ("learnedloss.families.digits.recipe",),
    "learnedloss.policy_gradient": (
        "learnedloss.families.policy_gradient.recipe",
        "learnedloss.starts",
    ),
    "learnedloss.model_based": ("learnedloss.families.reacher.recipe",),
    "learnedloss.classification": ("learnedloss.kinds.classification",),
    "learnedloss.tasks.sine": ("learnedloss.families.sine.tasks", "learnedloss.tasks.models"),
    "learnedloss.tasks.frequency": ("learnedloss.families.shaped_sine.tasks",),
    "learnedloss.tasks.mountain_car": ("learnedloss.families.mountain_car.tasks",),
    "learnedloss.tasks.digits": ("learnedloss.families.digits.tasks",),
    "learnedloss.tasks.point_mass": ("learnedloss.families.policy_gradient.point_mass",),
    "learnedloss.tasks.cart_pole": ("learnedloss.families.policy_gradient.cart_pole",),
    "learnedloss.tasks.episodes": ("learnedloss.families.policy_gradient.episodes",),
    "learnedloss.tasks.reacher": ("learnedloss.families.reacher.tasks",),
}
"""Each old module path and the modules its names now live in, searched in order."""

MOVED_TASK_NAMES: dict[str, str] = {
    "SineTasks": "learnedloss.families.sine.tasks",
    "CartPoleTasks": "learnedloss.families.policy_gradient.cart_pole",
    "PointMassGoals": "learnedloss.families.policy_gradient.point_mass",
    "ReacherGoals": "learnedloss.families.reacher.tasks",
}
"""Names ``learnedloss.tasks`` exported before the move, and their new modules."""


def warn_moved(old: str, new: str) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``, pointing at the caller's import."""
    warnings.warn(
        f"{old} moved to {new}; the old path works in this release only",
        DeprecationWarning,
        stacklevel=3,
    )


class _MovedModule(types.ModuleType):
    """Stands in for an old module: attributes come from the new modules."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Deprecated: moved to {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attribute):
                return getattr(module, attribute)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attribute!r}")

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for target in self._targets:
            names.update(n for n in dir(importlib.import_module(target)) if not n.startswith("_"))
        return sorted(names)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        targets = MOVED_MODULES[spec.name]
        warn_moved(spec.name, " and ".join(targets))
        return _MovedModule(spec.name, targets)

    def exec_module(self, module) -> None:
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
