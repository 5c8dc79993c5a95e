"""Models as stacked computations: the forward pass of ``T`` models at once, with bmm.

`compile_model` reads a template module and returns a `StackedModel`, whose ``forward``
takes every task's parameters stacked ``(T, ...)`` (the layout of
`learnedloss.meta.inner.initial_params`, names and all) and inputs ``(T, N, *in_shape)``:

- an ``nn.Sequential`` of ``nn.Linear`` layers and parameter-free elementwise activations
  (the MLPs of `learnedloss.tasks.models.mlp`), any depth and width;
- a module whose children are ``nn.Conv2d`` layers followed by ``nn.Linear`` layers, run as
  ReLU after every layer but the last on a square image reshaped from the flat input (the
  digits families' small CNN). A convolution runs as one grouped convolution, a group per
  task.

The plan is checked against the template on a probe input: a module whose forward does
something else is refused. Anything else raises `EngineUnsupported` with a one-line reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from learnedloss.meta.engine.errors import EngineUnsupported

ELEMENTWISE_ACTIVATIONS = (
    nn.ReLU,
    nn.Tanh,
    nn.ELU,
    nn.Sigmoid,
    nn.GELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.SiLU,
    nn.CELU,
    nn.SELU,
    nn.Identity,
)
"""Parameter-free activations applied element by element, which run on stacked tensors as
they are."""

DERIVATIVE_ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Identity)
"""The activations whose derivative `StackedModel.backward` writes from their output."""

Params = dict[str, torch.Tensor]

PROBE_ROWS = 3
PROBE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class StackedLayer:
    """One layer of a stacked model: ``"linear"`` or ``"conv"``, its parameters' names, the
    activation after it (or ``None``), and a convolution's geometry."""

    kind: str
    weight: str
    bias: str | None
    activation: nn.Module | None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class StackedModel:
    """The forward pass of ``T`` models of one architecture at once.

    Attributes:
        layers: the layers in order.
        image: ``(channels, height, width)`` a flat input is reshaped to before the first
            convolution, or ``None`` for an MLP.
        shapes: each parameter's shape for one task, by name.
    """

    layers: tuple[StackedLayer, ...]
    image: tuple[int, int, int] | None
    shapes: dict[str, torch.Size]

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Every task's output: ``params`` stacked ``(T, ...)``, ``x`` ``(T, N, *in_shape)``;
        returns ``(T, N, outputs)``."""
        tasks, rows = x.shape[:2]
        h = _to_task_channels(x, self.image) if self.image else x
        for layer in self.layers:
            bias = params[layer.bias] if layer.bias else None
            if layer.kind == "conv":
                h = _conv(h, params[layer.weight], bias, layer)
            else:
                if h.dim() == 4:  # (N, T * C, H, W) -> (T, N, C * H * W)
                    h = h.reshape(rows, tasks, -1).transpose(0, 1)
                h = _linear(h, params[layer.weight], bias)
            if layer.activation is not None:
                h = layer.activation(h)
        return h

    @property
    def has_manual_backward(self) -> bool:
        """Whether `backward` can differentiate this model (an MLP whose activations all
        have a known derivative); otherwise autograd does."""
        return self.image is None and all(
            layer.activation is None
            or (
                isinstance(layer.activation, DERIVATIVE_ACTIVATIONS)
                and getattr(layer.activation, "negative_slope", 0.0) >= 0
            )
            for layer in self.layers
        )

    def forward_kept(self, params: Params, x: torch.Tensor):
        """`forward` of an MLP, also returning each layer's input and (activated) output, which
        `backward` needs."""
        inputs, outputs, h = [], [], x
        for layer in self.layers:
            inputs.append(h)
            bias = params[layer.bias] if layer.bias else None
            h = _linear(h, params[layer.weight], bias)
            if layer.activation is not None:
                h = layer.activation(h)
            outputs.append(h)
        return h, (inputs, outputs)

    def backward(self, params: Params, kept, grad_output: torch.Tensor) -> list[torch.Tensor]:
        """Every task's parameter gradients, in the order of `shapes`, by the chain rule
        written out (fewer operations than autograd; itself differentiable, so a meta-gradient
        can flow through it). ``kept`` is what `forward_kept` returned."""
        inputs, outputs = kept
        grads, delta = {}, grad_output
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            if layer.activation is not None:
                delta = delta * _derivative(layer.activation, outputs[index])
            grads[layer.weight] = torch.bmm(delta.transpose(1, 2), inputs[index])
            if layer.bias:
                grads[layer.bias] = delta.sum(dim=1)
            if index:
                delta = torch.bmm(delta, params[layer.weight])
        return [grads[name] for name in self.shapes]

    def forward_flops_per_row(self) -> int:
        """Floating-point operations of one task's forward pass on one row (multiply-adds
        count 2; activations and biases are left out)."""
        total, side = 0, self.image[1:] if self.image else None
        for layer in self.layers:
            shape = self.shapes[layer.weight]
            if layer.kind == "linear":
                total += 2 * shape[0] * shape[1]
                continue
            side = tuple(
                (s + 2 * p - k) // st + 1
                for s, p, k, st in zip(side, layer.padding, layer.kernel, layer.stride, strict=True)
            )
            total += 2 * math.prod(shape) * side[0] * side[1]
        return total


def _derivative(activation: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """The activation's derivative at each element, from its output ``a = f(z)``."""
    if isinstance(activation, nn.Tanh):
        return 1 - output * output
    if isinstance(activation, nn.Sigmoid):
        return output * (1 - output)
    if isinstance(activation, nn.ELU):  # f'(z) = alpha * exp(z) = a + alpha for z <= 0
        return torch.where(output > 0, 1.0, output + activation.alpha)
    if isinstance(activation, nn.LeakyReLU):
        return torch.where(output > 0, 1.0, activation.negative_slope)
    if isinstance(activation, nn.ReLU):
        return (output > 0).to(output.dtype)
    return torch.ones_like(output)


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``h @ Wᵀ + b`` per task: ``h`` ``(T, N, in)``, ``weight`` ``(T, out, in)``."""
    if bias is None:
        return torch.bmm(h, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def _to_task_channels(x: torch.Tensor, image: tuple[int, int, int]) -> torch.Tensor:
    """Flat inputs ``(T, N, C * H * W)`` as one batch of images whose channels are every
    task's channels side by side: ``(N, T * C, H, W)``."""
    tasks, rows = x.shape[:2]
    channels, height, width = image
    return x.reshape(tasks, rows, -1).transpose(0, 1).reshape(rows, tasks * channels, height, width)


