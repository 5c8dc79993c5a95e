"""How the outer loop gets its meta-gradient: `Backprop`, `EvolutionStrategies` or `CMAES`.

An estimator is a small frozen dataclass, passed as ``MetaTrainer(meta_gradient=...)``. It
fills the loss's ``.grad`` from a meta-objective and says, as JSON, how it did (for
checkpoints, metadata and model cards)::

    MetaTrainer(loss, tasks, meta_gradient=Backprop())  # the default: exact, second order
    MetaTrainer(loss, tasks, meta_gradient=EvolutionStrategies(pairs=16, sigma=0.05))
    MetaTrainer(loss, tasks, meta_gradient=CMAES(population=16, sigma=0.1))  # no gradient

The strings ``"backprop"``, ``"es"`` and ``"cmaes"`` are shorthands for ``Backprop()``,
``EvolutionStrategies()`` and ``CMAES()`` (see `meta_gradient_from`). An estimator that
scores many weights (ES's pairs, a CMA-ES generation) scores them together through
`learnedloss.meta.population.evaluate_population`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

import torch

from learnedloss.errors import RunDirectoryError
from learnedloss.meta.es import es_gradient
from learnedloss.meta.population import CMASearch, evaluate_population

if TYPE_CHECKING:
    from learnedloss.meta.distributed import Ranks

Params = dict[str, torch.Tensor]
MetaObjective = Callable[[Params], torch.Tensor]
"""``loss_params -> scalar``: the aggregated task objective after the inner loop, trained with
the loss's weights replaced by ``loss_params`` (see `MetaTrainer.meta_objective`)."""

META_GRADIENTS = ("backprop", "es", "cmaes")
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

    def check_resume(self) -> None:
        """Raise `RunDirectoryError` if a run with this estimator cannot resume (by default
        every one can: its state is the loss and the meta-optimizer's)."""

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


@dataclass(frozen=True)
class CMAES(MetaGradient):
    """CMA-ES population search over the loss's meta-parameters (their values flattened, e.g.
    a grid's knot values), with the ``cmaes`` package.

    CMA-ES proposes points rather than a gradient, so it fits the outer loop thus: at each
    outer step it draws one generation of ``population`` candidate weights from its Gaussian
    search distribution, scores them all on the step's tasks and models (common random
    numbers; in one stacked training run on ``path="engine"``), updates the distribution
    from their ranking, and writes the distribution's mean into the loss. The loss's weights
    get no ``.grad``: the meta-optimizer (and ``clip_meta_grad``) are bypassed. The
    meta-objective recorded is the mean of the generation's finite scores. Hansen,
    "The CMA Evolution Strategy: A Tutorial", 2016, arXiv 1604.00772; TaylorGLO
    (Gonzalez and Miikkulainen, 2021, arXiv 2002.00059) searched its losses with it.

    It suits a few to a few dozen meta-parameters (a 9-17-knot grid, a Taylor loss's
    coefficients); its cost per step is ``population`` inner loops, and it needs no gradient
    through them. The search state lives in memory, keyed by the weights it searches: a
    CMA-ES run writes checkpoints but cannot resume from them.

    Args:
        population: candidates per generation (an integer >= 2).
        sigma: the initial step size of the search distribution (finite, > 0).

    Examples:
        >>> CMAES(population=8, sigma=0.2).describe()
        {'meta_gradient': 'cmaes', 'cmaes_population': 8, 'cmaes_sigma': 0.2}
    """

    population: int = 16
    sigma: float = 0.1
    _searches: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _is_int(self.population) or self.population < 2:
            raise ValueError(
                f"CMAES needs population to be an integer >= 2, got {self.population!r}"
            )
        if not _is_positive(self.sigma):
            raise ValueError(f"CMAES needs sigma to be a finite number > 0, got {self.sigma!r}")
        object.__setattr__(self, "population", int(self.population))
        object.__setattr__(self, "sigma", float(self.sigma))

    def backward(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator
    ) -> float:
        return self._generation(objective, weights, generator, None)

    def backward_distributed(
        self, objective: MetaObjective, weights: Params, generator: torch.Generator, ranks: Ranks
    ) -> float:
        """Every rank draws the same generation, scores it on its share of the tasks, and the
        shares' scores are summed over the ranks before the distribution is updated."""
        return self._generation(
            objective,
            weights,
            generator,
            lambda t: ranks.sum_(t, "summing the CMA-ES candidates' scores over ranks"),
        )

    def _generation(self, objective, weights: Params, generator, reduce) -> float:
        search = self._search(weights, generator)
        points, candidates = search.ask()
        values = evaluate_population(objective, candidates)
        if reduce is not None:
            values = reduce(torch.tensor(values, dtype=torch.float64)).tolist()
        finite = [v for v in values if math.isfinite(v)]
        if not finite:  # a skipped step: the distribution and the loss stay as they were
            return math.nan
        search.tell(points, values)
        with torch.no_grad():
            for name, value in search.mean().items():
                weights[name].copy_(value)
                weights[name].grad = None
        return sum(finite) / len(finite)

    def _search(self, weights: Params, generator: torch.Generator) -> CMASearch:
        """The search of these weights: the one running, while its mean is what the weights
        hold; otherwise (the first step, other weights, weights loaded or changed between
        steps) a new one started at them and seeded from ``generator``."""
        key = tuple(id(w) for w in weights.values())
        search = self._searches.get(key)
        if search is None or not _holds(weights, search.mean()):
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            self._searches.clear()  # one search at a time: nothing of an earlier run is kept
            search = self._searches[key] = CMASearch(weights, self.sigma, self.population, seed)
        return search

    def fresh(self) -> CMAES:
        """The same settings with no search state: what each `MetaTrainer` runs with, so
        that two trainers given one ``CMAES(...)`` never share a search."""
        return replace(self)

    def check_resume(self) -> None:
        raise RunDirectoryError(
            "a CMA-ES run cannot resume: its search distribution is not written to "
            "checkpoints. Start a fresh run (fit(overwrite=True)), seeded with the "
            "checkpoint's loss, or use EvolutionStrategies, which resumes"
        )

    def describe(self) -> dict:
        return {
            "meta_gradient": "cmaes",
            "cmaes_population": self.population,
            "cmaes_sigma": self.sigma,
        }


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_positive(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _holds(weights: Params, values: Params) -> bool:
    """Whether ``weights`` hold exactly ``values`` (same names)."""
    return all(
        torch.equal(weights[name], value.to(weights[name])) for name, value in values.items()
    )


def meta_gradient_from(
    meta_gradient: str | MetaGradient,
    pairs: int | None = None,
    sigma: float | None = None,
    population: int | None = None,
) -> MetaGradient:
    """The estimator a setting names: an estimator as it is, or a string shorthand.

    ``"backprop"`` is `Backprop` (the others are ignored); ``"es"`` is
    `EvolutionStrategies` with ``pairs`` and ``sigma`` where given, else its defaults;
    ``"cmaes"`` is `CMAES` with ``population`` and ``sigma`` where given. This is how a
    recipe's plain fields (``meta_gradient``, ``es_pairs``, ``es_sigma``, ...) become an
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
    if meta_gradient == "cmaes":
        given = {"population": population, "sigma": sigma}
        return CMAES(**{k: v for k, v in given.items() if v is not None})
    raise ValueError(
        f"meta_gradient must be 'backprop' or 'es' (or 'cmaes', or a "
        f"learnedloss.meta.MetaGradient such as EvolutionStrategies(pairs=16, sigma=0.05)), "
        f"got {meta_gradient!r}"
    )
