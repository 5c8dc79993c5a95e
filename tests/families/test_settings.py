"""Settings as objects: a setting declared once is a CLI option, a stored recipe field and a
documented parameter; a misspelled one is an error naming it; stored recipes round-trip."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json

import pytest

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.bundled import bundled_names
from learnedloss.cli.options import add_recipe_options, recipe_from_options
from learnedloss.errors import ConfigError
from learnedloss.families.recipe import declare_recipe
from learnedloss.families.registry import FAMILIES, family
from learnedloss.families.sine.recipe import SineRecipe
from learnedloss.meta.settings import InnerLoop, MetaTrainingSettings, setting
from learnedloss.validators import non_negative_int

WARMUP_HELP = "inner steps taken at a tenth of the learning rate first"

WarmInnerLoop = dataclasses.make_dataclass(
    "WarmInnerLoop",
    [("warmup_steps", int, setting(0, WARMUP_HELP, parse=non_negative_int))],
    bases=(InnerLoop,),
    frozen=True,
)
"""`InnerLoop` with one new field, declared once."""


@declare_recipe
class WarmSineRecipe(SineRecipe):
    """`SineRecipe` whose inner loop has the new field."""

    settings: MetaTrainingSettings = dataclasses.replace(
        SineRecipe.default_settings(),
        inner=WarmInnerLoop(**dataclasses.asdict(SineRecipe.default_settings().inner)),
    )


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _parser(recipe_class) -> argparse.ArgumentParser:
    parser = Parser(prog="meta-train")
    add_recipe_options(parser, recipe_class)
    return parser


def test_a_new_setting_is_an_option_a_stored_field_and_a_documented_parameter():
    parser = _parser(WarmSineRecipe)
    recipe = recipe_from_options(WarmSineRecipe, parser.parse_args(["--warmup-steps", "3"]))
    assert recipe.warmup_steps == recipe.settings.inner.warmup_steps == 3
    assert recipe.inner_steps == SineRecipe().inner_steps  # the rest keeps its defaults
    assert "--warmup-steps" in parser.format_help() and "tenth of the" in parser.format_help()
    with pytest.raises(ValueError, match="'-1' is not a non-negative integer"):
        parser.parse_args(["--warmup-steps", "-1"])
    stored = json.loads(json.dumps(recipe.to_dict()))
    assert stored["warmup_steps"] == 3
    assert WarmSineRecipe.from_dict(stored) == recipe
    assert f"warmup_steps: {WARMUP_HELP} (default: 0)" in WarmSineRecipe.__doc__
    assert WarmSineRecipe(warmup_steps=2).settings.inner.warmup_steps == 2  # in code too


def test_defaults_of_the_options_are_the_recipe_defaults():
    for entry in FAMILIES:
        recipe_class = entry.parts().recipe
        assert recipe_from_options(recipe_class, _parser(recipe_class).parse_args([])) == (
            recipe_class()
        ), entry.name


def test_a_misspelled_setting_in_a_recipe_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="'inner_lrr' \\(did you mean 'inner_lr'\\?\\)"):
        SineRecipe(inner_lrr=0.1)
    with pytest.raises(ConfigError, match="'es_pairs'"):  # digits has no estimator settings
        family("digits").parts().recipe(es_pairs=2)
    with pytest.raises(ConfigError, match="'outer_step'"):
        SineRecipe().settings.replace(outer_step=3)


def test_a_misspelled_setting_in_a_stored_recipe_is_an_error_naming_it(small_loss):
    recipe_class = family("digits").parts().recipe
    small_loss.metadata["recipe"] = {"family": "digits", **recipe_class().to_dict()}
    assert recipe_class.from_loss(small_loss) == recipe_class()
    small_loss.metadata["recipe"]["n_shots"] = 3
    with pytest.raises(ConfigError, match="'n_shots' \\(did you mean 'n_shot'\\?\\)"):
        recipe_class.from_loss(small_loss)


def test_the_stored_recipes_of_the_bundled_losses_load_and_round_trip():
    loaded = 0
    for name in bundled_names():
        loss = LearnedLoss.from_pretrained(name)
        stored = loss.metadata.get("recipe")
        if stored is None:
            continue
        recipe = family(stored["family"]).parts().recipe.from_loss(loss)
        for key, value in stored.items():
            if key != "family":
                assert json.loads(json.dumps(recipe.to_dict()[key])) == value, (name, key)
        assert type(recipe).from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
        loaded += 1
    assert loaded >= 8


def test_setting_names_are_unique_and_reach_the_trainer_by_one_mapping():
    accepted = set(inspect.signature(MetaTrainer).parameters)
    for entry in FAMILIES:
        recipe_class = entry.parts().recipe
        names = [item.name for item in recipe_class.setting_fields()]
        assert len(names) == len(set(names)), entry.name
        assert set(recipe_class().settings.trainer_arguments()) <= accepted, entry.name
