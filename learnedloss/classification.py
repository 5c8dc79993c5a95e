"""Input handling of classification losses, with ``nn.CrossEntropyLoss``'s conventions.

`LearnedLoss` of kind ``"classification"`` scores every (sample, class) pair with its network
and sums over classes; this module turns logits and targets into those per-class features
and the mask of samples ``ignore_index`` leaves in. It knows nothing about the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_features(
    input: torch.Tensor, target: torch.Tensor, ignore_index: int, check_values: bool
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Per-class features of a batch, with the class dimension moved last.

    Args:
        input: logits ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``()``, ``(N)`` or ``(N, d1, ...)`` (an integer dtype), or
            class probabilities of the input's shape (floating point).
        ignore_index: an index target whose samples count for nothing.
        check_values: check in eager mode that class indices are in range.

    Returns:
        ``({"log_prob", "prob", "target"}: (..., C) tensors in the input's dtype, valid)``:
        ``valid`` is the ``(...)`` mask of samples not ignored, or None for probability
        targets (which ignore nothing).
    """
    _check_classification_pair(input, target)
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    log_prob = F.log_softmax(input, dim=class_dim).movedim(class_dim, -1)
    if target.is_floating_point():
        probs = target.to(input.dtype).movedim(class_dim, -1)
        valid = None
    else:
        valid = target != ignore_index
        if check_values and not torch.compiler.is_compiling():
            _check_class_indices(target, valid, n_classes, ignore_index)
        safe = torch.where(valid, target, torch.zeros_like(target)).long()
        probs = torch.zeros_like(log_prob).scatter(-1, safe.unsqueeze(-1), 1.0)
    return {"log_prob": log_prob, "prob": log_prob.exp(), "target": probs}, valid


def _check_classification_pair(input: object, target: object) -> None:
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not input.is_floating_point():
        raise TypeError(
            f"input must be floating-point logits (float16, bfloat16, float32 or float64), "
            f"got {input.dtype}"
        )
    if input.dim() == 0:
        raise ValueError("input must be logits of shape (C), (N, C) or (N, C, d1, ...), got ()")
    if target.is_floating_point():
        if target.shape != input.shape:
            raise ValueError(
                "class-probability targets must have the input's shape "
                f"{tuple(input.shape)}, got {tuple(target.shape)}"
            )
        return
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"target must be class indices (an integer dtype) or class probabilities "
            f"(floating point), got {target.dtype}"
        )
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"class-index targets for input of shape {tuple(input.shape)} must have shape "
            f"{expected} (the input's shape without the class dimension), got "
            f"{tuple(target.shape)}"
        )


def _check_class_indices(
    target: torch.Tensor, valid: torch.Tensor, n_classes: int, ignore_index: int
) -> None:
    bad = valid & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        values = sorted({int(v) for v in target[bad].flatten()[:5]})
        raise ValueError(
            f"target holds class indices {values} outside [0, {n_classes - 1}] for input with "
            f"{n_classes} classes (ignore_index is {ignore_index})"
        )
