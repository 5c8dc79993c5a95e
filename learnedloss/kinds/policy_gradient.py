"""The policy-gradient kind: a drop-in for the REINFORCE surrogate."""

from __future__ import annotations

import torch

from learnedloss.kinds.base import ElementwiseKind


class PolicyGradient(ElementwiseKind):
    r"""Policy-gradient losses, drop-ins for the REINFORCE surrogate
    ``-(log_prob * advantage).mean()`` (docs/policy-gradient.md).

    ``input`` is the log-probability of each action taken and ``target`` its advantage (the
    return that followed it, or that minus a baseline), one element per time step of each
    episode, and

    .. math::
        l_n = \ell_\phi(\log \pi(a_n | s_n), A_n, \dots),

    reduced as for regression. Only ``input`` should carry the policy's gradient: pass the
    advantages (and side inputs such as a time step) detached.

    Features: ``log_prob`` (the input) and ``advantage`` (the target); side inputs by
    keyword. The standard term is ``-log_prob * advantage``: a residual loss with an
    ``identity`` output starts as the REINFORCE surrogate. Residual forms: ``"add"``,
    ``"scale"`` and ``"baseline"``, which subtracts the network's output from the advantage,
    ``-log_prob * (advantage - h)``: a learned baseline per step.

    Shape:
        - Input: log-probabilities :math:`(*)`, any number of dimensions, including 0-dim.
        - Target: advantages :math:`(*)`, the same shape as the input. No broadcasting.
        - Side inputs (only those the config declares, by keyword): :math:`(*)`, the
          input's shape.
        - Output: scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.
    """

    name = "policy_gradient"
    features = ("log_prob", "advantage")
    default_inputs = ("log_prob", "advantage")
    residual_forms = ("add", "scale", "baseline")
    replaces = "-(log_prob * advantage).mean()"
    call = "loss = loss_fn(log_prob, advantage)  # per step, same shapes"
    arguments = "log_prob, advantage"
    starts_as = "starts as output_activation(-log_prob * advantage)"
    input_feature = "log_prob"
    target_feature = "advantage"

    def standard_term(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return -features["log_prob"] * features["advantage"], features["log_prob"]
