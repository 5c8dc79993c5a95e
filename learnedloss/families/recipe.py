"""The machinery every family's recipe shares: meta-train a loss as a recipe says, rebuild a
recipe from a loss's metadata, and save a run.

A recipe is a dataclass with ``tasks()``, ``initial_loss()`` and ``outer_steps``; its fields
named like `MetaTrainer` arguments are passed on.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, fields
from pathlib import Path

from learnedloss.loss import LearnedLoss
from learnedloss.meta.trainer import MetaTrainer


def meta_train(
    recipe,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    max_seconds: float | None = None,
    family: str | None = None,
    tasks=None,
    callbacks=(),
) -> tuple[LearnedLoss, MetaTrainer]:
    """Meta-train a loss as a recipe says; returns (best loss, trainer).

    A recipe is a dataclass with ``tasks()``, ``initial_loss()`` and ``outer_steps``; its
    fields named like `MetaTrainer` arguments (``inner_steps``, ``meta_lr``, ...) are passed
    on. Checkpoints are written at every validation. ``max_seconds`` stops early (see
    `MetaTrainer.fit`). With ``family``, the recipe is recorded in the loss's metadata as
    ``{"family": family, **recipe}``, so that commands can rebuild its tasks. ``tasks``
    replaces ``recipe.tasks()`` (for families built from more than the recipe, such as a
    fitted dynamics model) and ``callbacks`` go to the `MetaTrainer`.
    """
    accepted = set(inspect.signature(MetaTrainer).parameters)
    settings = {k: v for k, v in asdict(recipe).items() if k in accepted}
    trainer = MetaTrainer(
        recipe.initial_loss(),
        recipe.tasks() if tasks is None else tasks,
        **settings,
        callbacks=callbacks,
        run_dir=run_dir,
        checkpoint_every=max(1, settings.get("validate_every", 100)),
        device=device,
        progress=progress,
    )
    best = trainer.fit(recipe.outer_steps, resume=resume, max_seconds=max_seconds)
    if family is not None:
        best.metadata["recipe"] = {"family": family, **asdict(recipe)}
    return best, trainer


def recipe_from_metadata(loss: LearnedLoss, recipe_class):
    """The ``recipe_class`` a loss was meta-trained with, from the ``recipe`` its metadata
    records (`meta_train` with ``family``); fields it does not record keep their defaults
    (lists become tuples)."""
    saved = loss.metadata.get("recipe", {})
    names = {f.name for f in fields(recipe_class)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}
    return recipe_class(**values)


def save_run(out: str | Path, loss: LearnedLoss, trainer: MetaTrainer, recipe) -> Path:
    """Save the loss (save_pretrained) plus ``history.json`` and ``recipe.json`` (the recipe
    dataclass, e.g. `SineRecipe` or `FrequencyRecipe`) beside it."""
    out = Path(out)
    loss.save_pretrained(out)
    (out / "history.json").write_text(json.dumps(trainer.history))
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    return out
