"""`MixedTasks`: one meta-batch whose tasks come from several task families at once.

A family such as ``robust-regression`` or ``noisy-labels`` draws one source, one model width
and one class count per meta-batch, so that its tasks stack. `MixedTasks` draws each task's
family by weight and lets every family sample its share; the groups then stack into one
`TaskBatch` by zero padding, which changes no task's training:

- inputs get zero columns up to the widest input; the first layer's weights on them start at
  zero and their gradient (weight times a zero input) is zero, so they stay zero;
- hidden layers get units whose weights in and out start at zero: such a unit outputs
  ``f(0) = 0`` (ReLU, leaky ReLU, ELU, tanh) and has a zero gradient, so it stays silent
  under SGD and Adam alike;
- a classifier with fewer classes gets output units fixed at ``-inf`` (zero weights, bias
  ``-inf``): a ``-inf`` logit masks its class, exactly as in ``nn.CrossEntropyLoss`` and in a
  learned classification loss, and its gradient is zero.

So every padded model trains and scores as its own unpadded model would, up to the rounding
of sums that gain zero terms, on the vmap path and on the batched engine alike; one outer
step then trains all families' tasks in one stacked call. The families' models must be
``nn.Sequential`` MLPs of the same depth and activations (`learnedloss.tasks.models.mlp`),
and the families must score tasks the same way (same objective, meta-objective and loss
arguments).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.tasks.base import TaskBatch, TaskFamily

ZERO_PRESERVING = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Tanh)
"""Activations with ``f(0) = 0``: a padded hidden unit through one stays zero."""


@dataclass(frozen=True)
class TaskGroup:
    """The tasks of one family in the last mixed meta-batch.

    Attributes:
        family: the index of the family in `MixedTasks.families`.
        tasks: the group's tasks, a slice of the meta-batch's task dimension.
        template: a model of the group's own (unpadded) shape, as its family made it.
    """

    family: int
    tasks: slice
    template: nn.Sequential


@dataclass(frozen=True)
class _Layout:
    """The last meta-batch's groups, the model every task is padded to, and whether the
    output is padded with masked classes."""

    groups: tuple[TaskGroup, ...]
    padded: nn.Sequential
    masked_outputs: bool

    def group_of(self, task: int) -> TaskGroup:
        return next(g for g in self.groups if g.tasks.start <= task < g.tasks.stop)


class MixedTasks(TaskFamily):
    """Meta-batches that mix the tasks of several families (see the module).

    Args:
        families: the task families to draw from (the same one may appear twice, e.g. with
            other sources, widths or class counts); they must train the same loss kind with
            ``nn.Sequential`` MLPs of one depth and score tasks alike.
        weights: each family's share of the tasks (drawn per task; default: equal).

    Raises:
        ValueError: no families, weights that do not fit them, or families that train other
            loss kinds or score tasks differently.

    Examples:
        >>> import torch
        >>> from learnedloss.families.noisy_labels.tasks import NoisyLabelTasks
        >>> from learnedloss.meta.inner import initial_params
        >>> mixed = MixedTasks(
        ...     [NoisyLabelTasks(sources=("synthetic",), n_classes=(c,)) for c in (3, 10)]
        ... )
        >>> generator = torch.Generator().manual_seed(0)
        >>> batch = mixed.sample(8, generator)
        >>> _, params = initial_params(mixed.make_model, 8, generator)
        >>> params["2.bias"].shape  # outputs padded to 10 classes
        torch.Size([8, 10])
    """

    def __init__(
        self, families: Sequence[TaskFamily], weights: Sequence[float] | None = None
    ) -> None:
        self.families = tuple(families)
        if not self.families:
            raise ValueError("MixedTasks needs at least one task family")
        weights = (1.0,) * len(self.families) if weights is None else tuple(weights)
        if len(weights) != len(self.families) or not all(
            math.isfinite(w) and w >= 0 for w in weights
        ):
            raise ValueError(
                f"weights must be {len(self.families)} finite numbers >= 0, got {list(weights)}"
            )
        if sum(weights) <= 0:
            raise ValueError(f"weights must not all be zero, got {list(weights)}")
        self.weights = weights
        kinds = {family.loss_kind for family in self.families}
        if len(kinds) != 1:
            raise ValueError(f"the families train different loss kinds: {sorted(map(str, kinds))}")
        self.loss_kind = kinds.pop()
        scorings = {_scoring(family) for family in self.families}
        if len(scorings) != 1:
            raise ValueError(
                "the families score tasks differently (objective, meta_objective, metrics or "
                "loss_arguments): a mixed meta-batch is scored by one of them"
            )
        if type(self.families[0]).loss_arguments is not TaskFamily.loss_arguments:
            self.loss_arguments = self.families[0].loss_arguments  # else the default's own
        self._layout: _Layout | None = None
        self._made = 0  # models made since the last sample

    # -- sampling --------------------------------------------------------------------

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        """Draw each task's family by weight; each family samples its share; the groups are
        padded to one shape and stacked, family by family."""
        probabilities = torch.tensor(self.weights, dtype=torch.float64)
        drawn = torch.multinomial(probabilities, n_tasks, replacement=True, generator=generator)
        counts = torch.bincount(drawn, minlength=len(self.families)).tolist()
        groups, batches, start = [], [], 0
        for index, (family, count) in enumerate(zip(self.families, counts, strict=True)):
            if not count:
                continue
            batches.append(family.sample(count, generator))
            with torch.random.fork_rng(devices=[]):  # a shape, not a draw of the run
                template = family.make_model()
            groups.append(TaskGroup(index, slice(start, start + count), _checked(template)))
            start += count
        self._layout = _layout(tuple(groups), self.loss_kind == "classification")
        self._made = 0
        return _stacked(batches, self._layout.padded[0].in_features)

    def task_groups(self) -> tuple[TaskGroup, ...]:
        """The groups of the last meta-batch `sample` drew, in the order they are stacked."""
        if self._layout is None:
            raise ValueError("no meta-batch has been sampled yet")
        return self._layout.groups

    def make_model(self) -> nn.Module:
        """A fresh model for the next task of the last meta-batch, padded to the batch's
        shape: after a `sample` of ``T`` tasks, the ``i``-th call (mod ``T``) initializes
        task ``i``'s model as its family would (what `learnedloss.meta.inner.initial_params`
        does), then pads it."""
        if self._layout is None:
            with torch.random.fork_rng(devices=[]):
                self.sample(1, torch.Generator().manual_seed(0))
        layout = self._layout
        count = layout.groups[-1].tasks.stop
        group = layout.group_of(self._made % count)
        self._made += 1
        return _padded_model(_fresh(group.template), layout)

    # -- scoring: the families score alike, so the first one speaks for all --------------

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.families[0].objective(prediction, target)

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        return self.families[0].meta_objective(params, prediction, target, extra)

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.families[0].metrics(prediction, target)

    def describe(self) -> dict:
        """The families' settings and weights, JSON-ready."""
        return {
            "family": "mixed",
            "families": [family.describe() for family in self.families],
            "weights": list(self.weights),
        }


