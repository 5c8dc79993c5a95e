"""The task protocol: a family samples meta-batches of tasks and says what model they train.

A task is a small supervised problem. The inner loop trains a fresh model on its *train*
set with the learned loss; the outer loop scores the trained model with the task
*objective* (default: MSE), on the held-out *query* set by default. Scoring on held-out
points asks the loss to produce models that generalize, not models that fit the inner-loop
data; this matters when the inner-loop data are corrupted (then only the query set is clean).

Tasks in a meta-batch are stacked along a leading dimension, so the inner loop can run all of
them at once with ``torch.func.vmap``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class TaskBatch:
    """A meta-batch of ``T`` tasks, stacked along dimension 0.

    Attributes:
        x_train: ``(T, N, *in_shape)`` inputs the inner loop trains on.
        y_train: ``(T, N, *out_shape)`` their targets (possibly corrupted).
        x_query: ``(T, M, *in_shape)`` held-out inputs the meta-objective scores.
        y_query: ``(T, M, *out_shape)`` their (clean) targets.
        extra: optional per-task tensors, ``(T, ...)``, for the meta-objective only.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {t.shape[0] for t in (self.x_train, self.y_train, self.x_query, self.y_query)}
        sizes |= {t.shape[0] for t in self.extra.values()}
        if len(sizes) != 1:
            raise ValueError(
                f"all tensors of a TaskBatch need the same task dimension, got {sizes}"
            )

    def __len__(self) -> int:
        return self.x_train.shape[0]

    def to(self, device: torch.device | str) -> TaskBatch:
        """The same batch on another device."""
        return TaskBatch(
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_query.to(device),
            self.y_query.to(device),
            {k: v.to(device) for k, v in self.extra.items()},
        )

    def scored(self, on: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (inputs, targets) the meta-objective scores: ``on`` is 'query' or 'train'."""
        if on == "query":
            return self.x_query, self.y_query
        if on == "train":
            return self.x_train, self.y_train
        raise ValueError(f"score_on must be 'query' or 'train', got {on!r}")


def mse_objective(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The default task objective: mean squared error over a task's points."""
    return ((prediction - target) ** 2).mean()


def default_loss_arguments(prediction, target, x):
    """A loss sees (prediction, target), and may read the model's input ``x`` as a side
    input (same shape as the prediction, e.g. 1-d regression)."""
    return prediction, target, {"x": x}


class TaskFamily(ABC):
    """A distribution over tasks. Subclass it to meta-train a loss on your own problems.

    Implement `sample` and `make_model`; override `objective` if the true task objective is
    not the MSE. The objective takes one task's predictions and targets (no task dimension;
    the trainer vmaps it) and returns a scalar.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from learnedloss.tasks import TaskBatch, TaskFamily
        >>> class Lines(TaskFamily):
        ...     def sample(self, n_tasks, generator):
        ...         slope = torch.randn(n_tasks, 1, 1, generator=generator)
        ...         x = torch.rand(n_tasks, 40, 1, generator=generator) * 2 - 1
        ...         y = slope * x
        ...         return TaskBatch(x[:, :20], y[:, :20], x[:, 20:], y[:, 20:])
        ...     def make_model(self):
        ...         return nn.Linear(1, 1)
        >>> len(Lines().sample(4, torch.Generator().manual_seed(0)))
        4
    """

    loss_kind: str | None = None
    """The kind of loss (`LossConfig.kind`) the family's tasks train, e.g.
    ``"regression"`` or ``"classification"``: `MetaTrainer` refuses a loss of another kind
    before any work (a registered kind that subclasses it counts as it). ``None``, the
    default, declares none and accepts any kind; a family of the wrong kind then stalls,
    and `MetaTrainer.fit` raises `learnedloss.MetaTrainingStalled`."""

    @abstractmethod
    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        """Draw ``n_tasks`` tasks using only ``generator`` for randomness."""

    @abstractmethod
    def make_model(self) -> nn.Module:
        """A freshly initialized model for one task (initialized from the global RNG)."""

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The true task objective for one task; MSE unless overridden."""
        return mse_objective(prediction, target)

    def loss_arguments(
        self, prediction: torch.Tensor, target: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """What the inner loop calls a loss with, for one task: ``(input, target,
        side_inputs)``.

        The default passes the model's output and the targets, and offers the model's input
        as the side input ``x``. Override it when the model's output is more than a
        prediction, e.g. a policy roll-out from which the loss reads a position as its
        input and the velocities and actions as side inputs (`MountainCarTasks`). A
        standard loss gets ``(input, target)``; a learned loss also gets the side inputs
        its config declares.
        """
        return default_loss_arguments(prediction, target, x)

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra scores `learnedloss.evaluate` reports for one task, ``{name: scalar}``,
        each lower-is-better (e.g. an error rate); none unless overridden."""
        return {}

    def meta_objective(
        self,
        params: dict[str, torch.Tensor],
        prediction: torch.Tensor,
        target: torch.Tensor,
        extra: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """What meta-training minimizes for one trained model; the task `objective` unless
        overridden.

        Override it to shape the loss with information that exists only at meta-train time
        (docs/shaped-sine.md): ``params`` are the trained model's parameters and ``extra`` the
        task's `TaskBatch.extra` entries, both for one task (no task dimension). The learned
        loss never sees them; they reach it only through the meta-gradient. Meta-testing
        (`learnedloss.evaluate`) scores the plain `objective`.
        """
        return self.objective(prediction, target)

    def describe(self) -> dict:
        """The family's settings, JSON-ready, for configs and model cards."""
        return {"family": type(self).__name__}


def template_model(family: TaskFamily, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A model of ``family`` whose architecture the inner loops copy, built on ``device``
    without drawing from the caller's random number generator (its weights are never used)."""
    with torch.random.fork_rng(devices=[]):
        return family.make_model().to(device)
