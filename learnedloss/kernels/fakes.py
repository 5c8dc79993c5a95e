"""The kernels' fake (meta) implementations: each output's shape and dtype from the
arguments alone, for ``torch.library.opcheck``, fake tensors and ``torch.compile``."""

from __future__ import annotations

import torch

_registered: list[bool] = []


def register_fakes() -> None:
    """Register the fake implementations of the loaded ops (once per process)."""
    if _registered:
        return
    torch.library.register_fake("learnedloss::monotone_regression")(_monotone_regression)
    torch.library.register_fake("learnedloss::grid_classification")(_grid_classification)
    torch.library.register_fake("learnedloss::monotone_regression_loss")(_monotone_regression_loss)
    _registered.append(True)


def _outputs(input, per_sample_shape, reduction: int, want_gradient: bool):
    value = input.new_empty(per_sample_shape if reduction == 0 else ())
    gradient = input.new_empty(input.shape if want_gradient else (0,))
    return value, gradient, input.new_empty((), dtype=torch.bool)


def _monotone_regression(
    input, target, coefficients, boundaries, lo, hi, limit, reduction, want_gradient
):
    return _outputs(input, input.shape, reduction, want_gradient)


def _grid_classification(
    logits, target, columns, lo, hi, limit, target_axis, scale_form, reduction, want_gradient
):
    return _outputs(logits, target.shape, reduction, want_gradient)


def _monotone_regression_loss(input, target, coefficients, boundaries, lo, hi, limit, reduction):
    value, _gradient, usable = _outputs(input, input.shape, reduction, False)
    return value, usable
