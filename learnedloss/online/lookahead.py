r"""One online step as pure functions: the look-ahead update of the model and the
meta-gradient of the loss network through it (AdaLFL's one-step look-ahead).

With model parameters :math:`\theta_t`, loss parameters :math:`\phi_t`, optimizer state
:math:`s_t`, a training batch :math:`(x, y)` and a validation batch :math:`(x_v, y_v)`:

.. math::
    \theta_{t+1}(\phi) = \theta_t + U\big(\nabla_\theta\, \ell_\phi(f_{\theta_t}(x), y),
    s_t\big), \qquad
    g_\phi = \nabla_\phi\, \mathcal{L}\big(f_{\theta_{t+1}(\phi)}(x_v), y_v\big)

where :math:`U` is the torchopt optimizer's update (SGD, or Adam with its moments in
:math:`s_t`). The gradient through :math:`U` is second order: :math:`\phi` reaches the model
only through :math:`\nabla_\theta \ell_\phi`, so a first-order approximation would give it
no gradient.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torchopt
from torch import nn
from torch.func import functional_call
from torchopt import pytree

Params = dict[str, torch.Tensor]


def forward_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` for ``dtype``, or a no-op context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def gradients(value: torch.Tensor, params: Params, create_graph: bool) -> tuple[torch.Tensor, ...]:
    """``d value / d params`` with zeros for parameters ``value`` does not depend on."""
    grads = torch.autograd.grad(
        value, list(params.values()), create_graph=create_graph, allow_unused=True
    )
    return tuple(
        torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads, strict=True)
    )


def lookahead(
    model: nn.Module,
    params: Params,
    loss: nn.Module,
    optimizer: torchopt.base.GradientTransformation,
    state: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: torch.dtype | None = None,
) -> tuple[Params, Any, torch.Tensor]:
    """The model's parameters after one optimizer step on ``loss``, as a differentiable
    function of the loss's parameters.

    ``params`` are the model's trainable parameters (leaf tensors; the model's own
    ``nn.Parameter`` objects work). The forward pass runs ``model`` as it is, so buffers such
    as BatchNorm's running statistics update in place exactly as in a plain training step.

    Returns:
        ``(new_params, new_state, train_loss)``; ``new_params`` and ``new_state`` still carry
        the graph back to the loss's parameters.
    """
    device = next(iter(params.values())).device
    with forward_context(device, autocast):
        prediction = functional_call(model, params, (x,))
        train_loss = loss(prediction, y)
    grads = gradients(train_loss, params, create_graph=True)
    tree = dict(zip(params, grads, strict=True))
    updates, new_state = optimizer.update(tree, state, params=params, inplace=False)
    return torchopt.apply_updates(params, updates, inplace=False), new_state, train_loss


def validation_objective(
    model: nn.Module,
    new_params: Params,
    objective,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """The task objective of the looked-ahead model on a validation batch.

    The model runs in its current mode on copies of its buffers: in train mode BatchNorm
    normalizes the validation batch by its own statistics, and the validation batch never
    changes the running statistics that the model keeps."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    device = next(iter(new_params.values())).device
    with forward_context(device, autocast):
        prediction = functional_call(model, (new_params, buffers), (x_val,))
        value = objective(prediction, y_val)
    return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value


def meta_gradient(value: torch.Tensor, loss_params: Params) -> dict[str, torch.Tensor | None]:
    """``d value / d loss_params``; ``None`` for a parameter the value does not depend on
    (e.g. an output bias that shifts the loss without changing its gradient)."""
    grads = torch.autograd.grad(value, list(loss_params.values()), allow_unused=True)
    return dict(zip(loss_params, grads, strict=True))


def all_finite(value: torch.Tensor, grads: dict[str, torch.Tensor | None]) -> bool:
    """Whether the objective and every meta-gradient are finite (one host sync)."""
    checks = [torch.isfinite(value).all()]
    checks += [torch.isfinite(g).all() for g in grads.values() if g is not None]
    return bool(torch.stack(checks).all())


def detached(tree: Any) -> Any:
    """A copy of a pytree of tensors cut from the graph."""
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)
