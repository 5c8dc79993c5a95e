"""Argument checks and defaults for `OnlineLossTrainer`: everything is validated here, before
any tensor is touched, so a wrong argument fails at construction with a message that says what
was expected, what came and what to do."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torchopt
from torch import nn

from learnedloss.bundled import bundled_names
from learnedloss.errors import ConfigError, LossInputError
from learnedloss.kinds.base import check_pair
from learnedloss.kinds.classification import class_features
from learnedloss.loss import LearnedLoss
from learnedloss.online.forms import FORMS
from learnedloss.starts import cross_entropy_start_config, mse_start_config

INNER_OPTIMIZERS = ("sgd", "adam")
META_OPTIMIZERS = ("adam", "sgd")
STARTS = {"mse": "regression", "cross-entropy": "classification"}
AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetaOptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def positive_number(name: str, value: Any) -> float:
    """``value`` as a float; a ValueError unless it is a finite number > 0. Python numbers,
    numpy scalars and one-element 0-dim tensors count as numbers; bools do not."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_complex():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_model(model: Any) -> dict[str, nn.Parameter]:
    """The model's trainable floating-point parameters, by name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = {
        name: p for name, p in model.named_parameters() if p.requires_grad and p.is_floating_point()
    }
    if not params:
        raise ValueError(
            "model has no trainable floating-point parameters (requires_grad=True); "
            "there is nothing for the online loss to train"
        )
    devices = {p.device for p in params.values()}
    if len(devices) > 1:
        raise ValueError(
            f"model's trainable parameters live on several devices {sorted(map(str, devices))}; "
            "OnlineLossTrainer needs them on one device (the loss follows it)"
        )
    return params


def bundled_start(loss: Any) -> Any:
    """``loss`` itself, or the bundled loss it names (``"robust-regression"``,
    ``"noisy-labels"``, ...; `learnedloss.bundled_names`) loaded as a frozen `LearnedLoss`."""
    if not isinstance(loss, str) or loss in STARTS:
        return loss
    if loss not in bundled_names():
        raise ValueError(
            f"loss must be one of {list(STARTS)}, a bundled loss's name "
            f"({', '.join(bundled_names())}) or a LearnedLoss, got {loss!r}"
        )
    return LearnedLoss.from_pretrained(loss)


def form(value: Any, loss: Any) -> str:
    """The ``form`` argument, checked against the ``loss`` argument."""
    if value not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {value!r}")
    if value == "sample-weights" and loss not in STARTS:
        raise ValueError(
            "form='sample-weights' learns a weighting of the standard loss: pass loss='mse' or "
            f"'cross-entropy' with it, got loss={loss!r}"
        )
    return value


def loss_kind(loss: Any) -> str:
    """Check the ``loss`` argument (without copying anything) and return its kind."""
    if isinstance(loss, str):
        if loss not in STARTS:
            raise ValueError(f"loss must be one of {list(STARTS)} or a LearnedLoss, got {loss!r}")
        return STARTS[loss]
    if not isinstance(loss, LearnedLoss):
        raise TypeError(
            f"loss must be 'mse', 'cross-entropy' or a LearnedLoss, got {type(loss).__name__}; "
            "a plain torch loss has nothing to learn"
        )
    if loss.config.kind not in STARTS.values():
        raise ConfigError(
            f"online loss learning supports regression and classification losses, got a "
            f"{loss.config.kind!r} loss"
        )
    if loss.config.side_inputs:
        raise ConfigError(
            f"this loss reads the side inputs {list(loss.config.side_inputs)}; "
            "OnlineLossTrainer calls the loss as loss(prediction, target) and offers none"
        )
    return loss.config.kind


def starting_loss(loss: str | LearnedLoss, seed: int) -> tuple[LearnedLoss, str]:
    """A trainable copy of the loss to start from (checked by `loss_kind`), and a short
    description of where it came from.

    ``"mse"`` / ``"cross-entropy"`` build `mse_start_config` / `cross_entropy_start_config`
    losses (exactly MSE / cross-entropy at the start; the hidden layers drawn from ``seed``).
    A `LearnedLoss` is deep-copied and unfrozen: the object passed in is never modified, so a
    frozen pretrained loss stays frozen."""
    if isinstance(loss, str):
        config = mse_start_config() if loss == "mse" else cross_entropy_start_config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            built = LearnedLoss(config)
        name = "mse_start_config" if loss == "mse" else "cross_entropy_start_config"
        return built, f"exactly {loss} ({name}, seed {seed})"
    source = loss.metadata.get("title") or loss.metadata.get("description") or "a LearnedLoss"
    copied = copy.deepcopy(loss).unfreeze()  # a frozen loss's weights become parameters again
    if not any(True for _ in copied.parameters()):
        raise ValueError("the loss has no parameters to learn")
    return copied, f"a copy of {source}"[:200]


def inner_optimizer(optimizer: Any, lr: Any) -> tuple[torchopt.base.GradientTransformation, str]:
    """The torchopt transformation that updates the model, and its name for the metadata.

    Adam gets ``eps_root=1e-8``: differentiating through its square root gives NaN wherever a
    gradient is exactly zero without it."""
    if isinstance(optimizer, torchopt.base.GradientTransformation):
        if lr is not None:
            raise ValueError(
                "lr is set by the torchopt transformation passed as optimizer; drop lr=, or "
                "pass optimizer='sgd' or 'adam' with lr="
            )
        return optimizer, "custom torchopt transformation"
    if optimizer not in INNER_OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {list(INNER_OPTIMIZERS)} or a torchopt "
            f"GradientTransformation (e.g. torchopt.sgd(0.1, momentum=0.9)), got {optimizer!r}"
        )
    if lr is None:
        raise ValueError(f"optimizer={optimizer!r} needs a learning rate: pass lr=")
    lr = positive_number("lr", lr)
    if optimizer == "sgd":
        return torchopt.sgd(lr), "sgd"
    return torchopt.adam(lr, eps_root=1e-8), "adam"


def meta_optimizer(meta_optimizer: Any, meta_lr: Any) -> tuple[MetaOptimizerFactory, str]:
    """A factory ``params -> torch.optim.Optimizer`` for the loss network, and its name."""
    meta_lr = positive_number("meta_lr", meta_lr)
    if meta_optimizer is None or meta_optimizer == "adam":
        return (lambda params: torch.optim.Adam(params, lr=meta_lr)), "adam"
    if meta_optimizer == "sgd":
        return (lambda params: torch.optim.SGD(params, lr=meta_lr)), "sgd"
    if callable(meta_optimizer) and not isinstance(meta_optimizer, str):
        return meta_optimizer, getattr(meta_optimizer, "__name__", "custom")
    raise ValueError(
        f"meta_optimizer must be 'adam', 'sgd' or a callable params -> torch.optim.Optimizer, "
        f"got {meta_optimizer!r}"
    )


class CheckedObjective:
    """The default task objective, ``nn.MSELoss()`` (regression) or ``nn.CrossEntropyLoss()``
    (classification), that takes the validation batch as the training loss takes its batch:
    a target of another shape than the prediction (a ``(N,)`` target against ``(N, 1)``
    outputs, which ``nn.MSELoss`` would broadcast to ``(N, N)``) or class labels that are
    not class indices or class probabilities of the logits' shape raise `LossInputError`.
    Integer class indices of any integer dtype count (``int32`` too)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.standard = nn.MSELoss() if kind == "regression" else nn.CrossEntropyLoss()
        self.__name__ = f"{type(self.standard).__name__}()"

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        try:
            if self.kind == "regression":
                check_pair(prediction, target)
            else:
                class_features(prediction.detach(), target, self.standard.ignore_index, True)
                if not target.is_floating_point():
                    target = target.long()
        except LossInputError as err:
            raise LossInputError(f"the validation batch (x_val, y_val): {err}") from None
        return self.standard(prediction, target)


