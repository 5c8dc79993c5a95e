"""Small models the task families train."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn

MODEL_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """An MLP with the given layer sizes, e.g. (1, 100, 10, 1), and hidden activation."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        if i:
            layers.append(MODEL_ACTIVATIONS[activation]())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)
