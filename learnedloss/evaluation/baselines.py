"""Standard losses that learned losses are measured against.

Every baseline is a plain function ``(prediction, target) -> scalar`` (or a torch loss
module), so `learnedloss.evaluate` trains models with it exactly as with a learned loss.
Two kinds need more than a learning rate to be at their best, and `evaluate` gives it:

- a `Tuned` baseline is a grid of variants (e.g. Huber over δ); `evaluate` tunes the variant
  jointly with the learning rate on the tuning tasks and reports the chosen one;
- a loss module marked ``trained_with_model = True`` (`AdaptiveRobustLoss`) has parameters
  that are trained together with each model, by the same optimizer at the same lr.

`robust_regression_baselines` and `noisy_label_baselines` are the tuned sets to claim wins
against; `robust_regression_defaults` and `noisy_label_defaults` are the same losses at their
published defaults, as users run them untuned.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossLike = nn.Module | LossFunction


def scaled_mse(scale: float) -> LossFunction:
    """``scale * MSE``: a control whose gap to MSE measures the noise of lr tuning."""
    return lambda prediction, target: scale * F.mse_loss(prediction, target)


def huber(delta: float, scale: float = 1.0) -> LossFunction:
    """``scale`` times the Huber loss with threshold ``delta`` (Huber, 1964); a rescaled
    copy is the robust baselines' control, as c·MSE is MSE's."""
    return lambda prediction, target: scale * F.huber_loss(prediction, target, delta=delta)


def cauchy(c: float) -> LossFunction:
    """The Cauchy (Lorentzian) loss with scale ``c``: the mean of
    :math:`\\tfrac{c^2}{2} \\log(1 + (r/c)^2)` over residuals :math:`r`.

    It is :math:`\\tfrac12 r^2` near zero, like MSE and Huber, and grows only like
    :math:`c^2 \\log |r|` beyond ``c``: a redescending M-estimator (its influence
    :math:`r / (1 + (r/c)^2)` falls back to zero), the negative log-likelihood of a Cauchy
    distribution of scale c. Holland and Welsch ("Robust regression using iteratively
    reweighted least-squares", Communications in Statistics, 1977) list it among the
    M-estimators; Black and Anandan ("The robust estimation of multiple motions", CVIU 1996)
    call it the Lorentzian; it is c²/2 times Barron's general loss at α = 0 and scale c/√2.
    ``c`` is in the units of the target.

    Examples:
        >>> import torch
        >>> float(cauchy(1.0)(torch.tensor([1.0]), torch.tensor([0.0])))  # log(2) / 2
        0.3465735912322998
    """
    if c <= 0:
        raise ValueError(f"c must be positive (in the target's units), got {c}")

    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (0.5 * c * c * torch.log1p(((prediction - target) / c) ** 2)).mean()

    return loss


def standard_losses(robust: bool = False) -> dict[str, LossLike]:
    """The baselines: MSE, the c·MSE controls and, with ``robust``, L1, Huber δ ∈
    {0.25, 0.5, 1, 2} and the controls of Huber δ = 0.5 scaled by 0.7 and 1.5 (the same
    loss at other learning rates: how far lr tuning alone moves a tuned robust loss)."""
    losses: dict[str, LossLike] = {
        "MSE": nn.MSELoss(),
        "1.1 x MSE": scaled_mse(1.1),
        "1.5 x MSE": scaled_mse(1.5),
    }
    if robust:
        losses["L1"] = nn.L1Loss()
        for delta in (0.25, 0.5, 1.0, 2.0):
            losses[f"Huber d={delta:g}"] = huber(delta)
        for scale in (0.7, 1.5):
            losses[f"{scale:g} x Huber d=0.5"] = huber(0.5, scale)
    return losses


def scaled_cross_entropy(scale: float) -> LossFunction:
    """``scale * F.cross_entropy``: the classification control (cross-entropy at lr·scale)."""
    return lambda logits, target: scale * F.cross_entropy(logits, target)


def generalized_cross_entropy(q: float = 0.7) -> LossFunction:
    """The generalized cross-entropy of Zhang & Sabuncu (NeurIPS 2018), a noise-robust loss.

    For a sample of class :math:`y` with predicted probabilities :math:`p`,
    :math:`L_q = (1 - p_y^q) / q`: cross-entropy as :math:`q \\to 0`, the mean absolute
    error (up to a factor) at :math:`q = 1`. The paper uses :math:`q = 0.7`. Takes logits
    ``(N, C)`` and class indices ``(N,)``; returns the mean over samples.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return ((1.0 - torch.exp(q * log_p)) / q).mean()

    return loss


def classification_losses(label_smoothing: float = 0.1, q: float = 0.7) -> dict[str, LossLike]:
    """The classification baselines: cross-entropy, the 1.5·CE control, label-smoothed
    cross-entropy and the generalized cross-entropy (noise-robust)."""
    return {
        "CE": nn.CrossEntropyLoss(),
        "1.5 x CE": scaled_cross_entropy(1.5),
        f"CE, smoothing {label_smoothing:g}": nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        f"GCE q={q:g}": generalized_cross_entropy(q),
    }


def label_smoothing(epsilon: float) -> nn.Module:
    """Cross-entropy against targets smoothed by ``epsilon`` (Szegedy et al., CVPR 2016):
    ``nn.CrossEntropyLoss(label_smoothing=epsilon)``, the one-hot target mixed with the
    uniform distribution, ``(1 - ε)·onehot + ε / C``."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
    return nn.CrossEntropyLoss(label_smoothing=epsilon)


def _target_probability(logits: torch.Tensor, target: torch.Tensor):
    """``(log p, p_y)``: the log-softmax over classes, and the target class's probability."""
    log_p = F.log_softmax(logits, dim=-1)
    p_y = log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1).exp()
    return log_p, p_y