def objective(objective: Any, kind: str) -> Objective:
    """The task objective: MSE for a regression loss and cross-entropy for a
    classification loss (`CheckedObjective`) unless the caller gives one."""
    if objective is None:
        return CheckedObjective(kind)
    if not callable(objective):
        raise TypeError(
            f"objective must be a callable (prediction, target) -> scalar tensor, such as "
            f"nn.MSELoss(), got {type(objective).__name__}"
        )
    return objective


def autocast_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or dtype in AUTOCAST_DTYPES:
        return dtype
    raise ValueError(f"autocast must be None, torch.float16 or torch.bfloat16, got {dtype!r}")


def callbacks(value: Any) -> tuple[Callable, ...]:
    items = (value,) if callable(value) else tuple(value)
    for item in items:
        if not callable(item):
            raise TypeError(f"callbacks must be callables (trainer, record) -> None, got {item!r}")
    return items


def description(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"description must be a str (what the loss is learned on), got {value!r}")
    return value


def validation_source(value: Any):
    """``None`` or an iterable of ``(x_val, y_val)`` batches (a DataLoader, a list, a
    generator)."""
    if value is None:
        return None
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, torch.Tensor) for v in value)
    ):
        raise TypeError(
            "validation must be an iterable of (x_val, y_val) batches, got one (x_val, y_val) "
            "pair of tensors, which would be read as two batches; to score on that one "
            "batch pass [(x_val, y_val)]"
        )
    if isinstance(value, torch.Tensor) or not isinstance(value, Iterable):
        raise TypeError(
            "validation must be an iterable of (x_val, y_val) batches, such as a DataLoader, "
            f"got {type(value).__name__}; to score on one fixed batch pass [(x_val, y_val)]"
        )
    return value


def batch_pair(x: Any, y: Any, names: str) -> None:
    for name, value in zip(names.split(","), (x, y), strict=True):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name.strip()} must be a torch.Tensor, got {type(value).__name__}")
    if x.shape[:1] != y.shape[:1]:
        raise ValueError(
            f"{names} must hold the same number of samples, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
