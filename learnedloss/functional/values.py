"""`learned_loss`: a call's loss by the fastest path that computes it exactly; `unreduced`: any
loss module's per-sample values."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss.functional.classification import fused_classification
from learnedloss.functional.fast import grid_loss
from learnedloss.functional.general import Progress, general_loss
from learnedloss.functional.monotone import monotone_loss

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


def learned_loss(
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
    frozen: bool = False,
    progress: Progress = None,
) -> torch.Tensor:
    """The loss of a call, reduced, in the input's dtype: what `learnedloss.LearnedLoss`
    returns (see it for the arguments' shapes and the kinds' semantics).

    Args:
        config: the loss's architecture.
        network: its network (`learnedloss.networks.build_network` of ``config``).
        input: the call's input (prediction).
        target: the call's target.
        side_inputs: the call's side inputs by name.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (`reduce`).
        ignore_index: classification: the class index whose samples count for nothing.
        check_finite: raise on non-finite arguments (see `learnedloss.LearnedLoss`).
        parameters: tensors to run ``network`` with instead of its own, by name (as for
            `learnedloss.functional.per_sample_losses`).
        frozen: the network's weights are constants (a frozen loss): a grid network then
            computes plain eager CPU calls by its fast plan (`learnedloss.networks.fast`),
            and a monotone regression network by its tables
            (`learnedloss.functional.monotone`), which changes nothing but the speed.
        progress: training progress from 0 to 1, for a loss that reads ``"progress"``
            (None: `learnedloss.config.UNSCHEDULED_PROGRESS`).

    Examples:
        >>> import torch
        >>> from learnedloss import LossConfig
        >>> from learnedloss.functional import learned_loss
        >>> from learnedloss.networks import build_network
        >>> config = LossConfig(hidden_sizes=(4,), residual=True, output_activation="square")
        >>> network = build_network(config)
        >>> learned_loss(config, network, torch.ones(3), torch.zeros(3)).item()  # starts as MSE
        1.0
    """
    if frozen and parameters is None and not side_inputs:
        if config.parameterization == "monotone":
            value = monotone_loss(config, network, input, target, reduction, check_finite, progress)
        else:
            value = fused_classification(
                config, network, input, target, reduction, ignore_index, check_finite, progress
            )
            if value is None:
                value = grid_loss(
                    config, network, input, target, reduction, ignore_index, check_finite
                )
        if value is not None:
            return value
    return general_loss(
        config,
        network,
        input,
        target,
        side_inputs,
        reduction=reduction,
        ignore_index=ignore_index,
        check_finite=check_finite,
        parameters=parameters,
        progress=progress,
    )


def unreduced(loss: nn.Module, input: torch.Tensor, target: torch.Tensor, **side_inputs):
    """Each sample's loss by a loss module, whatever its ``reduction``: its ``per_element``
    method where it has one (`learnedloss.LearnedLoss.per_element`), else (a ``torch.nn``
    loss) a call of a shallow copy set to ``reduction='none'``; ``loss`` itself is left as it is.

    Examples:
        >>> import torch
        >>> from learnedloss.functional import unreduced
        >>> unreduced(torch.nn.MSELoss(), torch.zeros(3), torch.ones(3))
        tensor([1., 1., 1.])
    """
    per_element = getattr(loss, "per_element", None)
    if per_element is not None:
        return per_element(input, target, **side_inputs)
    unreducing = copy.copy(loss)
    unreducing.reduction = "none"
    return unreducing(input, target, **side_inputs)
