"""A recipe's command-line options, generated from its settings' own declarations.

`add_recipe_options` turns every setting of a recipe class (`Recipe.setting_fields`: the
meta-training settings and the family's own) into one option, its type, choices, validator,
help and flag taken from the setting's `learnedloss.meta.settings.SettingSpec`, its default
from the recipe. The parsed values land under their own names in a namespace of their own,
and `recipe_from_options` builds the recipe from them through `Recipe.from_dict`, the same
path a stored recipe takes. So a setting is declared once, and a new one is an option with no
other edit.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

from learnedloss.cli.common import fail
from learnedloss.families.recipe import Recipe
from learnedloss.meta.settings import SettingField

PREFIX = "recipe."
"""The prefix of a generated option's ``dest``, which sets the recipe's options apart."""

GIVEN = "recipe_options_given"
"""The namespace attribute that holds the ``dest`` of every recipe option on the command
line (`StoreGiven`), as opposed to the ones left at their defaults."""


class StoreGiven(argparse.Action):
    """argparse's ``store``, which also records that the option was given (under `GIVEN`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, ()), self.dest})


def add_recipe_options(parser: argparse.ArgumentParser, recipe_class: type[Recipe]) -> None:
    """Add one option per setting of ``recipe_class`` that is a command-line option, with
    the recipe's defaults."""
    for item in recipe_class.setting_fields():
        if item.spec.option:
            parser.add_argument(flag(item), dest=PREFIX + item.name, **argparse_options(item))


def flag(item: SettingField) -> str:
    """A setting's command-line flag."""
    return item.spec.flag or "--" + item.name.replace("_", "-")


def check_applicable(recipe_class: type[Recipe], recipe: Recipe, args: argparse.Namespace) -> None:
    """Refuse (`learnedloss.cli.common.fail`) an option given on the command line that the
    recipe would ignore (`SettingSpec.applies_when`: ``--es-pairs`` without
    ``--meta-gradient es``)."""
    given = getattr(args, GIVEN, set())
    settings = {item.name: item for item in recipe_class.setting_fields()}
    values = recipe.to_dict()
    for name, item in settings.items():
        if item.spec.applies_when is None or PREFIX + name not in given:
            continue
        other, needed = item.spec.applies_when
        if values[other] != needed:
            needs = f"{flag(settings[other])} {needed}"
            fail(
                f"{flag(item)} applies only with {needs}, and this run uses "
                f"{flag(settings[other])} {values[other]}: drop {flag(item)} or add {needs}"
            )


def recipe_from_options(recipe_class: type[Recipe], args: argparse.Namespace) -> Recipe:
    """The recipe the options `add_recipe_options` added give."""
    values = {
        name.removeprefix(PREFIX): value
        for name, value in vars(args).items()
        if name.startswith(PREFIX)
    }
    return recipe_class.from_dict(values)


def argparse_options(item: SettingField) -> dict[str, Any]:
    """The `argparse.ArgumentParser.add_argument` keywords of one setting."""
    spec = item.spec
    default = list(item.default) if isinstance(item.default, tuple) else item.default
    help = spec.help.replace("%", "%%")
    if spec.action is not None:
        return {"action": spec.action, "default": default, "help": help}
    nargs, element = _arity(item.type)
    options: dict[str, Any] = {
        "action": StoreGiven,
        "default": default,
        "help": f"{help} (default: %(default)s)",
        "type": spec.parse or element,
    }
    if spec.nargs is not None or nargs is not None:
        options["nargs"] = spec.nargs if spec.nargs is not None else nargs
    if spec.choices is not None:
        options["choices"] = list(spec.choices)
    if spec.metavar is not None:
        options["metavar"] = spec.metavar
    elif options.get("nargs") == 2 and spec.choices is None:
        options["metavar"] = ("LOW", "HIGH")
    elif spec.choices is None:
        options["metavar"] = item.name.upper()
    return options


def _arity(annotation: Any) -> tuple[int | str | None, Any]:
    """``(nargs, element type)`` of a setting's type: ``"+"`` for ``tuple[X, ...]``, the
    length for a fixed-length tuple, ``None`` for one value (``X | None`` counts as ``X``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        arguments = typing.get_args(annotation)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return "+", arguments[0]
        return len(arguments), arguments[0]
    return None, annotation
