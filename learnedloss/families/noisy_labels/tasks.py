"""Broad noisy-label classification tasks: synthetic teachers with 2 to 100 classes and real
tabular sets, with symmetric or class-dependent label noise at 0-60%.

A task draws ``n_train + n_query`` examples of one *source*, standardizes the inputs with the
training rows' statistics, relabels its classes in a random order, and corrupts a random
fraction of the *training* labels; query labels stay clean. All tasks of a meta-batch share
one source and class count (they are stacked for ``torch.func.vmap``).

Sources:

- ``"synthetic"``: inputs ~ N(0, I) in 4-32 dimensions, labels the argmax of a random teacher
  MLP with C outputs, C drawn from ``n_classes`` (2 to 100 by default);
- ``"clusters"``: scikit-learn's ``make_classification`` (Guyon's Madelon design): each
  class one or two Gaussian clusters at hypercube vertices in 4-32 dimensions, with a random
  class separation and informative, redundant and useless features;
- real tables shipped inside scikit-learn and statsmodels (`TABLES`). `META_TRAIN_TABLES`
  may be meta-trained on; `HELD_OUT_TABLES` are never meta-trained on nor tuned on.

Noise (`NOISES`): ``"symmetric"`` flips a label to a uniformly drawn *other* class;
``"pair"`` (class-dependent) flips class c to class c + 1 (mod C), the classes in the task's
random order.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.families.digits.tasks import IMAGE_SIDE, SmallCNN
from learnedloss.tasks.base import TaskBatch, TaskFamily
from learnedloss.tasks.models import mlp

NOISES = ("symmetric", "pair")
META_OBJECTIVES = ("calibrated-cross-entropy", "cross-entropy", "error")
TEMPERATURES = tuple(2.0 ** (k / 2) for k in range(-6, 7))
"""Logit temperatures the calibrated meta-objective tries (as the digits family's)."""

TABLES = {
    "wine": "sklearn wine: 3 cultivars from 13 chemical measurements (178 rows)",
    "iris": "sklearn iris: 3 species from 4 measurements (150 rows)",
    "digits": "sklearn digits: 10 handwritten digits, 8x8 images (1797 rows)",
    "breast-cancer": "sklearn breast cancer: malignant or benign from 30 features (569 rows)",
    "anes96": "statsmodels ANES 1996: 7-point party identification from 10 covariates (944 rows)",
    "fair": "statsmodels Fair (1978): any extramarital affair, from 8 survey answers (6366 rows)",
}
META_TRAIN_TABLES = ("wine", "iris", "fair")
SYNTHETIC_SOURCES = ("synthetic", "clusters")
"""Sources drawn fresh for every task, with any class count."""
HELD_OUT_TABLES = ("digits", "breast-cancer", "anes96")


@cache
def load_table(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X float32 (rows, features), labels int64 (rows,))`` of a table in `TABLES`."""
    if name == "fair":
        import statsmodels.api as sm

        frame = sm.datasets.fair.load_pandas().data
        labels = torch.tensor((frame["affairs"] > 0).to_numpy()).long()
        x = torch.tensor(frame.drop(columns=["affairs"]).to_numpy(), dtype=torch.float32)
        return x, labels
    if name == "anes96":
        import statsmodels.api as sm

        frame = sm.datasets.anes96.load_pandas().data
        labels = torch.tensor(frame["PID"].to_numpy()).long()
        x = torch.tensor(frame.drop(columns=["PID", "vote"]).to_numpy(), dtype=torch.float32)
        return x, labels
    import sklearn.datasets

    loader = {
        "wine": sklearn.datasets.load_wine,
        "iris": sklearn.datasets.load_iris,
        "digits": sklearn.datasets.load_digits,
        "breast-cancer": sklearn.datasets.load_breast_cancer,
    }[name]
    data = loader()
    x = torch.tensor(data.data, dtype=torch.float32)
    if name == "digits":
        x = x / 16.0
    return x, torch.tensor(data.target).long()


def flip_labels(
    labels: torch.Tensor,
    n_classes: int,
    fraction: torch.Tensor,
    noises: Sequence[str],
    generator: torch.Generator,
) -> torch.Tensor:
    """Flip ``round(fraction[t] * N)`` labels of task ``t`` (``labels``: ``(T, N)``) with the
    noise ``noises[t]`` (one of `NOISES`); returns a copy."""
    labels = labels.clone()
    n_tasks, n = labels.shape
    order = torch.rand(n_tasks, n, generator=generator).argsort(dim=1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n).expand(n_tasks, n))
    chosen = ranks < (fraction.view(-1, 1) * n).round()
    shift = torch.randint(1, max(2, n_classes), (n_tasks, n), generator=generator)
    for t, noise in enumerate(noises):
        if noise == "symmetric":
            new = (labels[t] + shift[t]) % n_classes
        elif noise == "pair":
            new = (labels[t] + 1) % n_classes
        else:
            raise ValueError(f"noise must be one of {list(NOISES)}, got {noise!r}")
        labels[t] = torch.where(chosen[t], new, labels[t])
    return labels


def _cluster_tasks(n_tasks, n_points, n_inputs, n_classes, generator):
    from sklearn.datasets import make_classification

    n_inputs = max(n_inputs, (2 * n_classes - 1).bit_length())  # room for every cluster
    xs, ys = [], []
    for _ in range(n_tasks):
        draw = torch.randint(0, 2**31 - 1, (4,), generator=generator).tolist()
        per_class = 1 + draw[1] % 2
        informative = max(2, min(n_inputs, (n_classes * per_class - 1).bit_length() + draw[2] % 4))
        x, y = make_classification(
            n_samples=n_points,
            n_features=n_inputs,
            n_informative=informative,
            n_redundant=min(n_inputs - informative, draw[3] % 4),
            n_classes=n_classes,
            n_clusters_per_class=per_class,
            class_sep=0.5 + 1.5 * (draw[2] % 1000) / 1000,
            flip_y=0.0,
            random_state=draw[0],
        )
        xs.append(torch.tensor(x, dtype=torch.float32))
        ys.append(torch.tensor(y).long())
    return torch.stack(xs), torch.stack(ys)


def _teacher_tasks(n_tasks, n_points, n_inputs, n_classes, generator):
    x = torch.randn(n_tasks, n_points, n_inputs, generator=generator)
    w1 = torch.randn(n_tasks, n_inputs, 64, generator=generator) / n_inputs**0.5
    w2 = torch.randn(n_tasks, 64, n_classes, generator=generator) / 8.0
    logits = torch.tanh(2 * x @ w1) @ w2
    return x, logits.argmax(dim=-1)


class NoisyLabelTasks(TaskFamily):
    """Classification tasks from many sources with noisy training labels (see the module).

    Args:
        sources: `SYNTHETIC_SOURCES` and/or names in `TABLES`; one per meta-batch.
        n_classes: the class counts synthetic tasks draw from (one per meta-batch); a real
            table uses all its classes, or ``table_classes`` of them.
        table_classes: use this many of a table's classes (drawn per meta-batch); None: all.
        n_train: training examples per task.
        n_query: (clean) query examples per task.
        label_noise: ``(low, high)``: each task's flipped fraction is uniform on it.
        noises: the noise kinds tasks draw from (`NOISES`).
        widths: hidden widths the MLPs draw from (one per meta-batch).
        model: ``"mlp"`` (one hidden ReLU layer) or ``"cnn"`` (`SmallCNN`, 8x8 images only).
        meta_objective: ``"calibrated-cross-entropy"`` (query cross-entropy at the best
            temperature in `TEMPERATURES`), ``"cross-entropy"``, or ``"error"`` (the query
            error rate: not differentiable, for evolution strategies only).
    """

    loss_kind = "classification"

    def __init__(
        self,
        sources: Sequence[str] = (*SYNTHETIC_SOURCES, *META_TRAIN_TABLES),
        n_classes: Sequence[int] = (2, 3, 5, 10, 20, 50, 100),
        table_classes: int | None = None,
        n_train: int = 100,
        n_query: int = 50,
        label_noise: tuple[float, float] = (0.0, 0.6),
        noises: Sequence[str] = NOISES,
        widths: Sequence[int] = (32, 64),
        model: str = "mlp",
        meta_objective: str = "calibrated-cross-entropy",
        synthetic_inputs: tuple[int, int] = (4, 32),
    ) -> None:
        unknown = [s for s in sources if s not in SYNTHETIC_SOURCES and s not in TABLES]
        if not sources or unknown:
            raise ValueError(
                f"sources must be in {list(SYNTHETIC_SOURCES)} or {list(TABLES)}, got {unknown}"
            )
        if not 0.0 <= label_noise[0] <= label_noise[1] < 1.0:
            raise ValueError(f"label_noise must be 0 <= low <= high < 1, got {label_noise}")
        if model not in ("mlp", "cnn"):
            raise ValueError(f"model must be 'mlp' or 'cnn', got {model!r}")
        if meta_objective not in META_OBJECTIVES:
            raise ValueError(f"unknown meta_objective {meta_objective!r}")
        self.sources, self.n_classes = tuple(sources), tuple(n_classes)
        self.table_classes = table_classes
        self.n_train, self.n_query = n_train, n_query
        self.label_noise, self.noises = label_noise, tuple(noises)
        self.widths, self.model = tuple(widths), model
        self.meta_objective_name = meta_objective
        self.synthetic_inputs = synthetic_inputs
        first = self.sources[0]
        synthetic = first in SYNTHETIC_SOURCES
        n_inputs = synthetic_inputs[0] if synthetic else load_table(first)[0].shape[1]
        self._shape = (n_inputs, self.widths[0], self._classes_of(first, self.n_classes[0]))

    def _classes_of(self, source: str, drawn: int) -> int:
        if source in SYNTHETIC_SOURCES:
            return drawn
        total = int(load_table(source)[1].max()) + 1
        return total if self.table_classes is None else min(self.table_classes, total)

    def _pick(self, options, generator):
        return options[int(torch.randint(0, len(options), (), generator=generator))]

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        source = self._pick(self.sources, generator)
        width = self._pick(self.widths, generator)
        n = self.n_train + self.n_query
        if source in SYNTHETIC_SOURCES:
            n_classes = self._pick(self.n_classes, generator)
            low, high = self.synthetic_inputs
            n_inputs = int(torch.randint(low, high + 1, (), generator=generator))
            draw = _teacher_tasks if source == "synthetic" else _cluster_tasks
            x, labels = draw(n_tasks, n, n_inputs, n_classes, generator)
        else:
            table_x, table_y = load_table(source)
            n_classes = self._classes_of(source, 0)
            total = int(table_y.max()) + 1
            xs, ys = [], []
            for _ in range(n_tasks):
                classes = torch.randperm(total, generator=generator)[:n_classes]
                keep = torch.isin(table_y, classes).nonzero().view(-1)
                rows = keep[torch.randperm(len(keep), generator=generator)]
                if len(rows) < n:  # small tables: sample with replacement
                    rows = keep[torch.randint(0, len(keep), (n,), generator=generator)]
                rows = rows[:n]
                relabel = torch.full((total,), -1, dtype=torch.long)
                relabel[classes] = torch.arange(n_classes)
                xs.append(table_x[rows])
                ys.append(relabel[table_y[rows]])
            x, labels = torch.stack(xs), torch.stack(ys)
        self._shape = (x.shape[-1], width, n_classes)
        if self.model == "mlp":
            train = x[:, : self.n_train]
            mean, std = train.mean(dim=1, keepdim=True), train.std(dim=1, keepdim=True)
            x = (x - mean) / std.clamp_min(1e-3)
        fraction = torch.rand(n_tasks, generator=generator)
        fraction = self.label_noise[0] + (self.label_noise[1] - self.label_noise[0]) * fraction
        noises = [self._pick(self.noises, generator) for _ in range(n_tasks)]
        y_train = flip_labels(labels[:, : self.n_train], n_classes, fraction, noises, generator)
        extra = {"label_noise": fraction}
        return TaskBatch(
            x[:, : self.n_train], y_train, x[:, self.n_train :], labels[:, self.n_train :], extra
        )

    def make_model(self) -> nn.Module:
        """A fresh model for the current meta-batch (the last `sample`'s sizes)."""
        n_inputs, width, n_classes = self._shape
        if self.model == "cnn":
            if n_inputs != IMAGE_SIDE**2:
                raise ValueError("the CNN takes 8x8 images (64 inputs)")
            return SmallCNN(n_classes)
        return mlp((n_inputs, width, n_classes))

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits ``(M, C)`` against the clean query labels ``(M,)``."""
        return F.cross_entropy(prediction, target)

    def meta_objective(self, params, prediction, target, extra) -> torch.Tensor:
        if self.meta_objective_name == "cross-entropy":
            return self.objective(prediction, target)
        if self.meta_objective_name == "error":
            return self.metrics(prediction, target)["error"]
        return torch.stack([F.cross_entropy(prediction / t, target) for t in TEMPERATURES]).min()

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"error": fraction of query examples misclassified}``."""
        return {"error": (prediction.argmax(dim=-1) != target).float().mean()}

    def describe(self) -> dict:
        """The family's settings, JSON-ready."""
        return {
            "family": "noisy-labels",
            "sources": list(self.sources),
            "n_classes": list(self.n_classes),
            "table_classes": self.table_classes,
            "n_train": self.n_train,
            "n_query": self.n_query,
            "label_noise": list(self.label_noise),
            "noises": list(self.noises),
            "model": f"{self.model} (widths {list(self.widths)})",
            "meta_objective": self.meta_objective_name,
        }