def _scoring(family: TaskFamily) -> tuple:
    """What decides how ``family`` scores a task: its methods and its named meta-objective."""
    cls = type(family)
    named = family.describe().get("meta_objective")
    return (cls.objective, cls.meta_objective, cls.metrics, cls.loss_arguments, named)


def _linears(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def _checked(template: nn.Module) -> nn.Sequential:
    """``template`` if it is an MLP that zero padding leaves unchanged, else a `ValueError`."""
    if not isinstance(template, nn.Sequential) or not _linears(template):
        raise ValueError(
            f"MixedTasks pads nn.Sequential MLPs, not {type(template).__name__} models"
        )
    for layer in template:
        if not isinstance(layer, (nn.Linear, *ZERO_PRESERVING)):
            raise ValueError(
                f"MixedTasks cannot pad a {type(layer).__name__} layer (an activation must "
                "map 0 to 0: ReLU, LeakyReLU, ELU or Tanh)"
            )
    return template


def _layout(groups: tuple[TaskGroup, ...], classification: bool) -> _Layout:
    """The padded model of ``groups``: each layer as wide as the widest group's."""
    first = groups[0].template
    structure = [_structure(first)]
    for group in groups[1:]:
        structure.append(_structure(group.template))
        if structure[-1] != structure[0]:
            raise ValueError(
                f"the families' models differ in their layers: {structure[0]} and {structure[-1]}"
            )
    sizes = [
        (
            max(layers[k].in_features for layers in map(_linears, (g.template for g in groups))),
            max(layers[k].out_features for layers in map(_linears, (g.template for g in groups))),
        )
        for k in range(len(_linears(first)))
    ]
    outputs = {_linears(g.template)[-1].out_features for g in groups}
    if len(outputs) > 1 and not classification:
        raise ValueError(f"the families' models have different output sizes {sorted(outputs)}")
    with torch.random.fork_rng(devices=[]):
        linears = iter(
            [
                nn.Linear(i, o, bias=layer.bias is not None)
                for (i, o), layer in zip(sizes, _linears(first), strict=True)
            ]
        )
        padded = nn.Sequential(
            *[next(linears) if isinstance(m, nn.Linear) else copy.deepcopy(m) for m in first]
        )
    reference = next(first.parameters())
    padded = padded.to(reference.device, reference.dtype)
    return _Layout(groups, padded, len(outputs) > 1)


def _structure(model: nn.Sequential) -> list[str]:
    return [type(m).__name__ if isinstance(m, nn.Linear) else repr(m) for m in model]


def _fresh(template: nn.Sequential) -> nn.Sequential:
    """A copy of ``template`` initialized anew from the global RNG, as constructing it does
    (each layer's ``reset_parameters``, in order)."""
    model = copy.deepcopy(template)
    for layer in _linears(model):
        layer.reset_parameters()
    return model


def _padded_model(model: nn.Sequential, layout: _Layout) -> nn.Sequential:
    """``model``'s weights in a copy of the layout's padded model: zero elsewhere, and
    ``-inf`` output biases for the classes ``model`` lacks when the outputs are masked."""
    padded = copy.deepcopy(layout.padded)
    pairs = list(zip(_linears(model), _linears(padded), strict=True))
    with torch.no_grad():
        for index, (own, wide) in enumerate(pairs):
            out, inputs = own.weight.shape
            wide.weight.zero_()[:out, :inputs] = own.weight
            if own.bias is None:
                continue
            last = index == len(pairs) - 1
            wide.bias.fill_(-math.inf if last and layout.masked_outputs else 0.0)
            wide.bias[:out] = own.bias
    return padded


def _stacked(batches: list[TaskBatch], width: int) -> TaskBatch:
    """The groups' batches as one, inputs padded with zero columns to ``width``."""
    first = batches[0]
    for batch in batches[1:]:
        for name in ("x_train", "y_train", "x_query", "y_query"):
            a, b = getattr(first, name), getattr(batch, name)
            if a.dim() != b.dim() or a.shape[1] != b.shape[1] or a.dtype != b.dtype:
                raise ValueError(
                    f"the families' {name} do not stack: {tuple(a.shape)} {a.dtype} and "
                    f"{tuple(b.shape)} {b.dtype} (the same rows per task are needed)"
                )
        if {k: v.shape[1:] for k, v in first.extra.items()} != {
            k: v.shape[1:] for k, v in batch.extra.items()
        }:
            raise ValueError(
                f"the families' extra entries differ: {sorted(first.extra)} and "
                f"{sorted(batch.extra)}"
            )

    def inputs(name: str) -> torch.Tensor:
        parts = [getattr(b, name) for b in batches]
        if any(p.dim() != 3 for p in parts):
            raise ValueError("MixedTasks pads flat inputs (tasks, rows, features)")
        return torch.cat([F.pad(p, (0, width - p.shape[-1])) for p in parts])

    def joined(name: str) -> torch.Tensor:
        return torch.cat([getattr(b, name) for b in batches])

    return TaskBatch(
        inputs("x_train"),
        joined("y_train"),
        inputs("x_query"),
        joined("y_query"),
        {k: torch.cat([b.extra[k] for b in batches]) for k in first.extra},
    )
