"""Loss kinds: what a learned loss replaces, the features it reads, and its card text.

Each kind is one `LossKind` subclass with one instance in `KINDS`, by the name that
``LossConfig.kind`` and ``config.json`` hold:

- ``regression`` (`Regression`): a drop-in for ``nn.MSELoss``;
- ``classification`` (`Classification`): a drop-in for ``nn.CrossEntropyLoss``;
- ``policy_gradient`` (`PolicyGradient`): a drop-in for the REINFORCE surrogate
  ``-(log_prob * advantage).mean()``.

A new kind is one subclass (see `LossKind` for what it provides) and one `register_kind`
call; `learnedloss.LossConfig` and `learnedloss.LearnedLoss` then build and run it.

Examples:
    >>> from learnedloss.kinds import loss_kind
    >>> loss_kind("regression").replaces
    'torch.nn.MSELoss()'
"""

from __future__ import annotations

from typing import TypeVar

from learnedloss.config import KIND_REGISTRY, RESIDUAL_FORMS, registered_kind
from learnedloss.errors import ConfigError
from learnedloss.kinds.base import ElementwiseKind, LossKind
from learnedloss.kinds.classification import Classification, class_features
from learnedloss.kinds.policy_gradient import PolicyGradient
from learnedloss.kinds.regression import Regression

KINDS: dict[str, LossKind] = KIND_REGISTRY
"""The kinds this release can build, by name, in the order error messages list them (the
schema's own registry, `learnedloss.config.KIND_REGISTRY`, which checks configs against it)."""
KINDS.update({kind.name: kind for kind in (Regression(), Classification(), PolicyGradient())})

_Registered = TypeVar("_Registered", LossKind, type[LossKind])


def loss_kind(name: str) -> LossKind:
    """The kind of this name.

    Raises:
        learnedloss.ConfigError: no kind has this name; the message lists those that do.

    Examples:
        >>> from learnedloss.kinds import loss_kind
        >>> loss_kind("policy_gradient").default_inputs
        ('log_prob', 'advantage')
    """
    return registered_kind(name)


def register_kind(kind: _Registered) -> _Registered:
    """Add a kind to `KINDS`, so that ``LossConfig(kind=kind.name)`` builds it.

    Takes an instance or a `LossKind` subclass (instantiated with no arguments), so it also
    works as a class decorator; returns its argument.

    Raises:
        learnedloss.ConfigError: a kind of that name is already registered, or the kind
            lacks a name or a feature list, or allows a residual form no network implements.

    Examples:
        >>> import torch
        >>> from learnedloss import LearnedLoss, LossConfig
        >>> from learnedloss.kinds import KINDS, Regression, register_kind
        >>> @register_kind
        ... class AbsoluteError(Regression):
        ...     name = "absolute_error"
        ...     replaces = "torch.nn.L1Loss()"
        ...     starts_as = "starts as output_activation(|input - target|)"
        ...     def standard_term(self, features):
        ...         return (features["input"] - features["target"]).abs(), None
        >>> loss_fn = LearnedLoss(LossConfig(kind="absolute_error", hidden_sizes=(4,),
        ...                                  residual=True, output_activation="identity"))
        >>> loss_fn(torch.tensor([1.0, -2.0]), torch.zeros(2)).detach()  # mean |error|
        tensor(1.5000)
        >>> del KINDS["absolute_error"]
    """
    instance = kind() if isinstance(kind, type) else kind
    if not isinstance(instance, LossKind):
        raise TypeError(f"register_kind takes a LossKind, got {type(instance).__name__}")
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{type(instance).__name__} must set a name (a non-empty str)")
    if name in KINDS:
        raise ConfigError(
            f"a kind named {name!r} is already registered ({KINDS[name]!r}); "
            "choose another name, or delete KINDS[name] first to replace it"
        )
    for attribute in ("features", "default_inputs", "residual_forms"):
        value = getattr(instance, attribute, None)
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{type(instance).__name__}.{attribute} must be a tuple of str, got {value!r}"
            )
    unknown = [form for form in instance.residual_forms if form not in RESIDUAL_FORMS]
    if unknown:
        raise ConfigError(
            f"{type(instance).__name__}.residual_forms holds {unknown}, which no network "
            f"implements; choose from {list(RESIDUAL_FORMS)}"
        )
    KINDS[name] = instance
    return kind


__all__ = [
    "KINDS",
    "Classification",
    "ElementwiseKind",
    "LossKind",
    "PolicyGradient",
    "Regression",
    "class_features",
    "loss_kind",
    "register_kind",
]
