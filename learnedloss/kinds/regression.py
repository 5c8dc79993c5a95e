"""The regression kind: a drop-in for ``nn.MSELoss``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from learnedloss.kinds.base import ElementwiseKind

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class Regression(ElementwiseKind):
    r"""Regression losses, drop-ins for ``nn.MSELoss``: one network call per element,

    .. math::
        l_n = \ell_\phi(x_n, y_n, \dots)

    over all elements :math:`n` of ``input`` and ``target``, reduced as ``nn.MSELoss`` does.

    Features: the prediction (``input``), the ``target`` and the ``residual`` input - target
    (computed only when a config reads it or is residual). Side inputs, such as the model's
    input ``x`` for loss shaping, are passed by keyword. The standard term is the residual:
    a residual loss with a ``square`` output starts as the squared error, with ``huber`` as
    the Huber loss. Residual forms: ``"add"``, ``"scale"`` and ``"weight"`` (weights over the
    elements of a call that average 1, docs/sine.md).

    Shape:
        - Input: :math:`(*)`, any number of dimensions, including 0-dim.
        - Target: :math:`(*)`, the same shape as the input. No broadcasting.
        - Side inputs (only those the config declares, by keyword): :math:`(*)`, the
          input's shape.
        - Output: scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.
    """

    name = "regression"
    features = ("input", "target", "residual")
    default_inputs = ("input", "target")
    residual_forms = ("add", "scale", "weight")
    replaces = "torch.nn.MSELoss()"
    call = "loss = loss_fn(prediction, target)  # same shapes, reduction='mean'"
    starts_as = "starts as output_activation(input - target)"
    input_feature = "input"
    target_feature = "target"

    def derived_features(self, named: dict[str, torch.Tensor], config: LossConfig) -> None:
        if config.residual or "residual" in config.inputs:  # only when used
            named["residual"] = named["input"] - named["target"]

    def standard_term(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if "residual" in features:
            return features["residual"], None
        return features["input"] - features["target"], None
