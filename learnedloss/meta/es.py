"""Evolution-strategies estimate of the meta-gradient, for inner loops too chaotic to
differentiate.

Backpropagating through many inner steps near the edge of stability gives meta-gradients
that explode and point nowhere (docs/sine.md measures it). Evolution strategies instead
estimate the gradient of a *smoothed* meta-objective, ``E[F(φ + σε)]`` with ``ε ~ N(0, I)``,
from forward runs alone (Salimans et al., 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning"; Metz et al., 2019, "Understanding and correcting
pathologies in the training of learned optimizers", on why smoothing helps unrolled inner
loops). We use antithetic pairs and common random numbers: every perturbation trains on the
same tasks from the same initializations, so the difference ``F(φ + σε) - F(φ - σε)``
measures the perturbation and not the draw of tasks. All pairs' perturbations are scored
together (`learnedloss.meta.population.evaluate_population`): on the batched engine, as one
stacked training run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from learnedloss.meta.population import evaluate_population

Params = dict[str, torch.Tensor]


def es_gradient(
    objective: Callable[[Params], torch.Tensor],
    params: Params,
    pairs: int,
    sigma: float,
    generator: torch.Generator,
    *,
    pair_share: slice | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[Params | None, float]:
    """Antithetic evolution-strategies estimate of the gradient of ``objective`` at ``params``.

    ``g = 1 / (2 σ n) Σ_i (F(φ + σ ε_i) - F(φ - σ ε_i)) ε_i`` over the ``n`` pairs whose two
    objectives are finite (a pair where the inner loop diverged is left out).

    Args:
        objective: ``params -> scalar``, evaluated without a graph (a `PopulationObjective`
            scores all perturbations in one call).
        params: the point ``φ`` (not modified).
        pairs: antithetic pairs ``(ε, -ε)``.
        sigma: the perturbation scale ``σ``.
        generator: draws the perturbations (on the CPU, so runs repeat bit for bit).
        pair_share: evaluate only these pairs (one rank's share in data-parallel training);
            the noise of every pair is still drawn, so every rank's generator stays in step.
        reduce: sums a float64 tensor over the ranks in place (`Ranks.sum_`): the partial
            sums of the pairs evaluated here, with their finite count and objective total.

    Returns:
        ``(gradient, value)``: the estimate (``None`` when no pair was finite) and the mean
        objective over the finite perturbations, an estimate of the smoothed objective
        (``nan`` when none was finite).
    """
    if pairs < 1 or not sigma > 0:
        raise ValueError(f"need pairs >= 1 and sigma > 0, got pairs={pairs}, sigma={sigma}")
    base = {k: v.detach() for k, v in params.items()}
    gradient = {k: torch.zeros_like(v) for k, v in base.items()}
    finite, total = 0, 0.0
    evaluated = range(pairs)[pair_share] if pair_share is not None else range(pairs)
    with torch.no_grad():
        noises = [
            {
                k: torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device)
                for k, v in base.items()
            }
            for _ in range(pairs)
        ]
        candidates = [
            {k: v + sign * sigma * noises[i][k] for k, v in base.items()}
            for i in evaluated
            for sign in (1, -1)
        ]
        values = evaluate_population(objective, candidates)
        for number, i in enumerate(evaluated):
            up, down = values[2 * number], values[2 * number + 1]
            if not (math.isfinite(up) and math.isfinite(down)):
                continue
            finite += 1
            total += up + down
            for k in gradient:
                gradient[k] += (up - down) * noises[i][k]
    if reduce is not None:
        finite, total, gradient = _reduce(reduce, finite, total, gradient)
    if finite == 0:
        return None, math.nan
    return {k: g / (2 * sigma * finite) for k, g in gradient.items()}, total / (2 * finite)


def _reduce(reduce, finite: int, total: float, gradient: Params) -> tuple[int, float, Params]:
    """Sum the finite-pair count, the objective total and the gradient sums over the ranks."""
    names = list(gradient)
    device = gradient[names[0]].device if names else torch.device("cpu")
    flat = torch.cat(
        [
            *(gradient[k].reshape(-1).to(torch.float64) for k in names),
            torch.tensor([finite, total], dtype=torch.float64, device=device),
        ]
    )
    reduce(flat)
    summed, offset = {}, 0
    for k in names:
        n = gradient[k].numel()
        summed[k] = flat[offset : offset + n].to(gradient[k].dtype).reshape(gradient[k].shape)
        offset += n
    return round(float(flat[-2])), float(flat[-1]), summed
