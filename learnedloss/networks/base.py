"""What every loss-network parameterization shares: activations and the residual combination.

A parameterization (`PointwiseMLP`, `GridNetwork`, `TaylorNetwork`) computes one number ``h``
per element from the element's features. `combine` turns ``h`` into the per-element loss the
same way for all of them, as `learnedloss.LossConfig` says (``residual``,
``residual_form``, ``output_activation``), so any parameterization can start as exactly the
standard loss and the residual forms mean the same thing whatever computes ``h``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "elu": F.elu,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "gelu": F.gelu,
    "silu": F.silu,
}


def second_axis_blend(network: nn.Module, value: float) -> tuple[int, float]:
    """Where ``value`` lies on a grid network's second axis: ``(row, weight)``, the lower of
    its two neighbouring knots and the weight of the upper one (``row + 1``), clamped to the
    axis's range, as the networks interpolate their second axis linearly. A frozen fast path
    blends its per-knot tables this way once per call."""
    lo, hi = network.grid_range[1]
    count = network.knots[1]
    position = min(max((value - lo) / (hi - lo), 0.0), 1.0) * (count - 1)
    row = min(int(position), count - 2)
    return row, position - row


def _huber(h: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(h, torch.zeros_like(h), reduction="none", delta=1.0)


OUTPUT_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softplus": F.softplus,
    "identity": lambda h: h,
    "square": torch.square,
    "huber": _huber,
}


def combine(
    h: torch.Tensor,
    skip: torch.Tensor | None,
    multiplier: torch.Tensor | None,
    *,
    residual: bool,
    residual_form: str,
    output_activation: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The per-element loss from a network's output ``h`` and the standard term ``skip``.

    ``"add"``: ``output_activation(skip + h)``; ``"scale"``: ``output_activation((1 + h) *
    skip)``; ``"weight"``: ``N * softmax(h) * output_activation(skip)`` over the N elements
    of the call; ``"baseline"``: ``output_activation(skip + multiplier * h)``; without
    ``residual``: ``output_activation(h)``. See `learnedloss.LossConfig.residual_form`.
    """
    if residual_form == "weight":
        weights = h.numel() * torch.softmax(h.reshape(-1), dim=0).reshape(h.shape)
        return weights * output_activation(skip)
    if residual_form == "scale":
        h = (1 + h) * skip
    elif residual_form == "baseline":
        h = skip + multiplier * h
    elif residual:
        h = h + skip
    return output_activation(h)


class LossNetwork(nn.Module):
    """Base class of the parameterizations: ``forward(features, skip, multiplier)`` is
    ``combine(correction(features), skip, multiplier, ...)``.

    Subclasses implement `correction`, the per-element ``h`` of ``(*, in_features)``
    features, as a pure tensor function of their parameters (no data-dependent Python
    control flow), so that `learnedloss.MetaTrainer` can call it through
    ``torch.func.functional_call`` under ``torch.func.vmap``.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.inputs = tuple(config.inputs)
        self.residual = config.residual
        self.residual_form = config.residual_form
        self.output_activation = config.output_activation
        self._output_activation = OUTPUT_ACTIVATIONS[config.output_activation]

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        """The network's own per-element output ``h`` (before the residual combination)."""
        raise NotImplementedError

    def forward(
        self,
        features: torch.Tensor,
        skip: torch.Tensor | None = None,
        multiplier: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return combine(
            self.correction(features),
            skip,
            multiplier,
            residual=self.residual,
            residual_form=self.residual_form,
            output_activation=self._output_activation,
        )

    @property
    def param_dtype(self) -> torch.dtype:
        """The dtype of the network's parameters (the features are computed in the wider of
        it and the inputs' dtype)."""
        return next(self.parameters()).dtype


class _FirstLayer(NamedTuple):
    """What `_FirstLayerShim` puts in ``layers[0]``: the network's first parameter as ``weight``.

    A named tuple rather than a ``types.SimpleNamespace``: ``torch.compile`` (dynamo) traces
    building a named tuple but not a ``SimpleNamespace``, which would break the graph of a
    compiled training step on every call of a frozen grid or Taylor loss.
    """

    weight: torch.Tensor


class _FirstLayerShim:
    """``network.layers[0].weight`` (its dtype and device) for parameterizations without layers.

    `learnedloss.LearnedLoss` reads the parameters' device that way (written when the MLP was
    the only network); `LossNetwork.param_dtype` is the general spelling of the dtype.
    """

    def __get__(self, network: LossNetwork, owner: type | None = None):
        if network is None:
            return self
        return (_FirstLayer(weight=next(network.parameters())),)
