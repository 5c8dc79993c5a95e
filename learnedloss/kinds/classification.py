"""The classification kind: a drop-in for ``nn.CrossEntropyLoss``, with its conventions.

A classification loss scores every (sample, class) pair with its network and sums over
classes. `class_features` turns logits and targets into those per-class features and the mask
of samples ``ignore_index`` leaves in; it knows nothing about the network.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from learnedloss.errors import LossInputError
from learnedloss.kinds.base import LossKind, can_inspect_values, check_all_finite
from learnedloss.kinds.regression import contamination, robust_scale

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class Classification(LossKind):
    r"""Classification losses, drop-ins for ``nn.CrossEntropyLoss`` (docs/classification.md).

    With :math:`p_{n,c}` the softmax of the logits over the class dimension and
    :math:`y_{n,c}` the target probability (one-hot for class indices),

    .. math::
        l_n = \sum_{c=1}^{C} \ell_\phi(\log p_{n,c}, y_{n,c}),

    so the same network serves any number of classes. ``reduction`` and ``ignore_index``
    behave as in ``nn.CrossEntropyLoss``: ignored samples count 0 and ``'mean'`` divides by
    the number of samples not ignored. A ``-inf`` logit masks its class, as in
    ``nn.CrossEntropyLoss``: the class contributes 0 (its cross-entropy term) and the
    others' probabilities are as if it did not exist; a masked class that is the target
    gives an infinite loss, as in ``nn.CrossEntropyLoss``.

    Features (one element per class of each sample): the predicted ``log_prob`` (log-softmax
    of the logits), the ``prob`` (softmax) and the ``target`` probability of that class (1
    for the labelled class and 0 for the others when targets are class indices). No side
    inputs. The standard term is each class's cross-entropy term ``-target * log_prob`` (0
    where the target is 0): a residual loss with an ``identity`` output starts as
    ``F.cross_entropy``. Residual forms: ``"add"`` and ``"scale"``. Two more features are
    free of the class count: ``margin`` (`class_margin`) and ``log_relative_ce``
    (`log_relative_cross_entropy`: the sample's cross-entropy relative to the call's median,
    the same for every class of a sample; a loss reading it depends on the batch), and so is
    ``nontarget_nll`` (`nontarget_nll`: what the prediction says about the classes that are
    not the label, the information NCE-style losses read, without a sum over classes).

    Shape:
        - Input: logits :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ..., d_K)`.
        - Target: class indices (an integer dtype) of shape :math:`()`, :math:`(N)` or
          :math:`(N, d_1, ..., d_K)`, each in :math:`[0, C)` or ``ignore_index``; or class
          probabilities (floating point) of the input's shape.
        - Output: scalar; with ``reduction='none'``, the target's shape for class indices,
          the input's shape without the class dimension for probabilities.
    """

    name = "classification"
    features = (
        "log_prob",
        "prob",
        "target",
        "margin",
        "log_relative_ce",
        "scaled_nll",
        "contamination",
        "nontarget_nll",
    )
    default_inputs = ("log_prob", "target")
    takes_side_inputs = False
    uses_ignore_index = True
    replaces = "torch.nn.CrossEntropyLoss()"
    call = "loss = loss_fn(logits, labels)  # (N, C) logits, (N,) class indices"
    starts_as = "starts as cross-entropy"

    def element_features(
        self,
        input: Any,
        target: Any,
        side_inputs: dict[str, Any],
        *,
        config: LossConfig,
        param_dtype: torch.dtype,
        ignore_index: int,
        check_finite: bool,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        if side_inputs:
            raise LossInputError(
                f"a classification loss takes no side inputs, got {sorted(side_inputs)}; "
                "call it as loss(input, target)"
            )
        floating = isinstance(input, torch.Tensor) and input.is_floating_point()
        logits = input.to(torch.promote_types(param_dtype, input.dtype)) if floating else input
        # Class indices are checked by default on the CPU (as nn.CrossEntropyLoss raises
        # there); on an accelerator the check is a host sync, so only with check_finite.
        on_cpu = isinstance(target, torch.Tensor) and target.device.type == "cpu"
        named, valid = class_features(
            logits, target, ignore_index, check_finite or on_cpu, with_prob="prob" in config.inputs
        )
        if check_finite and can_inspect_values(input, target):
            check_all_finite(input, "input", allow_negative_infinity=True)  # -inf masks
            if target.is_floating_point():
                check_all_finite(target, "target")
        if "margin" in config.inputs:
            named["margin"] = class_margin(named["log_prob"])
        if "nontarget_nll" in config.inputs:
            named["nontarget_nll"] = nontarget_nll(named["log_prob"], named["target"])
        if "log_relative_ce" in config.inputs:
            named["log_relative_ce"] = log_relative_cross_entropy(
                named["log_prob"], named["target"], valid
            )
        wanted = [name for name in ("scaled_nll", "contamination") if name in config.inputs]
        if wanted:
            named.update(scaled_nll_features(named["log_prob"], named["target"], valid, wanted))
        return named, valid

    def batch_dependent(self, config: LossConfig) -> bool:
        """The ``"weight"`` form, and the features relative to the call's median
        cross-entropy, make a sample's value depend on the other samples of the call."""
        relative = {"log_relative_ce", "scaled_nll", "contamination"} & set(config.inputs)
        return super().batch_dependent(config) or bool(relative)

    def standard_term(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return cross_entropy_terms(features["log_prob"], features["target"]), None

    def per_sample(self, per_element: torch.Tensor) -> torch.Tensor:
        """Sum the per-class values of each sample (the class dimension is last)."""
        return per_element.sum(dim=-1)


def class_features(
    input: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    check_values: bool,
    *,
    with_prob: bool = True,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Per-class features of a batch, with the class dimension moved last.

    Args:
        input: logits ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``()``, ``(N)`` or ``(N, d1, ...)`` (an integer dtype), or
            class probabilities of the input's shape (floating point).
        ignore_index: an index target whose samples count for nothing.
        check_values: check in eager mode that class indices are in range (skipped where
            values cannot be read: inside ``torch.compile``, ``torch.func`` transforms and on
            the ``meta`` device).
        with_prob: also return ``prob`` (a loss that does not read it skips its ``exp``:
            ``prob`` is finite wherever ``log_prob`` is, so it changes no usable mask).

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
        if check_values and can_inspect_values(target):
            _check_class_indices(target, valid, n_classes, ignore_index)
        safe = torch.where(valid, target, torch.zeros_like(target)).long()
        probs = torch.zeros_like(log_prob).scatter(-1, safe.unsqueeze(-1), 1.0)
    named = {"log_prob": log_prob, "target": probs}
    if with_prob:
        named["prob"] = log_prob.exp()
    return named, valid


def _check_classification_pair(input: object, target: object) -> None:
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise LossInputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not input.is_floating_point():
        raise LossInputError(
            f"input must be floating-point logits (float16, bfloat16, float32 or float64), "
            f"got {input.dtype}"
        )
    if input.dim() == 0:
        raise LossInputError("input must be logits of shape (C), (N, C) or (N, C, d1, ...), got ()")
    if target.is_floating_point():
        if target.shape != input.shape:
            raise LossInputError(
                "class-probability targets must have the input's shape "
                f"{tuple(input.shape)}, got {tuple(target.shape)}"
            )
        return
    if target.dtype == torch.bool or target.is_complex():
        raise LossInputError(
            f"target must be class indices (an integer dtype) or class probabilities "
            f"(floating point), got {target.dtype}"
        )
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise LossInputError(
            f"class-index targets for input of shape {tuple(input.shape)} must have shape "
            f"{expected} (the input's shape without the class dimension), got "
            f"{tuple(target.shape)}"
        )


def _check_class_indices(
    target: torch.Tensor, valid: torch.Tensor, n_classes: int, ignore_index: int
) -> None:
    if target.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(target.reshape(-1))).tolist()
    if low >= 0 and high < n_classes:
        return  # every index in range: one pass, no mask to build
    bad = valid & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        values = sorted({int(v) for v in target[bad].flatten()[:5]})
        raise LossInputError(
            f"target holds class indices {values} outside [0, {n_classes - 1}] for input with "
            f"{n_classes} classes (ignore_index is {ignore_index})"
        )


def cross_entropy_terms(log_prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each class's cross-entropy term ``-target * log_prob``, exactly 0 where the target is
    0 (so a class masked by a ``-inf`` logit adds 0, not NaN).

    Shape:
        - log_prob, target: ``(..., C)``; output ``(..., C)``.
    """
    return torch.where(target != 0, -target * log_prob, torch.zeros_like(log_prob))


RELATIVE_CE_FLOOR = 1e-6
"""`log_relative_cross_entropy` floors a sample's cross-entropy at this fraction of the
call's median (a log of -13.8), so that a certain prediction stays finite."""


def log_relative_cross_entropy(
    log_prob: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
) -> torch.Tensor:
    r"""Each sample's cross-entropy relative to the call's typical one, on a log scale:
    :math:`\log(\ell_n / s)` with :math:`\ell_n = -\sum_c y_{n,c} \log p_{n,c}` and
    :math:`s` the median of :math:`\ell` over the call's samples not ignored (detached;
    `learnedloss.kinds.regression.robust_scale`: NaN and infinite values skipped, at most
    8,192 evenly spaced samples read).

    It says how hard a sample is compared with the rest of the batch, which is what
    small-loss selection for noisy labels uses (a wrongly labelled sample's cross-entropy
    stands out once the model has learned the clean ones), and it does not depend on the
    class count: :math:`\ell_n` is a function of the labelled class's probability alone
    for class-index targets. :math:`\ell_n` is floored at `RELATIVE_CE_FLOOR` times
    :math:`s`, so a certain prediction gives a finite feature.

    Shape:
        - log_prob, target: ``(..., C)``, the class dimension last; valid: ``(...)`` or
          None.
        - Output: ``(..., C)``, each sample's value repeated over its classes.
    """
    per_sample = cross_entropy_terms(log_prob, target).sum(dim=-1)
    counted = per_sample if valid is None else torch.where(valid, per_sample, torch.nan)
    scale = robust_scale(counted)
    relative = (per_sample / scale).clamp_min(RELATIVE_CE_FLOOR).log()
    return relative.unsqueeze(-1).expand_as(log_prob)


def scaled_nll_features(
    log_prob: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    wanted: list[str],
) -> dict[str, torch.Tensor]:
    r"""Features of a classification call relative to its typical cross-entropy.

    With :math:`s` the median over the call's counted samples of their cross-entropy
    :math:`\ell_n` (detached, `learnedloss.kinds.regression.robust_scale`):

    - ``scaled_nll``: each class's :math:`-\log p_{n,c} / s`; for the labelled class it is
      the sample's cross-entropy in units of the batch's typical one. A monotone loss
      (`learnedloss.networks.MonotoneNetwork`) reads it as its magnitude axis;
    - ``contamination``: the fraction of counted samples with :math:`\ell_n > 3 s`
      (`learnedloss.kinds.regression.contamination`), the same for every element: once a
      model has fitted the clean labels, wrongly labelled samples stand out this way.

    Both are free of the class count for class-index targets.

    Shape:
        - log_prob, target: ``(..., C)``, the class dimension last; valid: ``(...)`` or
          None.
        - Output: ``(..., C)`` tensors.
    """
    per_sample = cross_entropy_terms(log_prob, target).sum(dim=-1)
    counted = per_sample if valid is None else torch.where(valid, per_sample, torch.nan)
    scale = robust_scale(counted)
    features = {}
    if "scaled_nll" in wanted:
        features["scaled_nll"] = -log_prob / scale
    if "contamination" in wanted:
        features["contamination"] = contamination(counted, scale).expand_as(log_prob)
    return features


def nontarget_nll(log_prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Each sample's mean negative log-probability over the classes it is not labelled with,
    in units of :math:`\log C`:

    .. math::
        u_n = \frac{1}{\log C} \, \frac{\sum_c (1 - y_{n,c}) (-\log p_{n,c})}
        {\sum_c (1 - y_{n,c})},

    the same for every class of a sample. It is 1 for a uniform prediction whatever the class
    count C and grows as the model rules the other classes out. A sample whose predicted mass
    sits on a class other than its label (as for a wrongly labelled sample the model has
    learned from the others) has a smaller value than one predicted as confidently, but
    right. NCE-style losses read this information through a sum
    over all classes; a mean, in units that give a uniform prediction 1 at any C, keeps a
    loss free of that sum (its values at a given confidence still shift with C, as the
    non-target probabilities spread over more classes). For probability targets the classes
    are weighted by :math:`1 - y_{n,c}`. A class masked by a ``-inf`` logit counts as
    infinitely unlikely, so the feature is infinite and the sample takes cross-entropy's
    value (as every non-finite feature does). With one class the feature is 0.

    Shape:
        - log_prob, target: ``(*, C)``, the class dimension last.
        - Output: ``(*, C)``, each sample's value repeated over its classes.
    """
    n_classes = log_prob.shape[-1]
    if n_classes < 2:
        return torch.zeros_like(log_prob)
    weight = 1 - target
    total = (weight * -log_prob).sum(dim=-1) / weight.sum(dim=-1).clamp_min(1e-12)
    return (total / math.log(n_classes)).unsqueeze(-1).expand_as(log_prob)


def class_margin(log_prob: torch.Tensor) -> torch.Tensor:
    r"""Each class's margin over its strongest rival: :math:`\log p_c - \max_{c' \ne c}
    \log p_{c'}` (the logit difference), along the last dimension.

    Unlike ``log_prob`` it does not drift with the number of classes (a uniform prediction
    has margin 0 for any C), so a loss that reads it and ``prob`` of the target class only
    (`learnedloss.starts.count_free_cross_entropy_start_config`) is the same function for
    2 classes or 100. With a single class the margin is 0.

    Shape:
        - Input: ``(*, C)``.
        - Output: ``(*, C)``.
    """
    if log_prob.shape[-1] < 2:
        return torch.zeros_like(log_prob)
    top = log_prob.topk(2, dim=-1).values
    best, second = top[..., :1], top[..., 1:]
    rival = torch.where(log_prob >= best, second, best)
    return log_prob - rival
