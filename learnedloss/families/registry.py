"""The task families, in one place: what the ``learnedloss`` command, its ``evaluate`` loop and
the model cards loop over.

Adding a family is one folder under ``learnedloss/families/`` (``tasks.py``, ``recipe.py`` and a
``family.py`` whose ``PARTS`` is a `FamilyParts`) and one line in `FAMILIES`. A `Family` holds
its name, help and kind; its recipe (the settings, from which ``learnedloss meta-train NAME``
builds its options), its tasks (``recipe.tasks()``), its evaluation and its demo come from its
parts, which are imported only when the family runs, so that ``learnedloss --help`` stays fast
and optional dependencies (MuJoCo for the reacher, gymnasium for the cart-pole) load only when
needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from learnedloss.errors import UnknownFamilyError

if TYPE_CHECKING:
    from learnedloss.families.parts import FamilyParts


@dataclass(frozen=True)
class Family:
    """One task family.

    Attributes:
        name: the name on the command line (``learnedloss meta-train NAME``).
        help: one line for ``--help``.
        kind: the kind of loss the family meta-trains and evaluates (`LossConfig.kind`).
        docs: the docs page that describes the family and its results.
        resumable: whether ``meta-train --resume`` can continue a run.
    """

    name: str
    help: str
    kind: str
    docs: str
    resumable: bool = True

    @property
    def module(self) -> str:
        """The module whose ``PARTS`` are the family's recipe, evaluation and demo."""
        return f"learnedloss.families.{self.name.replace('-', '_')}.family"

    def parts(self) -> FamilyParts:
        """The family's `FamilyParts` (imports the family)."""
        return importlib.import_module(self.module).PARTS


FAMILIES: tuple[Family, ...] = (
    Family(
        "sine",
        "sine regression, optionally with outlier targets (ML3 sec. V-A)",
        "regression",
        "sine.md",
    ),
    Family(
        "shaped-sine",
        "frequency recovery, shaped with the true frequency (ML3 sec. V-C)",
        "regression",
        "shaped-sine.md",
    ),
    Family(
        "mountain-car",
        "mountain car, shaped with a waypoint (ML3 sec. V-C)",
        "regression",
        "mountain-car.md",
    ),
    Family(
        "digits",
        "few-shot classification of the bundled digits (a drop-in for cross-entropy)",
        "classification",
        "classification.md",
    ),
    Family(
        "policy-gradient",
        "model-free RL: a drop-in for REINFORCE on point-mass goals or cart-poles",
        "policy_gradient",
        "policy-gradient.md",
    ),
    Family(
        "robust-regression",
        "regression with up to 40 percent corrupted targets, many tables and functions",
        "regression",
        "robust-regression.md",
    ),
    Family(
        "noisy-labels",
        "classification with up to 60 percent flipped labels at 2 to 100 classes",
        "classification",
        "noisy-labels.md",
    ),
    Family(
        "reacher",
        "model-based RL: MuJoCo's reacher through a learned dynamics model",
        "regression",
        "model-based-rl.md",
        resumable=False,
    ),
)
"""Every family, in the order ``--help`` lists them."""


def names() -> list[str]:
    """The registered families' names, in order."""
    return [f.name for f in FAMILIES]


def family(name: str) -> Family:
    """The family called ``name``; an `UnknownFamilyError` naming the known ones if there is
    none."""
    for candidate in FAMILIES:
        if candidate.name == name:
            return candidate
    raise UnknownFamilyError(f"unknown family {name!r}; the families are {', '.join(names())}")


DEMO = "robust-regression"
"""The family whose demo ``learnedloss demo`` runs."""

META_TRAINING_DEMO = "sine"
"""The family whose demo ``learnedloss demo --meta-train`` runs."""
