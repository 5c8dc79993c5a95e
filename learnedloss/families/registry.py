"""The task families, in one place: what the ``learnedloss`` command, its ``evaluate`` loop and
the model cards loop over.

Adding a family is one folder under ``learnedloss/families/`` (``tasks.py``, ``recipe.py`` and
a ``cli.py`` with the four hooks below) and one line in `FAMILIES`.

A family's ``cli.py`` provides:

- ``add_meta_train_arguments(parser)``: the recipe's options of ``learnedloss meta-train NAME``;
- ``run_meta_train(args, max_seconds) -> int``: meta-train and save the loss;
- ``add_evaluate_arguments(parser)``: the family's own options of ``learnedloss evaluate NAME``
  (the losses, ``--seeds``, ``--json`` and ``--threads`` are added for every family);
- ``run_evaluate(args, losses) -> list[dict]``: evaluate ``{name: LearnedLoss}``, print the
  tables and return one JSON-ready result per evaluation seed.

The module is imported only when its family runs, so that ``learnedloss --help`` stays fast and
optional dependencies (MuJoCo for the reacher, gymnasium for the cart-pole) load only when
needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


class UnknownFamilyError(LookupError):
    """No registered family has that name (or evaluates that kind of loss by default)."""


@dataclass(frozen=True)
class Family:
    """One task family.

    Attributes:
        name: the name on the command line (``learnedloss meta-train NAME``).
        help: one line for ``--help``.
        module: the module with the family's CLI hooks, imported when the family runs.
        kind: the kind of loss the family meta-trains and evaluates (`LossConfig.kind`).
        docs: the docs page that describes the family and its results.
        default_for_kind: the family the deprecated ``learnedloss evaluate LOSS`` form picks
            for losses of ``kind`` (one per kind at most).
        resumable: whether ``meta-train --resume`` can continue a run.
        evaluate_alias: a deprecated ``learnedloss evaluate-*`` command for
            ``learnedloss evaluate NAME``.
    """

    name: str
    help: str
    module: str
    kind: str
    docs: str
    default_for_kind: bool = False
    resumable: bool = True
    evaluate_alias: str | None = None

    def cli(self) -> ModuleType:
        """The family's CLI hooks (imports the module, and the family with it)."""
        return importlib.import_module(self.module)


def _family(name: str, help: str, kind: str, docs: str, **options) -> Family:
    module = f"learnedloss.families.{name.replace('-', '_')}.cli"
    return Family(name, help, module, kind, docs, **options)


FAMILIES: tuple[Family, ...] = (
    _family(
        "sine",
        "sine regression, optionally with outlier targets (ML3 sec. V-A)",
        "regression",
        "sine.md",
        default_for_kind=True,
    ),
    _family(
        "shaped-sine",
        "frequency recovery, shaped with the true frequency (ML3 sec. V-C)",
        "regression",
        "shaping.md",
        evaluate_alias="evaluate-shaped",
    ),
    _family(
        "mountain-car",
        "mountain car, shaped with a waypoint (ML3 sec. V-C)",
        "regression",
        "mountain-car.md",
        evaluate_alias="evaluate-mountain-car",
    ),
    _family(
        "digits",
        "few-shot classification of the bundled digits (a drop-in for cross-entropy)",
        "classification",
        "classification.md",
        default_for_kind=True,
    ),
    _family(
        "policy-gradient",
        "model-free RL: a drop-in for REINFORCE on point-mass goals or cart-poles",
        "policy_gradient",
        "policy-gradient.md",
        default_for_kind=True,
    ),
    _family(
        "robust-regression",
        "regression with up to 40 percent corrupted targets, many tables and functions",
        "regression",
        "robust-regression.md",
    ),
    _family(
        "noisy-labels",
        "classification with up to 60 percent flipped labels at 2 to 100 classes",
        "classification",
        "noisy-labels.md",
    ),
    _family(
        "reacher",
        "model-based RL: MuJoCo's reacher through a learned dynamics model",
        "regression",
        "model-based-rl.md",
        resumable=False,
        evaluate_alias="evaluate-reacher",
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


def family_for_kind(kind: str) -> Family:
    """The family that evaluates losses of ``kind`` by default (the deprecated
    ``learnedloss evaluate LOSS`` form)."""
    for candidate in FAMILIES:
        if candidate.default_for_kind and candidate.kind == kind:
            return candidate
    raise UnknownFamilyError(
        f"no family evaluates {kind!r} losses by default; name one of {', '.join(names())}"
    )