def _conv(h, weight, bias, layer: StackedLayer) -> torch.Tensor:
    """A 2-d convolution per task as one grouped convolution (a group per task): ``h``
    ``(N, T * C, H, W)``, ``weight`` ``(T, C_out, C, kh, kw)``; returns
    ``(N, T * C_out, H_out, W_out)``."""
    tasks = weight.shape[0]
    return F.conv2d(
        h,
        weight.reshape(-1, *weight.shape[2:]),
        None if bias is None else bias.reshape(-1),
        stride=layer.stride,
        padding=layer.padding,
        groups=tasks,
    )


def compile_model(template: nn.Module, in_shape: tuple[int, ...]) -> StackedModel:
    """The stacked form of ``template`` for inputs of per-row shape ``in_shape``.

    Raises:
        EngineUnsupported: the model is not one the engine runs (the message says why).

    Example:
        >>> from learnedloss.tasks.models import mlp
        >>> model = compile_model(mlp((13, 32, 32, 1)), (13,))
        >>> model.forward_flops_per_row()
        2944
    """
    if any(True for _ in template.buffers()):
        raise EngineUnsupported(f"{type(template).__name__} has buffers (e.g. BatchNorm)")
    if isinstance(template, nn.Sequential):
        plan = _sequential_plan(template, in_shape)
        # an MLP's plan takes its widths from the parameters it is given, so it is checked on
        # the template's own input width (a family's tasks may differ in their input width)
        first = next((m for m in template if isinstance(m, nn.Linear)), None)
        probe_shape = (first.in_features,) if first is not None else in_shape
    else:
        plan = _conv_net_plan(template, in_shape)
        probe_shape = in_shape
    _check_against(template, plan, probe_shape)
    return plan