def symmetric_cross_entropy(
    alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0
) -> LossFunction:
    """The symmetric cross-entropy of Wang et al. (ICCV 2019), for noisy labels.

    ``α·CE + β·RCE``, where the reverse cross-entropy swaps the roles of the prediction
    :math:`p` and the one-hot label :math:`q`, :math:`RCE = -\\sum_k p_k \\log q_k`, with
    :math:`\\log 0` clipped to ``log_zero`` :math:`= A`; so :math:`RCE = -A (1 - p_y)`, a
    bounded, MAE-like term. The paper uses :math:`A = -4` and α = 0.1, β = 1 (CIFAR-10).
    Takes logits ``(N, C)`` and class indices ``(N,)``; returns the mean over samples.

    Examples:
        >>> import torch
        >>> loss = symmetric_cross_entropy(alpha=0.1, beta=1.0)
        >>> value = loss(torch.randn(8, 3), torch.randint(0, 3, (8,)))
    """
    if log_zero >= 0:
        raise ValueError(f"log_zero must be negative (log of a clipped 0), got {log_zero}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p, p_y = _target_probability(logits, target)
        ce = -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        rce = -log_zero * (1.0 - p_y)
        return (alpha * ce + beta * rce).mean()

    return loss


def nce_rce(alpha: float = 1.0, beta: float = 1.0, log_zero: float = -4.0) -> LossFunction:
    """Normalized cross-entropy plus reverse cross-entropy (Ma et al., "Normalized Loss
    Functions for Deep Learning with Noisy Labels", ICML 2020), an "active passive" loss.

    :math:`NCE = \\log p_y / \\sum_k \\log p_k` (in [0, 1]; 0 for a perfect prediction),
    :math:`RCE = -A (1 - p_y)` as in `symmetric_cross_entropy`; the loss is
    ``α·NCE + β·RCE``, averaged over samples. Classes masked with ``-inf`` logits are left out
    of the normalizing sum (their :math:`\\log p_k` is ``-inf``). The paper uses α = β = 1
    on CIFAR-10 and α = 10, β = 0.1 on CIFAR-100.

    Examples:
        >>> import torch
        >>> loss = nce_rce()
        >>> value = loss(torch.randn(8, 3), torch.randint(0, 3, (8,)))
    """
    if log_zero >= 0:
        raise ValueError(f"log_zero must be negative (log of a clipped 0), got {log_zero}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p, p_y = _target_probability(logits, target)
        log_p_y = log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        total = torch.where(torch.isneginf(logits), torch.zeros_like(log_p), log_p).sum(-1)
        nce = log_p_y / total
        rce = -log_zero * (1.0 - p_y)
        return (alpha * nce + beta * rce).mean()

    return loss


# -- Barron's general and adaptive robust loss ------------------------------------------

_ALPHA_TABLE_MAX = 3.0
_ALPHA_TABLE_STEPS = 1536  # nodes every 3 / 1536 ≈ 0.002 in α


def general_robust_loss(x: torch.Tensor, alpha: torch.Tensor, scale: torch.Tensor | float = 1.0):
    """Barron's general robust loss ρ(x, α, c) (CVPR 2019, eq. 1), elementwise.

    :math:`\\rho = \\frac{|\\alpha - 2|}{\\alpha}\\left(\\left(\\frac{(x/c)^2}{|\\alpha - 2|} +
    1\\right)^{\\alpha/2} - 1\\right)`, with its limits at α = 0 (Cauchy/Lorentzian,
    :math:`\\log(\\tfrac12 (x/c)^2 + 1)`) and α = 2 (:math:`\\tfrac12 (x/c)^2`). α = 1 is
    the pseudo-Huber (Charbonnier) loss :math:`\\sqrt{(x/c)^2 + 1} - 1`, α = -2 Geman-McClure.
    Computed as ``|α-2|/α · expm1(α/2 · log1p((x/c)²/|α-2|))``, stable near both limits; the
    exact limits are taken within 1e-6 of 0 and 2, with gradients that stay finite.
    """
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    z2 = (x / scale) ** 2
    eps = 1e-6
    at_zero = alpha.abs() < eps
    at_two = (alpha - 2).abs() < eps
    safe_alpha = torch.where(at_zero | at_two, torch.full_like(alpha, 1.0), alpha)
    b = (safe_alpha - 2).abs()
    general = b / safe_alpha * torch.expm1(0.5 * safe_alpha * torch.log1p(z2 / b))
    return torch.where(at_zero, torch.log1p(0.5 * z2), torch.where(at_two, 0.5 * z2, general))


@functools.cache
def _log_partition_table() -> tuple[torch.Tensor, torch.Tensor]:
    """log Z(α) and its slope on ``_ALPHA_TABLE_STEPS + 1`` nodes of [0, 3], float64.

    Z(α) = ∫ exp(-ρ(x, α, 1)) dx by the trapezoidal rule after the substitution x = sinh t:
    the integrand is smooth and even in t and decays at least like e^{-t} (α = 0), so the
    rule converges geometrically; step 0.02 up to t = 45 matches the closed forms at α = 0
    (π√2), 1 (2e·K₁(1)) and 2 (√(2π)) to 1e-15. The slopes are second-order finite
    differences of the table, for cubic Hermite interpolation. Built outside any grad or
    inference mode, so that the cached tensors serve every later call.
    """
    with torch.inference_mode(False), torch.no_grad():
        return _quadrature_table()


def _quadrature_table() -> tuple[torch.Tensor, torch.Tensor]:
    alphas = torch.linspace(0.0, _ALPHA_TABLE_MAX, _ALPHA_TABLE_STEPS + 1, dtype=torch.float64)
    step = 0.02
    t = torch.arange(0.0, 45.0 + step / 2, step, dtype=torch.float64)
    weights = torch.cosh(t) * step
    weights[0] *= 0.5  # the half-line rule; the integrand is even in t
    x = torch.sinh(t)
    log_z = torch.cat(
        [
            torch.log(2 * (torch.exp(-general_robust_loss(x, chunk[:, None])) * weights).sum(-1))
            for chunk in alphas.split(256)
        ]
    )
    h = alphas[1] - alphas[0]
    slope = torch.empty_like(log_z)
    slope[1:-1] = (log_z[2:] - log_z[:-2]) / (2 * h)
    slope[0] = (-3 * log_z[0] + 4 * log_z[1] - log_z[2]) / (2 * h)
    slope[-1] = (3 * log_z[-1] - 4 * log_z[-2] + log_z[-3]) / (2 * h)
    return log_z, slope


def robust_log_partition(alpha: torch.Tensor) -> torch.Tensor:
    """log Z(α), the log-normalizer of Barron's distribution p(x | α, c) ∝ exp(-ρ(x, α, c)) / c
    at c = 1, for α in [0, 3] (elementwise; differentiable in α).

    Z(α) = ∫ exp(-ρ(x, α, 1)) dx has no closed form in general (Barron, CVPR 2019, sec. 2);
    it is computed once, by quadrature in float64 on a grid of α steps of 3/1536, and
    interpolated by cubic Hermite splines, so its gradient is continuous. It matches direct
    quadrature to 1e-6 except within 0.002 of α = 2, where log Z has a logarithmic cusp
    (its slope diverges slowly) and the error reaches 2e-4. α = 2 gives
    log √(2π) (Gaussian), α = 0 log(π√2) (Cauchy); below 0 the density does not normalize.
    α outside [0, 3] is clamped.

    Examples:
        >>> import math, torch
        >>> value = float(robust_log_partition(torch.tensor(2.0, dtype=torch.float64)))
        >>> abs(value - 0.5 * math.log(2 * math.pi)) < 1e-12
        True
    """
    table, slope = _log_partition_table()
    table = table.to(device=alpha.device, dtype=alpha.dtype)
    slope = slope.to(device=alpha.device, dtype=alpha.dtype)
    h = _ALPHA_TABLE_MAX / _ALPHA_TABLE_STEPS
    u = alpha.clamp(0.0, _ALPHA_TABLE_MAX) / h
    # a NaN α (a diverged run) reads knot 0 and gives NaN through t, never a bad index
    index = torch.nan_to_num(u.detach(), nan=0.0).floor().clamp(0, _ALPHA_TABLE_STEPS - 1).long()
    t = u - index.to(u.dtype)
    t2, t3 = t * t, t * t * t

    def at(values: torch.Tensor, i: torch.Tensor) -> torch.Tensor:  # vmap-safe values[i]
        return values.index_select(0, i.reshape(-1)).reshape(i.shape)

    return (
        (2 * t3 - 3 * t2 + 1) * at(table, index)
        + (t3 - 2 * t2 + t) * h * at(slope, index)
        + (-2 * t3 + 3 * t2) * at(table, index + 1)
        + (t3 - t2) * h * at(slope, index + 1)
    )


_REDUCTIONS = ("mean", "sum", "none")


class AdaptiveRobustLoss(nn.Module):
    """Barron's general and adaptive robust loss (CVPR 2019), with a trainable shape α and
    scale c learned jointly with the model.

    The loss of a residual :math:`x = \\text{input} - \\text{target}` is the negative
    log-likelihood of Barron's distribution,

    .. math::
        \\rho(x, \\alpha, c) + \\log c + \\log Z(\\alpha),

    with ρ the general robust loss (`general_robust_loss`: L2 at α = 2, pseudo-Huber at
    α = 1, Cauchy at α = 0) and Z(α) its normalizer (`robust_log_partition`). Minimizing it
    over α and c adapts the robustness to the data: without the log Z and log c terms the
    optimum would always be the most robust α and the largest c. α lies in ``alpha_range``
    through a sigmoid, c above ``scale_min`` through a softplus; the paper's defaults are
    α in (0.001, 1.999), starting at 1, and c ≥ 1e-5, starting at 1.

    Add its parameters to your optimizer (``loss_fn.parameters()``). `evaluate` does so per
    task, with the model's optimizer and lr, because the class says
    ``trained_with_model = True`` (see `learnedloss.evaluation.JointInnerLoop`).

    Args:
        alpha_init: the starting α.
        scale_init: the starting c.
        alpha_range: the open interval α stays in; within [0, 3].
        scale_min: the floor of c.
        reduction: ``'mean'`` | ``'sum'`` | ``'none'``, as in ``nn.MSELoss``.

    Shape:
        - Input: :math:`(*)`, any shape.
        - Target: :math:`(*)`, the same shape as the input.
        - Output: a scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Linear(3, 1)
        >>> loss_fn = AdaptiveRobustLoss()
        >>> optimizer = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-2)
        >>> x, y = torch.randn(16, 3), torch.randn(16, 1)
        >>> loss = loss_fn(model(x), y)
        >>> loss.backward()
        >>> optimizer.step()
        >>> 0.001 < loss_fn.alpha.item() < 1.999
        True
    """

    trained_with_model = True
    """`evaluate` trains this loss's parameters with each model."""

    def __init__(
        self,
        alpha_init: float = 1.0,
        scale_init: float = 1.0,
        alpha_range: tuple[float, float] = (0.001, 1.999),
        scale_min: float = 1e-5,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        low, high = map(float, alpha_range)
        if not 0.0 <= low < high <= _ALPHA_TABLE_MAX:
            raise ValueError(f"alpha_range must satisfy 0 <= low < high <= 3, got {alpha_range}")
        if not low < alpha_init < high:
            raise ValueError(
                f"alpha_init must lie inside alpha_range {alpha_range}, got {alpha_init}"
            )
        if scale_min <= 0 or scale_init <= scale_min:
            raise ValueError(
                f"need 0 < scale_min < scale_init, got scale_min={scale_min}, "
                f"scale_init={scale_init}"
            )
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.alpha_range = (low, high)
        self.scale_min = float(scale_min)
        self.reduction = reduction
        fraction = (float(alpha_init) - low) / (high - low)
        self.alpha_logit = nn.Parameter(torch.tensor(math.log(fraction / (1 - fraction))))
        excess = (
            float(scale_init) - self.scale_min
        )  # softplus^-1(excess) = excess + log(1 - exp(-excess))
        self.scale_raw = nn.Parameter(torch.tensor(excess + math.log(-math.expm1(-excess))))

    @property
    def alpha(self) -> torch.Tensor:
        """The shape α, in ``alpha_range``."""
        low, high = self.alpha_range
        return low + (high - low) * torch.sigmoid(self.alpha_logit)

    @property
    def scale(self) -> torch.Tensor:
        """The scale c, above ``scale_min``."""
        return self.scale_min + F.softplus(self.scale_raw)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(
                f"AdaptiveRobustLoss needs input and target of the same shape, got "
                f"{tuple(input.shape)} and {tuple(target.shape)}; reshape one (e.g. "
                "target.view_as(input))"
            )
        alpha = self.alpha.to(input.dtype)
        scale = self.scale.to(input.dtype)
        values = (
            general_robust_loss(input - target, alpha, scale)
            + torch.log(scale)
            + robust_log_partition(alpha)
        )
        if self.reduction == "mean":
            return values.mean()
        if self.reduction == "sum":
            return values.sum()
        return values

    def extra_repr(self) -> str:
        return (
            f"alpha_range={self.alpha_range}, scale_min={self.scale_min:g}, "
            f"reduction={self.reduction!r}"
        )


# -- baselines tuned over a grid of variants -----------------------------------------------


@dataclass(frozen=True)
class Tuned:
    """A baseline given as a grid of variants, e.g. Huber over its δ; `evaluate` tunes the
    variant jointly with the learning rate (every variant × lr on the tuning tasks) and
    scores the best pair as one row, recording the chosen variant in `LossScore.variant`.

    A tuned baseline is the fair opponent: a learned loss that beats Huber at δ = 1 may lose
    to Huber at the δ that suits the data. The control of a tuned baseline is the same grid
    rescaled (see `robust_regression_baselines`).

    Args:
        name: what is tuned, for reports (e.g. ``"Huber"``).
        variants: ``{label: loss}``, tried in this order (the first wins ties).

    Examples:
        >>> tuned = Tuned("Huber", {f"d={d:g}": huber(d) for d in (0.25, 0.5, 1.0)})
        >>> list(tuned.variants)
        ['d=0.25', 'd=0.5', 'd=1']
    """

    name: str
    variants: Mapping[str, LossLike]

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"Tuned({self.name!r}) needs at least one variant")
        nested = [label for label, loss in self.variants.items() if isinstance(loss, Tuned)]
        if nested:
            raise ValueError(f"Tuned({self.name!r}): variants {nested} are Tuned themselves")


def robust_regression_baselines(
    deltas: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
    control_scale: float = 1.5,
    cs: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
    units: float = 1.0,
) -> dict[str, LossLike | Tuned]:
    """The regression baselines to claim a robust win against: MSE, L1, Huber with δ tuned
    over ``deltas``, Cauchy (`cauchy`) with c tuned over ``cs``, Barron's
    `AdaptiveRobustLoss` (α and c trained with each model), and the control: tuned Huber
    scaled by ``control_scale``, which is the same loss at another lr (how far lr tuning
    alone moves the best fixed baseline).

    ``units`` is the targets' unit in multiples of their robust spread: the δ and c grids
    and Barron's starting scale are multiplied by it, as a user who tunes a robust loss on
    their own data searches in their targets' units (labels keep the grid's values in units
    of the spread: ``d=0.5`` is δ = 0.5·units). The untuned defaults are in
    `robust_regression_defaults`.

    Examples:
        >>> list(robust_regression_baselines())  # doctest: +NORMALIZE_WHITESPACE
        ['MSE', 'L1', 'Huber (tuned d)', 'Cauchy (tuned c)', 'Adaptive robust',
         '1.5 x Huber (tuned d)']
    """
    if units <= 0:
        raise ValueError(f"units must be positive, got {units}")
    return {
        "MSE": nn.MSELoss(),
        "L1": nn.L1Loss(),
        "Huber (tuned d)": Tuned("Huber", {f"d={d:g}": huber(d * units) for d in deltas}),
        "Cauchy (tuned c)": Tuned("Cauchy", {f"c={c:g}": cauchy(c * units) for c in cs}),
        "Adaptive robust": AdaptiveRobustLoss(scale_init=units),
        f"{control_scale:g} x Huber (tuned d)": Tuned(
            f"{control_scale:g} x Huber",
            {f"d={d:g}": huber(d * units, control_scale) for d in deltas},
        ),
    }


def robust_regression_defaults() -> dict[str, LossLike]:
    """The regression losses a user would reach for untuned, each at its published default
    (no parameter tuned; `evaluate` still tunes each one's lr):

    - ``"MSE"``: ``nn.MSELoss()``, least squares (Legendre, "Nouvelles méthodes pour la
      détermination des orbites des comètes", 1805);
    - ``"L1"``: ``nn.L1Loss()``, least absolute deviations (Boscovich, 1757; Laplace, 1789;
      the median's loss);
    - ``"Huber d=1"``: ``nn.HuberLoss()``, δ = 1 (Huber, "Robust Estimation of a Location
      Parameter", Annals of Mathematical Statistics, 1964);
    - ``"SmoothL1 b=1"``: ``nn.SmoothL1Loss()``, β = 1 (Girshick, "Fast R-CNN", ICCV 2015);
      at β = 1 it is the same function as Huber at δ = 1, listed because users reach for
      either name;
    - ``"Cauchy c=1"``: `cauchy` at c = 1 (Holland and Welsch, 1977; see `cauchy`);
    - ``"Adaptive robust (published)"``: `AdaptiveRobustLoss()` as Barron publishes it ("A
      General and Adaptive Robust Loss Function", CVPR 2019, and its reference code): α in
      (0.001, 1.999) starting at 1, c ≥ 1e-5 starting at 1, both trained with each model.

    δ, c and Barron's starting scale are in the targets' units, whatever those are: that is
    what a default costs on data in raw units.

    Examples:
        >>> list(robust_regression_defaults())  # doctest: +NORMALIZE_WHITESPACE
        ['MSE', 'L1', 'Huber d=1', 'SmoothL1 b=1', 'Cauchy c=1',
         'Adaptive robust (published)']
    """
    return {
        "MSE": nn.MSELoss(),
        "L1": nn.L1Loss(),
        "Huber d=1": nn.HuberLoss(),
        "SmoothL1 b=1": nn.SmoothL1Loss(),
        "Cauchy c=1": cauchy(1.0),
        "Adaptive robust (published)": AdaptiveRobustLoss(),
    }


def noisy_label_baselines(
    smoothing: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3),
    qs: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9),
    sce_alphas: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0),
    nce_alphas: tuple[float, ...] = (0.1, 1.0, 10.0),
) -> dict[str, LossLike | Tuned]:
    """The classification baselines to claim a noisy-label win against, each shape
    parameter tuned with the lr: cross-entropy, label smoothing over ε, GCE over q, SCE
    over α (β = 1, A = -4), NCE+RCE over α (β = 1), and the control 1.5 × CE.

    With β fixed, tuning α sets the ratio of the two terms, the only shape parameter: the
    overall scale is the lr's (the papers' CIFAR-100 settings, α = 6, β = 0.1 for SCE and
    α = 10, β = 0.1 for NCE+RCE, are ratios 60 and 100, reachable by widening the grids).

    Examples:
        >>> list(noisy_label_baselines())  # doctest: +NORMALIZE_WHITESPACE
        ['CE', 'Label smoothing (tuned eps)', 'GCE (tuned q)', 'SCE (tuned a)',
         'NCE+RCE (tuned a)', '1.5 x CE']
    """
    return {
        "CE": nn.CrossEntropyLoss(),
        "Label smoothing (tuned eps)": Tuned(
            "Label smoothing", {f"eps={e:g}": label_smoothing(e) for e in smoothing}
        ),
        "GCE (tuned q)": Tuned("GCE", {f"q={q:g}": generalized_cross_entropy(q) for q in qs}),
        "SCE (tuned a)": Tuned(
            "SCE", {f"a={a:g},b=1": symmetric_cross_entropy(a, 1.0) for a in sce_alphas}
        ),
        "NCE+RCE (tuned a)": Tuned(
            "NCE+RCE", {f"a={a:g},b=1": nce_rce(a, 1.0) for a in nce_alphas}
        ),
        "1.5 x CE": scaled_cross_entropy(1.5),
    }


