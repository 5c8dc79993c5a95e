"""Frequency-recovery tasks: ML3's loss-shaping example (Bechtle et al., ICPR 2021, sec. V-C).

Each task is y = sin(ω*·x) with a hidden frequency ω*. The model is the same function with a
single trainable parameter, ŷ = sin(ω·x). Its MSE landscape over ω is riddled with local
minima, so gradient descent from ω = 0.1 rarely finds ω*. With ``shaped=True`` the
meta-objective is (ω - ω*)², information that exists only at meta-train time; the learned
loss must turn it into a landscape that gradient descent can follow, seeing only (x, ŷ, y).

Settings from ML3's public reference code: ω* ~ U[-5, 5], 64 points with x ~ U[-5, 5],
ω starts at 0.1, 10 inner SGD steps at lr 1.0.
"""

from __future__ import annotations

import torch
from torch import nn

from learnedloss.tasks.base import TaskBatch, TaskFamily


class FrequencyModel(nn.Module):
    """ŷ = sin(ω·x), with the single parameter ``omega``.

    Shape:
        - Input: ``(*)``.
        - Output: ``(*)``, the input's shape.
    """

    def __init__(self, omega: float) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(float(omega)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)


class FrequencyTasks(TaskFamily):
    """Recover the frequency of y = sin(ω*·x) by training ŷ = sin(ω·x).

    Args:
        shaped: meta-objective (ω - ω*)², using the true frequency that only meta-training
            knows; otherwise the MSE on the query points (the task objective).
        omega_range: range of the true frequency ω*.
        x_range: range of the inputs.
        n_points: points the inner loop trains on (and, separately, query points).
        start: the model's initial ω; ``None`` draws it from ``start_range`` (global RNG).
        start_range: range of random starts.
    """

    loss_kind = "regression"

    def __init__(
        self,
        shaped: bool = True,
        omega_range: tuple[float, float] = (-5.0, 5.0),
        x_range: tuple[float, float] = (-5.0, 5.0),
        n_points: int = 64,
        start: float | None = 0.1,
        start_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        self.shaped = shaped
        self.omega_range, self.x_range = omega_range, x_range
        self.n_points, self.start, self.start_range = n_points, start, start_range

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        def uniform(shape, bounds):
            lo, hi = bounds
            return torch.rand(shape, generator=generator) * (hi - lo) + lo

        omega = uniform((n_tasks,), self.omega_range)
        x = uniform((n_tasks, 2 * self.n_points), self.x_range)
        y = torch.sin(omega[:, None] * x)
        n = self.n_points
        return TaskBatch(x[:, :n], y[:, :n], x[:, n:], y[:, n:], {"omega": omega})

    def make_model(self) -> nn.Module:
        if self.start is not None:
            return FrequencyModel(self.start)
        lo, hi = self.start_range
        return FrequencyModel(float(torch.rand(()) * (hi - lo) + lo))

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        if self.shaped:
            return (params["omega"] - extra["omega"]) ** 2
        return self.objective(prediction, target)

    def describe(self) -> dict:
        return {
            "family": "FrequencyTasks",
            "shaped": self.shaped,
            "omega_range": list(self.omega_range),
            "x_range": list(self.x_range),
            "n_points": self.n_points,
            "start": self.start,
            "start_range": list(self.start_range),
        }
