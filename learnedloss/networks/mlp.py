"""The MLP parameterization (ML3's): an MLP applied to each element's feature vector."""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.networks.base import ACTIVATIONS, LossNetwork

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class PointwiseMLP(LossNetwork):
    """An MLP applied independently to each feature vector along the last dimension.

    Layer sizes are ``in_features -> *hidden_sizes -> 1``. Parameters start from PyTorch's
    default ``nn.Linear`` initialization (Kaiming-uniform weights with ``a=sqrt(5)``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases from the same range), drawn from the
    global torch RNG, so ``torch.manual_seed`` makes it reproducible.

    With ``config.residual``, the standard loss's term (passed as ``skip``; for regression
    the residual prediction - target) is combined with the last pre-activation ``h``, and
    the last layer starts at zero (``h = 0``), so the network starts as
    ``output_activation(skip)``: the squared error exactly with a ``square`` output, the
    Huber loss (δ = 1) exactly with a ``huber`` output. ``config.residual_form`` says how:
    ``"add"`` gives ``output_activation(skip + h)``, ``"scale"`` gives
    ``output_activation((1 + h) * skip)``, which vanishes wherever ``skip`` does, so a
    perfect prediction stays a minimum of the loss whatever the network learns, and
    ``"weight"`` gives ``w * output_activation(skip)`` with weights
    ``w = N * softmax(h)`` over the N elements of the call: positive, mean 1, equal to 1 at
    the start. This form is the one exception to "independently": an element's weight is
    relative to the others', so the network can shift weight between elements (reject
    outliers) but cannot change the loss's overall scale. ``"baseline"`` gives
    ``output_activation(skip + multiplier * h)``; a policy-gradient loss passes
    ``skip = -log_prob * advantage`` and ``multiplier = log_prob``, so the term is
    ``-log_prob * (advantage - h)``.

    The computation runs in the dtype of the features: parameters are cast on the fly, so a
    float32 network evaluates a float64 batch in float64 and a float16 batch in float16.

    Shape:
        - Input: ``(*, in_features)``; ``skip``: ``(*)``, required when ``residual``;
          ``multiplier``: ``(*)``, required by the ``"baseline"`` form.
        - Output: ``(*)``.
    """

    def __init__(self, config: LossConfig) -> None:
        super().__init__(config)
        sizes = (config.in_features, *config.hidden_sizes, 1)
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, bias=config.bias) for fan_in, fan_out in pairwise(sizes)
        )
        if self.residual:
            nn.init.zeros_(self.layers[-1].weight)
            if self.layers[-1].bias is not None:
                nn.init.zeros_(self.layers[-1].bias)
        self._activation = ACTIVATIONS[config.activation]

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        """The last layer's output ``h`` of ``(*, in_features)`` features, shape ``(*)``."""
        h = features
        dtype = features.dtype
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            bias = None if layer.bias is None else layer.bias.to(dtype)
            h = F.linear(h, layer.weight.to(dtype), bias)
            if i < last:
                h = self._activation(h)
        return h.squeeze(-1)