def noisy_label_defaults() -> dict[str, LossLike]:
    """The classification losses at the settings their papers publish, untuned (`evaluate`
    still tunes each one's lr):

    - ``"CE"``: ``nn.CrossEntropyLoss()``;
    - ``"Label smoothing 0.1"``: ε = 0.1 (Szegedy et al., "Rethinking the Inception
      Architecture for Computer Vision", CVPR 2016);
    - ``"GCE q=0.7"``: `generalized_cross_entropy` at q = 0.7 (Zhang and Sabuncu,
      "Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy Labels",
      NeurIPS 2018);
    - ``"SCE a=0.1 b=1"``: `symmetric_cross_entropy` at α = 0.1, β = 1, A = -4 (Wang et
      al., "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV 2019, their
      CIFAR-10 setting);
    - ``"NCE+RCE a=1 b=1"``: `nce_rce` at α = β = 1 (Ma et al., "Normalized Loss Functions
      for Deep Learning with Noisy Labels", ICML 2020, their CIFAR-10 setting).

    Examples:
        >>> list(noisy_label_defaults())  # doctest: +NORMALIZE_WHITESPACE
        ['CE', 'Label smoothing 0.1', 'GCE q=0.7', 'SCE a=0.1 b=1', 'NCE+RCE a=1 b=1']
    """
    return {
        "CE": nn.CrossEntropyLoss(),
        "Label smoothing 0.1": label_smoothing(0.1),
        "GCE q=0.7": generalized_cross_entropy(0.7),
        "SCE a=0.1 b=1": symmetric_cross_entropy(alpha=0.1, beta=1.0),
        "NCE+RCE a=1 b=1": nce_rce(alpha=1.0, beta=1.0),
    }


