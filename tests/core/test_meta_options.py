"""MetaTrainer's options as objects: any torchopt inner optimizer, meta-gradient estimators,
the removed ES keywords, and recipes that share a base and leave the global RNG alone."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import pytest
import torch
import torchopt

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.families.digits.recipe import DigitsRecipe
from learnedloss.families.mountain_car.recipe import MountainCarRecipe
from learnedloss.families.policy_gradient.recipe import PolicyGradientRecipe
from learnedloss.families.reacher.recipe import ReacherRecipe, meta_train_reacher
from learnedloss.families.recipe import (
    MetaGradientRecipe,
    Recipe,
    meta_train,
    seeded,
)
from learnedloss.families.shaped_sine.recipe import ShapedSineRecipe, meta_train_frequency
from learnedloss.families.sine.recipe import SineRecipe
from learnedloss.meta import Backprop, EvolutionStrategies, MetaGradient, meta_gradient_from
from learnedloss.meta.inner import initial_params, make_inner_optimizer
from learnedloss.tasks import TaskFamily
from tests.core.test_trainer import TINY, make_loss, tiny_tasks

RECIPES = (
    SineRecipe,
    ShapedSineRecipe,
    MountainCarRecipe,
    DigitsRecipe,
    PolicyGradientRecipe,
    ReacherRecipe,
)
ES_SETTINGS = dict(TINY, validate_every=1)
WITHOUT_LR = {k: v for k, v in TINY.items() if k != "inner_lr"}


def meta_gradient_of(trainer: MetaTrainer) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    batch = trainer.tasks.sample(4, generator)
    _, params = initial_params(trainer.tasks.make_model, 4, generator)
    trainer.meta_objective(batch, params).backward()
    return [p.grad.clone() for p in trainer.loss.parameters()]


# ----------------------------------------------------------------- inner optimizers


@pytest.mark.parametrize(
    "shorthand, transformation",
    [("sgd", lambda lr: torchopt.sgd(lr)), ("adam", lambda lr: torchopt.adam(lr, eps_root=1e-8))],
)
def test_a_torchopt_transformation_gives_the_meta_gradient_of_its_shorthand(
    shorthand, transformation
):
    by_name = MetaTrainer(
        make_loss(), tiny_tasks(), inner_optimizer=shorthand, inner_lr=0.02, **WITHOUT_LR
    )
    custom = MetaTrainer(
        make_loss(), tiny_tasks(), inner_optimizer=transformation(0.02), **WITHOUT_LR
    )
    for a, b in zip(meta_gradient_of(by_name), meta_gradient_of(custom), strict=True):
        assert torch.equal(a, b)
    assert custom.inner_lr is None
    training = custom.describe()
    assert training["inner_optimizer"] == "torchopt.GradientTransformation"
    assert training["inner_lr"] is None
    json.dumps(training)  # what is recorded stays JSON
    assert by_name.describe()["inner_optimizer"] == shorthand


def test_a_chained_transformation_runs_and_records_json(tmp_path):
    inner = torchopt.chain(torchopt.transform.add_decayed_weights(1e-3), torchopt.sgd(0.02))
    trainer = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        inner_optimizer=inner,
        validate_every=1,
        run_dir=tmp_path / "run",
        checkpoint_every=1,
        **WITHOUT_LR,
    )
    best = trainer.fit(1)
    assert trainer.path == "vmap"
    assert all(math.isfinite(r["meta_train"]) and not r["skipped"] for r in trainer.history)
    best.save_pretrained(tmp_path / "loss")
    training = LearnedLoss.from_pretrained(tmp_path / "loss").metadata["training"]
    assert training["inner_optimizer"] == "torchopt.GradientTransformation"
    assert training["inner_lr"] is None
    resumed = MetaTrainer(
        make_loss(),
        tiny_tasks(),
        inner_optimizer=inner,
        validate_every=1,
        run_dir=tmp_path / "run",
        **WITHOUT_LR,
    )
    resumed.fit(2, resume=True)
    assert resumed.step == 2


def test_the_shorthands_keep_their_default_learning_rate():
    trainer = MetaTrainer(make_loss(), tiny_tasks(), progress=False)
    assert trainer.inner_lr == 1e-3 and trainer.describe()["inner_lr"] == 1e-3
    with pytest.raises(ValueError, match="needs a learning rate"):
        make_inner_optimizer("sgd")
    assert make_inner_optimizer(torchopt.sgd(0.1)) is not None


# ----------------------------------------------------------------- meta-gradient estimators


def test_strings_map_to_the_estimators():
    assert meta_gradient_from("backprop") == Backprop()
    assert meta_gradient_from("backprop", 3, 0.1) == Backprop()
    assert meta_gradient_from("es") == EvolutionStrategies(pairs=16, sigma=0.05)
    assert meta_gradient_from("es", 4, None) == EvolutionStrategies(pairs=4)
    es = EvolutionStrategies(pairs=2, sigma=1)
    assert meta_gradient_from(es) is es and isinstance(es.sigma, float)
    assert isinstance(es, MetaGradient)
    assert Backprop().describe() == {}
    assert es.describe() == {"meta_gradient": "es", "es_pairs": 2, "es_sigma": 1.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        es.pairs = 3  # type: ignore[misc]


def test_the_es_object_trains_exactly_as_the_string_and_keywords():
    by_object = MetaTrainer(
        make_loss(),
        tiny_tasks(outlier_fraction=0.2),
        meta_gradient=EvolutionStrategies(pairs=3, sigma=0.05),
        **ES_SETTINGS,
    )
    by_keywords = MetaTrainer(
        make_loss(),
        tiny_tasks(outlier_fraction=0.2),
        meta_gradient=meta_gradient_from("es", pairs=3, sigma=0.05),
        **ES_SETTINGS,
    )
    by_object.fit(2)
    by_keywords.fit(2)
    for k, v in by_keywords.loss.state_dict().items():
        assert torch.equal(by_object.loss.state_dict()[k], v), k
    assert by_object.history == by_keywords.history
    assert by_object.describe() == by_keywords.describe()
    assert by_object.describe()["es_pairs"] == 3


def test_the_backprop_object_trains_exactly_as_the_default():
    default = MetaTrainer(make_loss(), tiny_tasks(), **ES_SETTINGS)
    explicit = MetaTrainer(make_loss(), tiny_tasks(), meta_gradient=Backprop(), **ES_SETTINGS)
    default.fit(2)
    explicit.fit(2)
    for k, v in default.loss.state_dict().items():
        assert torch.equal(explicit.loss.state_dict()[k], v), k
    assert "meta_gradient" not in explicit.describe()  # as before: resumes across releases


@pytest.mark.parametrize(
    "settings",
    [
        dict(pairs=0),
        dict(pairs=-2),
        dict(pairs=1.5),
        dict(pairs=True),
        dict(sigma=0.0),
        dict(sigma=-0.1),
        dict(sigma=math.nan),
        dict(sigma=math.inf),
        dict(sigma="0.1"),
    ],
)
def test_invalid_es_settings_are_rejected(settings):
    with pytest.raises(ValueError, match="EvolutionStrategies needs"):
        EvolutionStrategies(**settings)


class Untouchable(TaskFamily):
    """A family that fails the test if the trainer does any work with it."""

    def sample(self, n_tasks, generator):
        raise AssertionError("sampled tasks before rejecting the settings")

    def make_model(self):
        raise AssertionError("built a model before rejecting the settings")


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(meta_gradient="spsa"), "meta_gradient must be 'backprop' or 'es'"),
        (dict(inner_optimizer="lbfgs"), "inner optimizer must be one of"),
        (dict(inner_optimizer=torchopt.sgd(0.1), inner_lr=0.1), "carries its own learning rate"),
        (dict(meta_parameters=("network.nope",)), "meta_parameters must name some"),
        (dict(meta_parameters=()), "meta_parameters must name some"),
        (dict(clip_meta_grad=0.0), "clip_meta_grad must be a finite number > 0"),
        (dict(clip_meta_grad=float("inf")), "clip_meta_grad must be a finite number > 0"),
    ],
)
def test_invalid_settings_are_rejected_before_any_work(settings, match):
    loss = make_loss().freeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=match):
            MetaTrainer(loss, Untouchable(), progress=False, **settings)
    assert not any(p.requires_grad for p in loss.parameters())  # not even unfrozen


def test_clip_meta_grad_bounds_each_meta_step_and_is_recorded():
    moves = {}
    for clip in (None, 1e-4):
        loss = make_loss()
        start = [p.detach().clone() for p in loss.parameters()]
        trainer = MetaTrainer(
            loss,
            tiny_tasks(),
            meta_optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0),
            clip_meta_grad=clip,
            validate_every=0,
            **TINY,
        )
        trainer.fit(1)
        moved = torch.cat(
            [(p.detach() - s).flatten() for p, s in zip(loss.parameters(), start, strict=True)]
        )
        moves[clip] = moved.norm().item()
        assert ("clip_meta_grad" in trainer.describe()) == (clip is not None)
    assert moves[1e-4] == pytest.approx(1e-4, rel=1e-3)  # an SGD step of lr 1: the clipped norm
    assert moves[None] > 1e-3


@pytest.mark.parametrize("meta_gradient", ["backprop", "es"])
def test_meta_parameters_leave_the_other_weights_as_they_were(meta_gradient):
    from learnedloss.starts import grid_start_config

    torch.manual_seed(0)
    loss = LearnedLoss(grid_start_config("mse", knots=(9,)))
    trainer = MetaTrainer(
        loss,
        tiny_tasks(),
        meta_parameters=("network.values",),
        meta_gradient=meta_gradient,
        meta_lr=0.05,
        validate_every=0,
        **TINY,
    )
    trainer.fit(2)
    assert loss.network.values.abs().sum() > 0  # moved from its zero start
    assert torch.equal(loss.network.slopes.detach(), torch.zeros(1, 9))
    assert trainer.describe()["meta_parameters"] == ["network.values"]
    assert [p for group in trainer.meta_optimizer.param_groups for p in group["params"]] == [
        loss.network.values
    ]


def test_es_keywords_are_removed():
    # release 0.2.0: EvolutionStrategies(pairs=..., sigma=...) replaces es_pairs/es_sigma
    with pytest.raises(TypeError, match="es_pairs"):
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient="es", es_pairs=2, progress=False)
    with pytest.raises(TypeError, match="es_sigma"):
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient="es", es_sigma=0.1, progress=False)
    with pytest.raises(TypeError, match="es_pairs"):
        MetaTrainer(make_loss(), tiny_tasks(), es_pairs=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient="es", progress=False)
        MetaTrainer(make_loss(), tiny_tasks(), meta_gradient=EvolutionStrategies(2, 0.1))


# ----------------------------------------------------------------- recipes


def test_every_recipe_shares_the_base_and_keeps_its_fields():
    schedule = [
        "outer_steps",
        "inner_steps",
        "inner_lr",
        "meta_batch_size",
        "meta_lr",
        "validate_every",
        "validation_size",
        "seed",
    ]
    assert set(schedule) <= set(Recipe().settings.names())  # settings held as objects
    for recipe_class in RECIPES:
        assert issubclass(recipe_class, Recipe)
        recipe = recipe_class()
        names = [item.name for item in recipe.setting_fields()]
        assert set(schedule) <= set(names)
        json.dumps(recipe.to_dict())  # recorded in metadata: plain JSON values
        settings = recipe.settings.trainer_arguments()
        assert "es_pairs" not in settings and "es_sigma" not in settings
        if isinstance(recipe, MetaGradientRecipe):
            assert settings["meta_gradient"] == meta_gradient_from(
                recipe.meta_gradient, recipe.es_pairs, recipe.es_sigma
            )
        else:
            assert "meta_gradient" not in settings
    # the families' own defaults survive the base
    assert MountainCarRecipe().meta_gradient == "es" and MountainCarRecipe().es_sigma == 0.5
    mountain_car = MountainCarRecipe().settings.trainer_arguments()
    assert mountain_car["meta_gradient"] == EvolutionStrategies(8, 0.5)
    assert SineRecipe().validation_size == 32 and DigitsRecipe().validation_size == 64


@pytest.mark.parametrize("recipe_class", RECIPES)
def test_initial_loss_leaves_the_global_rng_alone_and_keeps_its_weights(recipe_class):
    recipe = recipe_class(seed=3)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    loss = recipe.initial_loss()
    assert torch.equal(torch.get_rng_state(), state)
    with torch.random.fork_rng(devices=[]):  # how recipes built their losses before
        torch.manual_seed(recipe.seed)
        reference = LearnedLoss(loss.config)
    for k, v in reference.state_dict().items():
        assert torch.equal(loss.state_dict()[k], v), k
    # the seed alone decides the weights, not the state of the global RNG
    torch.manual_seed(99)
    again = recipe.initial_loss()
    for k, v in loss.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_seeded_restores_the_global_rng():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    with seeded(0):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), inside)


TINY_RECIPE = dict(
    outer_steps=2, inner_steps=2, meta_batch_size=2, validate_every=1, validation_size=2
)


def _tiny_runs():
    return {
        "sine-backprop": lambda: meta_train(SineRecipe(hidden=(8,), **TINY_RECIPE), progress=False),
        "sine-es": lambda: meta_train(
            SineRecipe(hidden=(8,), meta_gradient="es", es_pairs=1, **TINY_RECIPE),
            progress=False,
        ),
        "shaped-sine": lambda: meta_train_frequency(
            ShapedSineRecipe(hidden=(8,), finetune_steps=1, finetune_inner_steps=2, **TINY_RECIPE),
            progress=False,
        ),
        "mountain-car": lambda: meta_train(
            MountainCarRecipe(es_pairs=1, hidden=(8,), horizon=20, waypoint_steps=5, **TINY_RECIPE),
            progress=False,
        ),
        "policy-gradient": lambda: meta_train(
            PolicyGradientRecipe(
                episodes=4, query_episodes=4, horizon=5, es_pairs=1, hidden=(8,), **TINY_RECIPE
            ),
            progress=False,
        ),
        "digits": lambda: meta_train(
            DigitsRecipe(n_shot=5, n_query=5, hidden=(8,), **TINY_RECIPE), progress=False
        ),
        # fits and refits a dynamics model in MuJoCo, and runs policies there
        "reacher": lambda: meta_train_reacher(
            ReacherRecipe(
                random_episodes=2,
                fit_steps=5,
                refit_every=1,
                refit_episodes=1,
                horizon=5,
                es_pairs=1,
                hidden=(4,),
                **TINY_RECIPE,
            ),
            progress=False,
        )[:2],
    }


@pytest.mark.parametrize("name", list(_tiny_runs()))
def test_meta_training_a_recipe_leaves_the_global_rng_alone_and_repeats(name):
    run = _tiny_runs()[name]
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first, _ = run()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(4321)  # another global state changes nothing
    second, _ = run()
    for k, v in first.state_dict().items():
        assert torch.equal(second.state_dict()[k], v), k
    json.dumps(first.metadata)
