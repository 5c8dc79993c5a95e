"""Fixtures the broad families' tests share (noisy labels, robust regression)."""

from __future__ import annotations

import math

import pytest
import torch

from learnedloss.families.recipe import meta_train

TINY_ES_SCHEDULE = dict(
    outer_steps=2,
    inner_steps=3,
    meta_batch_size=2,
    es_pairs=1,
    validate_every=1,
    validation_size=2,
)
"""A recipe schedule small enough for a test: two outer steps of one ES pair."""


@pytest.fixture
def check_held_out_split():
    """``check(held_out, meta_train_tables, tables, recipe)``: the held-out tables and the
    meta-training ones split ``tables``, and ``recipe`` draws from none of the held-out."""

    def check(held_out, meta_train_tables, tables, recipe) -> None:
        assert not set(held_out) & set(meta_train_tables)
        assert not set(held_out) & set(recipe.sources)
        assert set(held_out) | set(meta_train_tables) == set(tables)

    return check


@pytest.fixture
def meta_train_tiny_es():
    """``run(recipe_class, family, **fields)``: meta-train ``recipe_class`` at
    `TINY_ES_SCHEDULE` (and ``fields``), check that every outer step was finite and that the
    loss moved from its start; return the loss."""

    def run(recipe_class, family: str, **fields):
        recipe = recipe_class(**TINY_ES_SCHEDULE, **fields)
        start = recipe.initial_loss()
        loss, trainer = meta_train(recipe, progress=False, family=family)
        assert all(math.isfinite(r["meta_train"]) for r in trainer.history)
        assert any(
            not torch.equal(a, b)
            for a, b in zip(start.state_dict().values(), loss.state_dict().values(), strict=True)
        )
        return loss

    return run