def reinforce(log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """The REINFORCE surrogate ``-(log_prob * advantage).mean()`` (Williams, 1992).

    Its gradient is the score-function estimate of the policy gradient. With advantages
    that are returns minus a baseline (what `PointMassGoals` passes as
    the target), this is REINFORCE with a baseline."""
    return -(log_prob * advantage).mean()


def reinforce_from_returns(
    log_prob: torch.Tensor, advantage: torch.Tensor, *, reward_to_go: torch.Tensor
) -> torch.Tensor:
    """REINFORCE without a baseline: ``-(log_prob * reward_to_go).mean()``; it ignores the
    advantage and reads the side input ``reward_to_go``."""
    return -(log_prob * reward_to_go).mean()


reinforce_from_returns.side_inputs = ("reward_to_go",)


def scaled_reinforce(scale: float) -> LossFunction:
    """``scale * reinforce``: the policy-gradient control (REINFORCE at lr·scale)."""
    return lambda log_prob, advantage: scale * reinforce(log_prob, advantage)


def policy_gradient_losses() -> dict[str, LossLike]:
    """The policy-gradient baselines: REINFORCE with a baseline, its 1.5× control, and
    REINFORCE without one."""
    return {
        "REINFORCE + baseline": reinforce,
        "1.5 x REINFORCE + baseline": scaled_reinforce(1.5),
        "REINFORCE": reinforce_from_returns,
    }
