"""The regression kind: a drop-in for ``nn.MSELoss``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from learnedloss.kinds.base import ElementwiseKind

if TYPE_CHECKING:
    from learnedloss.config import LossConfig

SCALE_FREE_FEATURES = (
    "scaled_residual",
    "standardized_target",
    "standardized_input",
    "contamination",
)
"""Regression features that do not change when targets and predictions are rescaled or
shifted together (``y -> a * y + b`` with ``a > 0``; a negative ``a`` mirrors them),
computed by `scale_free_features`."""


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
    elements of a call that average 1, docs/sine.md; with it an element's loss depends on
    the other elements of the call, so ``reduction='none'`` is not per element: see
    docs/swap.md). Where an element's features are not finite the loss is the squared error.

    Shape:
        - Input: :math:`(*)`, any number of dimensions, including 0-dim.
        - Target: :math:`(*)`, the same shape as the input. No broadcasting.
        - Side inputs (only those the config declares, by keyword): :math:`(*)`, the
          input's shape.
        - Output: scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.
    """

    name = "regression"
    features = ("input", "target", "residual", *SCALE_FREE_FEATURES)
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
        wanted = [name for name in config.inputs if name in SCALE_FREE_FEATURES]
        if wanted:
            named.update(scale_free_features(named["input"], named["target"], wanted))

    def standard_term(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if "residual" in features:
            return features["residual"], None
        return features["input"] - features["target"], None

    def standard_loss(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The squared error, ``nn.MSELoss``'s per-element value."""
        return self.standard_term(features)[0].square()

    def batch_dependent(self, config: LossConfig) -> bool:
        """The ``"weight"`` form, and the scale-free features (scaled by statistics of the
        call), make an element's value depend on the other elements of the call."""
        scale_free = any(name in SCALE_FREE_FEATURES for name in config.inputs)
        return super().batch_dependent(config) or scale_free


# -- features free of the targets' scale and offset (docs/robust-regression.md) -------------


ROBUST_SCALE_SAMPLE = 8192
"""`robust_scale` reads at most this many elements of a call, evenly spaced."""


def evenly_spaced_sample(values: torch.Tensor) -> torch.Tensor:
    """Every ``k``-th element of the flattened ``values``, ``k`` the smallest stride that
    keeps at most `ROBUST_SCALE_SAMPLE` of them (all of them for smaller calls)."""
    flat = values.flatten()
    stride = -(-flat.numel() // ROBUST_SCALE_SAMPLE)
    return flat[::stride] if stride > 1 else flat


def robust_scale(values: torch.Tensor, *, finite: bool = False) -> torch.Tensor:
    """A scale of ``values`` that outliers barely move, detached: the median of ``|values|``
    over the call's elements, floored at 1e-3 times their mean (so that a batch whose errors
    are mostly exactly 0 still has a scale) and at the dtype's smallest normal number. Both
    statistics skip NaN and infinite values (1 if there is no finite one), so that one
    non-finite element leaves the other elements' features finite.

    Calls of more than `ROBUST_SCALE_SAMPLE` elements take both statistics over that many
    evenly spaced elements of the flattened call (every ``k``-th), so that the scale costs
    far less than the loss (a full median of 256,000 elements takes longer than forty
    elementwise passes on a CPU); the sample's median is within a few percent of the full
    one for any data not ordered in memory by size.

    It is equivariant: ``robust_scale(a * values) == |a| * robust_scale(values)``. It runs
    under ``torch.func.vmap`` and ``torch.compile``.

    ``finite=True`` says the caller has established that every value is finite (the fast
    grid path has bounded them), so the NaN masking, which would change nothing, is skipped.
    """
    magnitude = evenly_spaced_sample(values.detach()).abs()
    if not finite:
        magnitude = _finite_or_nan(magnitude)
    if magnitude.numel() == 0:
        return magnitude.new_ones(())
    floor = torch.finfo(magnitude.dtype).tiny
    scale = torch.maximum(magnitude.nanmedian(), 1e-3 * magnitude.nanmean())
    return torch.nan_to_num(scale, nan=1.0).clamp_min(floor)  # NaN: no finite value


CONTAMINATION_THRESHOLD = 3.0
"""`contamination` counts the elements beyond this many robust scales."""


def contamination(magnitudes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r"""The fraction of a call's elements beyond `CONTAMINATION_THRESHOLD` robust scales,
    detached: :math:`\frac{1}{N} \#\{n : |e_n| > 3 s\}` over the finite :math:`e_n` (NaN
    ones skipped; 0 when none is finite).

    It estimates how much of the batch is far off: about 4% of errors drawn from a normal
    distribution lie beyond 3 median absolute errors, and a batch with a fraction ``f`` of
    gross outliers reads about ``f + 0.04 (1 - f)``. A loss that reads it can be shaped
    like the squared error on clean batches and robust on contaminated ones. Like the
    robust scale, it reads at most `ROBUST_SCALE_SAMPLE` evenly spaced elements, and it is
    invariant to the errors' scale.

    Shape:
        - magnitudes: :math:`(*)`; scale: a scalar.
        - Output: a scalar tensor.
    """
    sample = _finite_or_nan(evenly_spaced_sample(magnitudes.detach()).abs())
    beyond = (sample > CONTAMINATION_THRESHOLD * scale).to(sample.dtype)
    counted = sample.isfinite().to(sample.dtype)
    return beyond.sum() / counted.sum().clamp_min(1.0)


def _finite_or_nan(values: torch.Tensor) -> torch.Tensor:
    """``values`` with every non-finite entry NaN, for the NaN-skipping statistics: a NaN or
    infinite element must not make every other element's feature (and gradient) NaN."""
    return torch.where(values.isfinite(), values, torch.nan)


def scale_free_features(
    input: torch.Tensor, target: torch.Tensor, wanted=SCALE_FREE_FEATURES
) -> dict[str, torch.Tensor]:
    r"""Features of a regression batch that carry over between data sets of any units.

    With :math:`r = \hat y - y`, :math:`s = \mathrm{median}_n |r_n|` (`robust_scale`),
    :math:`m = \mathrm{median}_n y_n` and :math:`t = \mathrm{median}_n |y_n - m|` (floored
    at :math:`10^{-3} s`), all over every element of the call and detached:

    - ``scaled_residual``: :math:`r / s`, the error in units of the batch's typical error;
    - ``standardized_target``: :math:`(y - m) / t`;
    - ``standardized_input``: :math:`(\hat y - m) / t`;
    - ``contamination``: the fraction of the call's elements with :math:`|r| > 3 s`
      (`contamination`), the same for every element.

    A loss that reads only these and whose value is the squared error times a function of
    them (`learnedloss.starts.scale_free_mse_start_config`) changes by exactly :math:`a^2`
    when targets and predictions become :math:`a y + b`, :math:`a > 0`. The price: an
    element's value depends on the other elements of the call through the detached scalars
    :math:`s`, :math:`m` and :math:`t` (as a batch-norm layer's output does), so with
    ``reduction='none'`` the values are per element but not independent of the batch.
    Medians of calls over `ROBUST_SCALE_SAMPLE` elements are taken over an evenly spaced
    sample (`robust_scale`). Only the features named in ``wanted`` are computed and returned.
    """
    residual = input - target
    scale = robust_scale(residual)
    features = {"scaled_residual": residual / scale} if "scaled_residual" in wanted else {}
    if "contamination" in wanted:
        features["contamination"] = contamination(residual, scale).expand_as(residual)
    if "standardized_target" in wanted or "standardized_input" in wanted:
        sample = _finite_or_nan(evenly_spaced_sample(target.detach()))
        center = (
            torch.nan_to_num(sample.nanmedian(), nan=0.0)
            if target.numel()
            else target.new_zeros(())
        )
        # floored at 1e-3 of the residuals' scale, so constant targets give finite features
        spread = torch.maximum(robust_scale(target - center), 1e-3 * scale)
        features["standardized_target"] = (target - center) / spread
        features["standardized_input"] = (input - center) / spread
    return {name: features[name] for name in wanted}
