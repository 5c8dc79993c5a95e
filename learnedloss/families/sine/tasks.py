"""Sine regression tasks, as in ML3 (Bechtle et al., ICPR 2021) and MAML before it.

Each task is y = A sin(x + φ). Defaults follow ML3's meta-test distribution: amplitude
A ~ U[0.2, 5], phase φ ~ U[-π, π], x ~ U[-5, 5], and a 1-100-10-1 ReLU MLP as the model.
With ``outlier_fraction > 0``, that fraction of the inner-loop training targets is replaced
by uniform noise in ``outlier_range``; query targets stay clean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from learnedloss.tasks.base import TaskBatch, TaskFamily
from learnedloss.tasks.models import MODEL_ACTIVATIONS, mlp


class SineTasks(TaskFamily):
    """Sine regression tasks y = A sin(x + φ), optionally with corrupted training targets.

    Args:
        amplitude: range of A (a pair (lo, hi); lo == hi fixes it).
        phase: range of φ.
        x_range: range of the inputs.
        n_train: points the inner loop trains on.
        n_query: held-out points the meta-objective scores.
        outlier_fraction: fraction of training targets replaced by uniform noise.
        outlier_range: range of that noise (default [-10, 10]).
        hidden: hidden sizes of the model (default ML3's (100, 10)).
        activation: hidden activation of the model ('relu', 'tanh' or 'elu').
    """

    loss_kind = "regression"

    def __init__(
        self,
        amplitude: tuple[float, float] = (0.2, 5.0),
        phase: tuple[float, float] = (-math.pi, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        n_train: int = 100,
        n_query: int = 100,
        outlier_fraction: float = 0.0,
        outlier_range: tuple[float, float] = (-10.0, 10.0),
        hidden: Sequence[int] = (100, 10),
        activation: str = "relu",
    ) -> None:
        if not 0.0 <= outlier_fraction < 1.0:
            raise ValueError(f"outlier_fraction must be in [0, 1), got {outlier_fraction}")
        if activation not in MODEL_ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {list(MODEL_ACTIVATIONS)}, got {activation!r}"
            )
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.n_train, self.n_query = n_train, n_query
        self.outlier_fraction, self.outlier_range = outlier_fraction, outlier_range
        self.hidden, self.activation = tuple(hidden), activation

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        def uniform(shape, bounds):
            lo, hi = bounds
            return torch.rand(shape, generator=generator) * (hi - lo) + lo

        amplitude = uniform((n_tasks, 1, 1), self.amplitude)
        phase = uniform((n_tasks, 1, 1), self.phase)
        x = uniform((n_tasks, self.n_train + self.n_query, 1), self.x_range)
        y = amplitude * torch.sin(x + phase)
        x_train, x_query = x[:, : self.n_train], x[:, self.n_train :]
        y_train, y_query = y[:, : self.n_train].clone(), y[:, self.n_train :]
        n_outliers = round(self.outlier_fraction * self.n_train)
        if n_outliers:
            which = torch.rand(n_tasks, self.n_train, generator=generator).argsort(dim=1)
            which = which[:, :n_outliers]
            noise = uniform((n_tasks, n_outliers), self.outlier_range)
            y_train[..., 0].scatter_(1, which, noise)
        extra = {"amplitude": amplitude.view(n_tasks), "phase": phase.view(n_tasks)}
        return TaskBatch(x_train, y_train, x_query, y_query, extra)

    def make_model(self) -> nn.Module:
        return mlp((1, *self.hidden, 1), self.activation)

    def describe(self) -> dict:
        """The family's settings, JSON-ready (for configs and model cards)."""
        return {
            "family": "sine",
            "amplitude": list(self.amplitude),
            "phase": [round(p, 6) for p in self.phase],
            "x_range": list(self.x_range),
            "n_train": self.n_train,
            "n_query": self.n_query,
            "outlier_fraction": self.outlier_fraction,
            "outlier_range": list(self.outlier_range),
            "model": f"1-{'-'.join(map(str, self.hidden))}-1 {self.activation} MLP",
        }