def _sequential_plan(template: nn.Sequential, in_shape) -> StackedModel:
    if len(in_shape) != 1:
        raise EngineUnsupported(f"an MLP on inputs of shape {tuple(in_shape)} (need flat rows)")
    layers: list[StackedLayer] = []
    for name, child in template.named_children():
        if isinstance(child, nn.Linear):
            bias = f"{name}.bias" if child.bias is not None else None
            layers.append(StackedLayer("linear", f"{name}.weight", bias, None))
        elif isinstance(child, ELEMENTWISE_ACTIVATIONS) and layers:
            last = layers[-1]
            if last.activation is not None:
                raise EngineUnsupported("two activations in a row in an nn.Sequential")
            layers[-1] = StackedLayer(last.kind, last.weight, last.bias, child)
        else:
            raise EngineUnsupported(f"nn.Sequential layer {name} is {type(child).__name__}")
    return _plan(template, tuple(layers), None)


def _conv_net_plan(template: nn.Module, in_shape) -> StackedModel:
    children = list(template.named_children())
    kinds = [type(child) for _, child in children]
    n_convs = sum(kind is nn.Conv2d for kind in kinds)
    if not n_convs or kinds != [nn.Conv2d] * n_convs + [nn.Linear] * (len(kinds) - n_convs):
        raise EngineUnsupported(
            f"{type(template).__name__} is neither an nn.Sequential MLP nor Conv2d layers "
            "followed by Linear layers"
        )
    first = children[0][1]
    side = math.isqrt(math.prod(in_shape) // first.in_channels)
    if side * side * first.in_channels != math.prod(in_shape):
        raise EngineUnsupported(f"inputs of shape {tuple(in_shape)} are not square images")
    layers = []
    for index, (name, child) in enumerate(children):
        activation = nn.ReLU() if index < len(children) - 1 else None
        bias = f"{name}.bias" if child.bias is not None else None
        if isinstance(child, nn.Linear):
            layers.append(StackedLayer("linear", f"{name}.weight", bias, activation))
            continue
        if child.groups != 1 or child.dilation != (1, 1) or child.padding_mode != "zeros":
            raise EngineUnsupported(f"conv {name}: groups, dilation or padding mode")
        if isinstance(child.padding, str):
            raise EngineUnsupported(f"conv {name}: padding={child.padding!r}")
        layers.append(
            StackedLayer(
                "conv",
                f"{name}.weight",
                bias,
                activation,
                kernel=tuple(child.kernel_size),
                stride=tuple(child.stride),
                padding=tuple(child.padding),
            )
        )
    return _plan(template, tuple(layers), (first.in_channels, side, side))


def _plan(template: nn.Module, layers, image) -> StackedModel:
    shapes = {name: p.shape for name, p in template.named_parameters()}
    known = {name for layer in layers for name in (layer.weight, layer.bias) if name}
    if known != set(shapes):
        raise EngineUnsupported(
            f"parameters the engine does not place: {sorted(set(shapes) - known)}"
        )
    return StackedModel(layers, image, shapes)


def _check_against(template: nn.Module, plan: StackedModel, in_shape) -> None:
    """Refuse a plan whose output differs from the template's on a probe input."""
    reference = next(template.parameters(), None)
    if reference is None:
        raise EngineUnsupported(f"{type(template).__name__} has no parameters")
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(PROBE_ROWS, *in_shape, generator=generator, dtype=torch.float64)
    probe = probe.to(reference.device, reference.dtype)
    with torch.no_grad():
        try:
            expected = template(probe)
            params = {name: p.detach().unsqueeze(0) for name, p in template.named_parameters()}
            got = plan.forward(params, probe.unsqueeze(0))[0]
        except (RuntimeError, ValueError) as err:
            raise EngineUnsupported(f"the stacked plan fails: {str(err).splitlines()[0]}") from err
    if got.shape != expected.shape or not torch.allclose(
        got, expected, rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE
    ):
        raise EngineUnsupported(
            f"{type(template).__name__}'s forward is not the layers' plain sequence with ReLU"
        )
