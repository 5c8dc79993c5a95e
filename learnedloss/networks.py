"""Loss-network parameterizations.

A loss network maps a per-element feature vector (for regression: prediction and target) to
a per-element loss value. It knows nothing about reductions, shapes or validation; that is
`learnedloss.loss.LearnedLoss`'s job.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.config import LossConfig

_ACTIVATIONS = {
    "relu": F.relu,
    "elu": F.elu,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "gelu": F.gelu,
    "silu": F.silu,
}

_OUTPUT_ACTIVATIONS = {
    "softplus": F.softplus,
    "identity": lambda h: h,
    "square": torch.square,
    "huber": lambda h: F.huber_loss(h, torch.zeros_like(h), reduction="none", delta=1.0),
}


class PointwiseMLP(nn.Module):
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
        super().__init__()
        sizes = (config.in_features, *config.hidden_sizes, 1)
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, bias=config.bias) for fan_in, fan_out in pairwise(sizes)
        )
        self.residual = config.residual
        self.residual_form = config.residual_form
        if self.residual:
            nn.init.zeros_(self.layers[-1].weight)
            if self.layers[-1].bias is not None:
                nn.init.zeros_(self.layers[-1].bias)
        self._activation = _ACTIVATIONS[config.activation]
        self._output_activation = _OUTPUT_ACTIVATIONS[config.output_activation]

    def forward(
        self,
        features: torch.Tensor,
        skip: torch.Tensor | None = None,
        multiplier: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = features
        dtype = features.dtype
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            bias = None if layer.bias is None else layer.bias.to(dtype)
            h = F.linear(h, layer.weight.to(dtype), bias)
            if i < last:
                h = self._activation(h)
        h = h.squeeze(-1)
        if self.residual_form == "weight":
            weights = h.numel() * torch.softmax(h.reshape(-1), dim=0).reshape(h.shape)
            return weights * self._output_activation(skip)
        if self.residual_form == "scale":
            h = (1 + h) * skip
        elif self.residual_form == "baseline":
            h = skip + multiplier * h
        elif self.residual:
            h = h + skip
        return self._output_activation(h)
