"""The Taylor parameterization: a low-order multivariate polynomial, after TaylorGLO."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from learnedloss.kinds import loss_kind
from learnedloss.networks.base import LossNetwork, _FirstLayerShim

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


def taylor_exponents(
    n_inputs: int, order: int, prediction_free: tuple[int, ...] = ()
) -> list[tuple[int, ...]]:
    """The multi-indices of a TaylorGLO polynomial: all ``alpha`` with
    ``1 <= |alpha| <= order`` that involve at least one input not in ``prediction_free``.

    Terms of the target (and side inputs) alone, and the constant, have zero gradient with
    respect to the prediction, so they cannot change training and are left out.

    Examples:
        >>> len(taylor_exponents(2, 3, prediction_free=(1,)))   # TaylorGLO's 3rd order in (x, y)
        6
    """
    out = []
    for degree in range(1, order + 1):
        for alpha in itertools.product(range(degree + 1), repeat=n_inputs):
            if sum(alpha) != degree:
                continue
            if all(alpha[j] == 0 for j in range(n_inputs) if j not in prediction_free):
                continue
            out.append(alpha)
    return out


class TaylorNetwork(LossNetwork):
    r"""A multivariate Taylor polynomial of the features around a learned center (TaylorGLO).

    After Gonzalez and Miikkulainen, "Optimizing Loss Functions Through Multivariate Taylor
    Polynomial Parameterization" (GECCO 2021, arXiv 2002.00059):

    .. math::
        h(x) = \sum_{\alpha} \frac{\theta_\alpha}{\alpha!} \prod_j (x_j - c_j)^{\alpha_j}

    over the multi-indices :math:`1 \le |\alpha| \le` ``taylor_order`` that involve at least
    one feature that depends on the prediction. The center :math:`c` and the coefficients
    :math:`\theta` are the parameters. The terms of the target alone (and the constant) are
    left out, as in the paper, because their gradient with respect to the prediction is
    zero: they cannot change training. For a third-order polynomial in (prediction, target)
    that leaves 6 coefficients and the 2-D center, the paper's 8 parameters. The paper
    evolved them with CMA-ES; here they are meta-trained like any loss network, by
    `learnedloss.MetaTrainer`'s backpropagation through the inner loop or by its evolution
    strategies (``meta_gradient="es"``).

    A residual config starts with all coefficients at zero (exactly the standard loss); a
    non-residual one draws them from U(-1/M, 1/M) for M coefficients (the global RNG), with
    the center at 0. A polynomial grows without bound outside the data it was trained on:
    check it over the range you use (`learnedloss.inspection.check`).

    Shape:
        - Input: ``(*, in_features)``.
        - Output: ``(*)``.
    """

    layers = _FirstLayerShim()

    def __init__(self, config: LossConfig) -> None:
        super().__init__(config)
        kind = loss_kind(config.kind)
        target = getattr(kind, "target_feature", "target")
        free = tuple(
            j
            for j, name in enumerate(config.inputs)
            if name == target or name in config.side_inputs
        )
        self.order = config.taylor_order
        exponents = taylor_exponents(config.in_features, self.order, free)
        if not exponents:
            raise ValueError(
                f"a Taylor loss needs an input that depends on the prediction, got "
                f"{list(config.inputs)}"
            )
        self.exponents = exponents
        self.register_buffer(
            "_exponents", torch.tensor(exponents, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "_factorials",
            torch.tensor([math.prod(math.factorial(a) for a in alpha) for alpha in exponents]),
            persistent=False,
        )
        self.center = nn.Parameter(torch.zeros(config.in_features))
        bound = 1.0 / len(exponents)
        coefficients = torch.zeros(len(exponents))
        if not config.residual:
            coefficients.uniform_(-bound, bound)
        self.coefficients = nn.Parameter(coefficients)

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}, order={self.order}, terms={len(self.exponents)}"

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        dtype = features.dtype
        d = features - self.center.to(dtype)  # (*, n)
        ones = torch.ones_like(d).unsqueeze(-1)
        powers = torch.cat([ones, d.unsqueeze(-1).expand(*d.shape, self.order)], dim=-1).cumprod(
            dim=-1
        )  # (*, n, order + 1): d^0 ... d^order
        n = d.shape[-1]
        columns = torch.arange(n, device=d.device)
        monomials = powers[..., columns, self._exponents].prod(dim=-1)  # (*, M)
        weights = self.coefficients.to(dtype) / self._factorials.to(dtype)
        return (monomials * weights).sum(dim=-1)
