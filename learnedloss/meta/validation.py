"""The fixed meta-validation set of a run: its tasks, their models, and its fingerprint."""

from __future__ import annotations

import hashlib
import json

import torch

from learnedloss.meta.inner import Params, initial_params
from learnedloss.tasks.base import TaskBatch, TaskFamily


class ValidationSet:
    """``size`` tasks and initial models drawn once from ``family`` with its own ``seed``.

    Every meta-validation of a run scores the loss on these same tasks, so scores compare
    across steps. A checkpoint records its `fingerprint`, and a run is resumed only with the
    same set (its best score was measured on it).

    Args:
        family: the family the tasks come from.
        size: how many tasks (>= 1).
        seed: the seed of the generator that draws the tasks and then the models.
        device: where the tasks and models are put.

    Examples:
        >>> from learnedloss.families.sine import SineTasks
        >>> validation = ValidationSet(SineTasks(), 2, seed=1, device=torch.device("cpu"))
        >>> validation.batch.x_train.shape[0], validation.fingerprint()["size"]
        (2, 2)
    """

    def __init__(self, family: TaskFamily, size: int, seed: int, device: torch.device) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.family = family
        self.size = size
        self.batch: TaskBatch = family.sample(size, generator).to(device)
        _, params = initial_params(family.make_model, size, generator)
        self.params: Params = {k: v.to(device) for k, v in params.items()}
        self._fingerprint: dict | None = None  # computed when first needed

    def fingerprint(self) -> dict:
        """What identifies the set, JSON-ready: its family's settings (``tasks``), its
        ``size`` and a ``sha256`` of its tasks and initial models."""
        if self._fingerprint is None:
            self._fingerprint = {
                "tasks": json.loads(json.dumps(self.family.describe(), default=str)),
                "size": self.size,
                "sha256": _tensors_digest(self._tensors()),
            }
        return self._fingerprint

    def _tensors(self) -> dict[str, torch.Tensor]:
        batch = self.batch
        return {
            "x_train": batch.x_train,
            "y_train": batch.y_train,
            "x_query": batch.x_query,
            "y_query": batch.y_query,
            **{f"extra.{k}": v for k, v in sorted(batch.extra.items())},
            **{f"params.{k}": v for k, v in sorted(self.params.items())},
        }


def _tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A SHA-256 of named tensors: each one's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
