"""A learned loss's values from a config, a network and a call's arguments: the general path,
which every call can take (any network, device, dtype, transform or input)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss.config import PROGRESS_INPUT, UNSCHEDULED_PROGRESS
from learnedloss.functional.reduction import reduce
from learnedloss.kinds import loss_kind

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

Progress = float | torch.Tensor | None
"""Training progress from 0 to 1 for a loss that reads it (a number or a 0-dim tensor; None:
`learnedloss.config.UNSCHEDULED_PROGRESS`)."""

FEATURE_LIMIT = {torch.float64: 1e150}
"""The largest feature magnitude a network evaluates, by dtype (default `DEFAULT_FEATURE_LIMIT`):
beyond it an element takes the standard loss's value (`LossKind.standard_loss`)."""

DEFAULT_FEATURE_LIMIT = 1e18


def feature_limit(dtype: torch.dtype) -> float:
    """The largest feature magnitude a network evaluates in ``dtype`` (`FEATURE_LIMIT`)."""
    return FEATURE_LIMIT.get(dtype, DEFAULT_FEATURE_LIMIT)


def usable_elements(features: Iterable[torch.Tensor]) -> torch.Tensor:
    """The mask of elements whose features are all finite and within `FEATURE_LIMIT`."""
    usable = None
    for value in features:
        ok = value.abs() <= feature_limit(value.dtype)
        usable = ok if usable is None else usable & ok
    return usable


def per_sample_losses(
    config: LossConfig,
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    side_inputs: Mapping[str, torch.Tensor] | None = None,
    *,
    ignore_index: int = -100,
    check_finite: bool = False,
    parameters: Mapping[str, torch.Tensor] | None = None,
    progress: Progress = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each sample's loss, unreduced, and the mask of samples that count.

    The kind (`learnedloss.kinds`) checks the call and computes the per-element features;
    elements whose features are NaN, infinite or beyond `FEATURE_LIMIT` take the standard
    loss's value (the network sees zeros there, so that no NaN reaches a gradient); the kind
    then sums per-element values into per-sample losses (a classification sample's classes).

    Args:
        config: the loss's architecture.
        network: its network (`learnedloss.networks.build_network` of ``config``).
        input: the call's input (prediction), as `learnedloss.LearnedLoss` takes it.
        target: the call's target.
        side_inputs: the call's side inputs by name (e.g. ``x`` for a shaped loss).
        ignore_index: classification: the class index whose samples count for nothing.
        check_finite: raise on non-finite arguments (see `learnedloss.LearnedLoss`).
        parameters: tensors to run ``network`` with instead of its own, by name (through
            ``torch.func.functional_call``).
        progress: training progress, read by a loss whose inputs name ``"progress"``
            (`progress_feature`; ignored otherwise).

    Returns:
        ``(values, valid)``: the per-sample losses (``reduction='none'``'s shape) in the
        network's computation dtype, and the mask of samples that count (None: all).
    """
    kind = loss_kind(config.kind)
    named, valid = kind.element_features(
        input,
        target,
        dict(side_inputs or {}),
        config=config,
        param_dtype=network.param_dtype,
        ignore_index=ignore_index,
        check_finite=check_finite,
    )
    if config.reads_progress:
        named[PROGRESS_INPUT] = progress_feature(progress, next(iter(named.values())))
    skip = multiplier = None
    if config.residual:  # the standard loss's own term, which the network corrects
        skip, multiplier = kind.standard_term(named)
    usable = usable_elements(named.values())
    features = torch.stack([named[name] for name in config.inputs], dim=-1)
    features = torch.where(usable.unsqueeze(-1), features, 0.0)
    if skip is not None:
        skip = torch.where(usable, skip, 0.0)
    if multiplier is not None:
        multiplier = torch.where(usable, multiplier, 0.0)
    if parameters is None:
        output = network(features, skip, multiplier)
    else:
        output = torch.func.functional_call(network, dict(parameters), (features, skip, multiplier))
    per_element = torch.where(usable, output, kind.standard_loss(named))
    return kind.per_sample(per_element), valid


def progress_feature(progress: Progress, like: torch.Tensor) -> torch.Tensor:
    """Training progress as a feature: ``progress`` (None: `UNSCHEDULED_PROGRESS`) in
    ``like``'s dtype and device, the same for every element.

    Shape:
        - Output: ``like``'s shape (an expanded view).
    """
    value = UNSCHEDULED_PROGRESS if progress is None else progress
    return torch.as_tensor(value).to(like.device, like.dtype).expand(like.shape)


def general_loss(
    config: LossConfig,
    network: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    side_inputs: Mapping[str, torch.Tensor] | None = None,
    *,
    reduction: str = "mean",
    ignore_index: int = -100,
    check_finite: bool = False,
    parameters: Mapping[str, torch.Tensor] | None = None,
    progress: Progress = None,
) -> torch.Tensor:
    """`per_sample_losses`, reduced (`reduce`), in the input's dtype."""
    values, valid = per_sample_losses(
        config,
        network,
        input,
        target,
        side_inputs,
        ignore_index=ignore_index,
        check_finite=check_finite,
        parameters=parameters,
        progress=progress,
    )
    return reduce(values, reduction, valid).to(input.dtype)
