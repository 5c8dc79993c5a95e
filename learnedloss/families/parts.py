"""What a family is made of besides its name: its recipe, how it meta-trains, its evaluation
and its demo. Each family's ``family.py`` declares one `FamilyParts` as ``PARTS``; the
registry (`learnedloss.families.registry.Family.parts`) imports it when the family runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from learnedloss.families.recipe import Recipe, meta_train
from learnedloss.loss import LearnedLoss


@dataclass(frozen=True)
class FamilyParts:
    """A family's recipe, meta-training, evaluation and demo.

    Attributes:
        recipe: the recipe class: its settings become ``learnedloss meta-train NAME``'s
            options, and its ``tasks()`` are the family's tasks.
        add_evaluate_arguments: adds the family's own options of ``learnedloss evaluate
            NAME`` (the losses, ``--seeds``, ``--json`` and ``--threads`` are added for every
            family).
        evaluate: ``evaluate(args, {name: LearnedLoss})`` prints the tables and returns one
            JSON-ready result per evaluation seed.
        meta_train: ``meta_train(recipe, *, family, run_dir, resume, device, max_seconds,
            overwrite)`` returns ``(loss, trainer)`` (default:
            `learnedloss.families.recipe.meta_train`).
        demo: ``demo(args) -> exit status``, for families that have one.
    """

    recipe: type[Recipe]
    add_evaluate_arguments: Callable[[argparse.ArgumentParser], None]
    evaluate: Callable[[argparse.Namespace, dict[str, LearnedLoss]], list[dict]]
    meta_train: Callable[..., tuple[LearnedLoss, Any]] = meta_train
    demo: Callable[[argparse.Namespace], int] | None = None
