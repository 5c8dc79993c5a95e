"""Population search over the loss's meta-parameters: scoring a generation together, and the
CMA-ES search state (`CMASearch`, on the ``cmaes`` package).

A meta-objective may score many candidate weights in one call: a `PopulationObjective` has a
``population(candidates) -> (C,)`` method besides its ``objective(weights) -> scalar`` call.
`MetaTrainer` gives its estimators one; on the batched engine (``path="engine"``) it trains
all candidates' models as one stacked run. `evaluate_population` uses it where it exists, and
scores the candidates one by one otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

Params = dict[str, torch.Tensor]


def evaluate_population(objective: Callable[[Params], torch.Tensor], candidates: list[Params]):
    """Every candidate's meta-objective, as floats: through ``objective.population`` in one
    call when the objective has it, else one call per candidate.

    Examples:
        >>> evaluate_population(lambda p: p["w"].sum(), [{"w": torch.ones(2)}])
        [2.0]
    """
    if not candidates:
        return []
    population = getattr(objective, "population", None)
    if population is not None:
        return [float(value) for value in population(candidates)]
    return [float(objective(candidate)) for candidate in candidates]


class CMASearch:
    """CMA-ES over the flattened weights ``weights`` (their names' order), with ``cmaes.CMA``.

    Its state lives in the ``cmaes`` object, in memory: it is not written to checkpoints
    (``cmaes`` keeps it in attributes of its own, and nothing is ever unpickled), so a
    CMA-ES run cannot resume.

    Args:
        weights: the starting point, the distribution's mean (``{name: tensor}``).
        sigma: the initial step size.
        population: candidates per generation (``None``: CMA-ES's default, ``4 + 3 ln n``).
        seed: seeds the ``cmaes`` sampler.
    """

    def __init__(self, weights: Params, sigma: float, population: int | None, seed: int):
        import cmaes  # only CMA-ES runs need it

        self._shapes = {k: v.shape for k, v in weights.items()}
        self._dtype = next(iter(weights.values())).dtype
        self._device = next(iter(weights.values())).device
        mean = self._flatten(weights)
        self._cma = cmaes.CMA(mean=mean, sigma=sigma, population_size=population, seed=seed)

    @property
    def population_size(self) -> int:
        """Candidates per generation."""
        return self._cma.population_size

    def ask(self) -> tuple[list[np.ndarray], list[Params]]:
        """One generation: its points (flat) and the same as weights by name."""
        points = [self._cma.ask() for _ in range(self._cma.population_size)]
        return points, [self._unflatten(point) for point in points]

    def tell(self, points: list[np.ndarray], values: list[float]) -> None:
        """Update the distribution from a generation's meta-objectives (a non-finite one
        ranks last)."""
        finite = [v for v in values if math.isfinite(v)]
        worst = (max(finite) + abs(max(finite)) + 1.0) if finite else 1.0
        ranked = [v if math.isfinite(v) else worst for v in values]
        self._cma.tell(list(zip(points, ranked, strict=True)))

    def mean(self) -> Params:
        """The distribution's mean, as weights by name."""
        return self._unflatten(self._cma.mean)

    def _flatten(self, weights: Params) -> np.ndarray:
        parts = [weights[k].detach().double().cpu().reshape(-1) for k in self._shapes]
        return torch.cat(parts).numpy()

    def _unflatten(self, point: np.ndarray) -> Params:
        flat = torch.as_tensor(point, dtype=self._dtype, device=self._device)
        weights, offset = {}, 0
        for name, shape in self._shapes.items():
            size = math.prod(shape)
            weights[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        return weights


class PopulationObjective:
    """A meta-objective that can also score many candidate weights in one call.

    Args:
        single: ``weights -> scalar``, one candidate (differentiable under grad mode).
        population: ``[weights, ...] -> (C,)``, all candidates at once, with no graph.
    """

    def __init__(
        self,
        single: Callable[[Params], torch.Tensor],
        population: Callable[[list[Params]], torch.Tensor],
    ) -> None:
        self._single = single
        self.population = population

    def __call__(self, weights: Params) -> torch.Tensor:
        return self._single(weights)
