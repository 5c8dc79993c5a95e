"""How the outer loop gets its meta-gradient: `Backprop` or `EvolutionStrategies`.

An estimator is a small frozen dataclass, passed as ``MetaTrainer(meta_gradient=...)``. It
fills the loss's ``.grad`` from a meta-objective and says, as JSON, how it did (for
checkpoints, metadata and model cards)::

    MetaTrainer(loss, tasks, meta_gradient=Backprop())  # the default: exact, second order
    MetaTrainer(loss, tasks, meta_gradient=EvolutionStrategies(pairs=16, sigma=0.05))

The strings ``"backprop"`` and ``"es"`` are shorthands for ``Backprop()`` and
``EvolutionStrategies()`` (see `meta_gradient_from`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from learnedloss.meta.es import es_gradient

if TYPE_CHECKING:
    from learnedloss.meta.distributed import Ranks

Params = dict[str, torch.Tensor]
MetaObjective = Callable[[Params], torch.Tensor]
"""``loss_params -> scalar``: the aggregated task objective after the inner loop, trained with
the loss's weights replaced by ``loss_params`` (see `MetaTrainer.meta_objective`)."""

META_GRADIENTS = ("backprop", "es")
"""The string shorthands `meta_gradient_from` accepts."""


class MetaGradient:
    """Base of meta-gradient estimators (a frozen dataclass in each subclass).

    A subclass implements `backward`, which sets ``.grad`` on the loss's weights and returns
    the meta-objective's value, and `describe`, JSON-ready settings merged into
    `MetaTrainer.describe` (and so into checkpoints, whose resume compares them).

    Data-parallel training (`learnedloss.meta.distributed`) splits what `splits` names over
    the ranks. The default, ``"tasks"``, suits any estimator whose gradient is linear in the
    meta-objective: each rank's objective is its share of the tasks' objectives (their sum
    divided by the whole meta-batch's size), and `backward_distributed` sums the ranks'
    gradients and values. An estimator that splits other work overrides both.
    """

    splits: ClassVar[str] = "tasks"
    """What data-parallel training splits over the ranks: ``"tasks"`` or ``"pairs"``."""

    def backward(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator
    ) -> float:
        """Set each weight's ``.grad`` to the meta-gradient estimate; return the objective.

        Args:
            objective: the meta-objective as a function of the loss's weights.
            weights: the loss's parameters, by name (their ``.grad`` is set, or left
                ``None`` where the estimator has none).
            generator: the trainer's generator, for estimators that draw random numbers.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """How the meta-gradient is estimated, JSON-ready."""
        raise NotImplementedError

    def backward_distributed(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator, ranks: Ranks
    ) -> float:
        """`backward` on one rank of a data-parallel job: the same ``.grad`` and value on
        every rank, those of one process running the whole meta-batch.

        With ``splits == "tasks"``, ``objective`` is this rank's share of the meta-objective;
        the ranks' gradients and values are summed.
        """
        value = self.backward(objective, weights, generator)
        return ranks.sum_gradients(weights, value)


@dataclass(frozen=True)
class Backprop(MetaGradient):
    """The exact meta-gradient: backpropagate the meta-objective through the inner loop.

    Second order, as ML3 (Bechtle et al., "Meta Learning via Learned Loss", ICPR 2021,
    arXiv 1906.05374) requires: a first-order approximation gives the loss no gradient. Its
    cost grows with the inner steps it differentiates (see ``MetaTrainer(truncate=...)``), and
    through long horizons near the edge of stability it explodes (docs/sine.md).

    Examples:
        >>> from learnedloss.meta import Backprop
        >>> Backprop().describe()
        {}
    """

    def backward(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator
    ) -> float:
        graph = objective(weights)
        graph.backward()
        return float(graph.detach())

    def describe(self) -> dict:
        # Nothing is written for backprop, so checkpoints resume across releases.
        return {}


@dataclass(frozen=True)
class EvolutionStrategies(MetaGradient):
    """Antithetic evolution strategies: the gradient of the meta-objective smoothed over
    Gaussian perturbations of the loss's weights, from forward runs alone.

    ``g = 1 / (2 σ n) Σ_i (F(φ + σ ε_i) - F(φ - σ ε_i)) ε_i`` over ``n = pairs`` antithetic
    pairs, every perturbation on the outer step's tasks and model initializations (common
    random numbers); see `learnedloss.meta.es.es_gradient`. Salimans et al., "Evolution
    Strategies as a Scalable Alternative to Reinforcement Learning", 2017, arXiv 1703.03864;
    Metz et al., "Understanding and correcting pathologies in the training of learned
    optimizers", ICML 2019, on why smoothing helps unrolled inner loops.

    It costs ``2 * pairs`` inner loops per outer step but builds no graph, and it survives
    inner loops whose exact meta-gradient explodes.

    Args:
        pairs: antithetic perturbation pairs per outer step (an integer, at least 1).
        sigma: the perturbation scale σ (finite, greater than 0).

    Examples:
        >>> from learnedloss.meta import EvolutionStrategies
        >>> EvolutionStrategies(pairs=8, sigma=0.5).describe()
        {'meta_gradient': 'es', 'es_pairs': 8, 'es_sigma': 0.5}
    """

    pairs: int = 16
    sigma: float = 0.05
    splits: ClassVar[str] = "pairs"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.pairs, numbers.Integral)
            or isinstance(self.pairs, bool)
            or self.pairs < 1
        ):
            raise ValueError(
                f"EvolutionStrategies needs pairs to be an integer >= 1, got {self.pairs!r}"
            )
        if (
            not isinstance(self.sigma, numbers.Real)
            or isinstance(self.sigma, bool)
            or not (math.isfinite(self.sigma) and self.sigma > 0)
        ):
            raise ValueError(
                f"EvolutionStrategies needs sigma to be a finite number > 0, got {self.sigma!r}"
            )
        object.__setattr__(self, "pairs", int(self.pairs))
        object.__setattr__(self, "sigma", float(self.sigma))

    def backward(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator
    ) -> float:
        gradient, value = es_gradient(objective, weights, self.pairs, self.sigma, generator)
        if gradient is not None:
            for name, weight in weights.items():
                weight.grad = gradient[name]
        return value

    def backward_distributed(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator, ranks: Ranks
    ) -> float:
        """Every rank draws all pairs' noise, evaluates its share of the pairs on the whole
        meta-batch, and the partial sums are summed over the ranks."""
        gradient, value = es_gradient(
            objective,
            weights,
            self.pairs,
            self.sigma,
            generator,
            pair_share=ranks.share(self.pairs),
            reduce=lambda t: ranks.sum_(t, "summing the evolution-strategies estimate over ranks"),
        )
        if gradient is not None:
            for name, weight in weights.items():
                weight.grad = gradient[name]
        return value

    def describe(self) -> dict:
        return {"meta_gradient": "es", "es_pairs": self.pairs, "es_sigma": self.sigma}


def meta_gradient_from(
    meta_gradient: str | MetaGradient,
    pairs: int | None = None,
    sigma: float | None = None,
) -> MetaGradient:
    """The estimator a setting names: an estimator as it is, or a string shorthand.

    ``"backprop"`` is `Backprop` (``pairs`` and ``sigma`` are ignored); ``"es"`` is
    `EvolutionStrategies` with ``pairs`` and ``sigma`` where given, else its defaults. This
    is how a recipe's plain fields (``meta_gradient``, ``es_pairs``, ``es_sigma``) become an
    estimator.

    Examples:
        >>> meta_gradient_from("es", pairs=4)
        EvolutionStrategies(pairs=4, sigma=0.05)
    """
    if isinstance(meta_gradient, MetaGradient):
        return meta_gradient
    if meta_gradient == "backprop":
        return Backprop()
    if meta_gradient == "es":
        given = {"pairs": pairs, "sigma": sigma}
        return EvolutionStrategies(**{k: v for k, v in given.items() if v is not None})
    raise ValueError(
        f"meta_gradient must be 'backprop' or 'es' (or a learnedloss.meta.MetaGradient such "
        f"as EvolutionStrategies(pairs=16, sigma=0.05)), got {meta_gradient!r}"
    )
