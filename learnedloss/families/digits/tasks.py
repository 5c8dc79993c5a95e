"""Few-shot classification tasks on scikit-learn's bundled handwritten digits.

The data is ``sklearn.datasets.load_digits``: 1797 real 8×8 grey-scale images of the digits
0-9 (pixel values 0-16, scaled here to [0, 1]), shipped inside scikit-learn, so nothing is
downloaded. Each task picks ``n_way`` digit classes, assigns them labels 0..n_way-1 in a
random order (so no model can carry a class's label across tasks), and draws ``n_shot``
training and ``n_query`` query images per class.

The images are split once, by a fixed seed, into a meta-train and a meta-test pool (60% /
40% of every class): meta-training never sees a meta-test image. ``label_noise`` flips that
fraction of each task's *training* labels to a uniformly drawn other class; query labels
stay clean, so the meta-objective scores what the model learned of the true classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.families.sine.tasks import mlp
from learnedloss.tasks.base import TaskBatch, TaskFamily

SPLIT_SEED = 0
META_TRAIN_FRACTION = 0.6
MODELS = ("mlp", "cnn")
IMAGE_SIDE = 8


@cache
def digit_pools() -> dict[str, list[torch.Tensor]]:
    """The images of each class in the meta-train and meta-test pools.

    Returns ``{"meta-train": [images of 0, ..., images of 9], "meta-test": [...]}``, each a
    float32 tensor ``(n_images, 64)`` with values in [0, 1].
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "the digits tasks need scikit-learn's bundled dataset: pip install 'learnedloss[data]'"
        ) from err
    data = load_digits()
    images = torch.tensor(data.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(data.target)
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    pools: dict[str, list[torch.Tensor]] = {"meta-train": [], "meta-test": []}
    for digit in range(10):
        own = images[labels == digit]
        order = torch.randperm(len(own), generator=generator)
        cut = round(META_TRAIN_FRACTION * len(own))
        pools["meta-train"].append(own[order[:cut]])
        pools["meta-test"].append(own[order[cut:]])
    return pools


class SmallCNN(nn.Module):
    """A small CNN for 8×8 digits: two 3×3 convolutions (8 and 16 channels, the second with
    stride 2), ReLU, and a linear classifier. Takes flat ``(N, 64)`` images."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16 * 4 * 4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        return self.head(h.flatten(1))


class DigitsTasks(TaskFamily):
    """N-way few-shot classification of real handwritten digits, optionally with noisy labels.

    Args:
        n_way: classes per task.
        n_shot: training images per class (the inner loop's data).
        n_query: query images per class (the meta-objective's data; labels always clean).
        split: ``"meta-train"`` or ``"meta-test"``, the image pool tasks draw from.
        label_noise: fraction of training labels flipped to a uniformly drawn other class
            (exactly ``round(label_noise * n_way * n_shot)`` per task).
        model: ``"mlp"`` (64-hidden-n_way ReLU MLP) or ``"cnn"`` (`SmallCNN`).
        hidden: hidden sizes of the MLP.
        classes: the digits tasks may use (default all ten).

    The objective is the cross-entropy on the query set; `metrics` adds the error rate.

    Examples:
        >>> import torch
        >>> from learnedloss.families.digits.tasks import DigitsTasks
        >>> batch = DigitsTasks(n_way=5, n_shot=10).sample(4, torch.Generator().manual_seed(0))
        >>> tuple(batch.x_train.shape), tuple(batch.y_train.shape), batch.y_train.dtype
        ((4, 50, 64), (4, 50), torch.int64)
    """

    loss_kind = "classification"

    def __init__(
        self,
        n_way: int = 5,
        n_shot: int = 10,
        n_query: int = 10,
        split: str = "meta-train",
        label_noise: float = 0.0,
        model: str = "mlp",
        hidden: Sequence[int] = (32,),
        classes: Sequence[int] = tuple(range(10)),
    ) -> None:
        if split not in ("meta-train", "meta-test"):
            raise ValueError(f"split must be 'meta-train' or 'meta-test', got {split!r}")
        if model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
        if not 0.0 <= label_noise < 1.0:
            raise ValueError(f"label_noise must be in [0, 1), got {label_noise}")
        classes = tuple(sorted(set(classes)))
        if not classes or not set(classes) <= set(range(10)):
            raise ValueError(f"classes must be digits 0-9, got {classes}")
        if not 2 <= n_way <= len(classes):
            raise ValueError(f"n_way must be in [2, {len(classes)}] for classes {classes}")
        smallest = min(len(digit_pools()[split][c]) for c in classes)
        if n_shot < 1 or n_query < 1 or n_shot + n_query > smallest:
            raise ValueError(
                f"n_shot + n_query must be at most {smallest} (the fewest images of a class in "
                f"the {split} pool) and both at least 1, got {n_shot} + {n_query}"
            )
        self.n_way, self.n_shot, self.n_query = n_way, n_shot, n_query
        self.split, self.label_noise, self.model = split, label_noise, model
        self.hidden, self.classes = tuple(hidden), classes

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        pool = digit_pools()[self.split]
        per_class = self.n_shot + self.n_query
        x = torch.empty(n_tasks, self.n_way, per_class, IMAGE_SIDE**2)
        for task in range(n_tasks):
            chosen = torch.randperm(len(self.classes), generator=generator)[: self.n_way]
            for label, index in enumerate(chosen.tolist()):
                images = pool[self.classes[index]]
                pick = torch.randperm(len(images), generator=generator)[:per_class]
                x[task, label] = images[pick]
        labels = torch.arange(self.n_way).view(1, self.n_way, 1).expand(n_tasks, -1, per_class)
        x_train = x[:, :, : self.n_shot].reshape(n_tasks, -1, IMAGE_SIDE**2)
        y_train = labels[:, :, : self.n_shot].reshape(n_tasks, -1).clone()
        x_query = x[:, :, self.n_shot :].reshape(n_tasks, -1, IMAGE_SIDE**2)
        y_query = labels[:, :, self.n_shot :].reshape(n_tasks, -1).clone()
        n_flipped = round(self.label_noise * y_train.shape[1])
        if n_flipped:
            which = torch.rand(y_train.shape, generator=generator).argsort(dim=1)[:, :n_flipped]
            shift = torch.randint(1, self.n_way, (n_tasks, n_flipped), generator=generator)
            flipped = (y_train.gather(1, which) + shift) % self.n_way
            y_train.scatter_(1, which, flipped)
        return TaskBatch(x_train, y_train, x_query, y_query)

    def make_model(self) -> nn.Module:
        if self.model == "cnn":
            return SmallCNN(self.n_way)
        return mlp((IMAGE_SIDE**2, *self.hidden, self.n_way))

    def objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits ``(M, n_way)`` against the query labels ``(M,)``."""
        return F.cross_entropy(prediction, target)

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"error": fraction of query images misclassified}``."""
        return {"error": (prediction.argmax(dim=-1) != target).float().mean()}

    def summary(self) -> str:
        """One line for tables and plots, e.g. "5-way 40-shot, 40% flipped labels, ..."."""
        return (
            f"{self.n_way}-way {self.n_shot}-shot, {self.label_noise:.0%} flipped labels, "
            f"{self.describe()['model']}"
        )

    def describe(self) -> dict:
        """The family's settings, JSON-ready (for configs and model cards)."""
        model = (
            "SmallCNN (conv 8, conv 16 stride 2, linear)"
            if self.model == "cnn"
            else f"64-{'-'.join(map(str, self.hidden))}-{self.n_way} relu MLP"
        )
        return {
            "family": "digits",
            "n_way": self.n_way,
            "n_shot": self.n_shot,
            "n_query": self.n_query,
            "split": self.split,
            "label_noise": self.label_noise,
            "classes": list(self.classes),
            "model": model,
        }
