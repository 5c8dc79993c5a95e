"""A meta-step captured as a CUDA graph, so a small step is not bound by kernel launches.

One backpropagated meta-step of a vmapped inner loop launches hundreds of small kernels; on a
GPU, at small meta-batches, the time goes to launching them (docs/benchmarks.md: 5.7 ms per
step at meta-batch 32 on an H200, nearly flat up to 1024 tasks). `StaticMetaStep` records the
step (inner loop, meta-objective and its backward into the loss's weights) once as a CUDA
graph and then replays it: every outer step copies its tasks and model initializations into
the same static input tensors, replays the graph, and finds the meta-gradient in the same
static gradient tensors. ``MetaTrainer(cuda_graph=True)`` uses it.

What capture needs: the same shapes at every step (a new shape is captured anew), no host
synchronization inside the step (no ``.item()``, no data-dependent control flow: the vmap path
has none), and the loss's weights updated in place (``torch.optim`` optimizers do). On the CPU
there is nothing to capture: the same static-buffer step runs eagerly, and gives the eager
meta-gradient bit for bit (tested), which keeps the plumbing honest without a GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from learnedloss.tasks.base import TaskBatch

Params = dict[str, torch.Tensor]

WARMUP_STEPS = 3
"""Eager steps run on a side stream before capture (lazy initialization, autograd's
gradient-accumulation buffers, cuBLAS workspaces)."""


def flatten_inputs(batch: TaskBatch, params: Params) -> dict[str, torch.Tensor]:
    """A meta-step's inputs (the tasks and the models' initial parameters) as one flat dict."""
    flat = {
        "x_train": batch.x_train,
        "y_train": batch.y_train,
        "x_query": batch.x_query,
        "y_query": batch.y_query,
    }
    flat.update({f"extra.{k}": v for k, v in batch.extra.items()})
    flat.update({f"params.{k}": v for k, v in params.items()})
    return flat


def unflatten_inputs(template: TaskBatch, flat: dict[str, torch.Tensor]):
    """Inverse of `flatten_inputs`: ``(batch, params)``, the batch of ``template``'s type."""
    batch = dataclasses.replace(
        template,
        x_train=flat["x_train"],
        y_train=flat["y_train"],
        x_query=flat["x_query"],
        y_query=flat["y_query"],
        extra={k[6:]: v for k, v in flat.items() if k.startswith("extra.")},
    )
    params = {k[7:]: v for k, v in flat.items() if k.startswith("params.")}
    return batch, params


def _signature(flat: dict[str, torch.Tensor]) -> tuple:
    return tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in flat.items())


class StaticMetaStep:
    """Run ``objective(inputs).backward()`` from static input buffers; on CUDA, as a graph.

    Args:
        objective: ``flat inputs -> scalar`` meta-objective, differentiable in ``weights``
            (it reads the loss's weights itself).
        weights: the loss's parameters; after each call their ``.grad`` holds the step's
            meta-gradient (a weight the objective does not reach keeps ``None``).
        capture: record a CUDA graph (needs CUDA inputs); ``False`` runs eagerly.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([2.0]))
        >>> step = StaticMetaStep(lambda inputs: (w * inputs["x"]).sum(), {"w": w}, False)
        >>> step({"x": torch.tensor([3.0])}), w.grad
        (6.0, tensor([3.]))
    """

    def __init__(
        self,
        objective: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        weights: Params,
        capture: bool,
    ) -> None:
        self.objective = objective
        self.weights = weights
        self.capture = capture
        self.captures = 0  # how many graphs were recorded (a new one per new input shape)
        self._signature: tuple | None = None
        self._static: dict[str, torch.Tensor] = {}
        self._graph = None
        self._out: torch.Tensor | None = None
        self._grads: dict[str, torch.Tensor | None] = {}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> float:
        """Copy ``inputs`` into the static buffers, run the step, set the weights' ``.grad``;
        returns the meta-objective's value."""
        signature = _signature(inputs)
        if signature != self._signature:
            self._static = {k: v.detach().clone() for k, v in inputs.items()}
            self._signature = signature
            if self.capture:
                self._record()
        else:
            for name, value in inputs.items():
                self._static[name].copy_(value)
        if not self.capture:
            for weight in self.weights.values():
                weight.grad = None
            out = self.objective(self._static)
            out.backward()
            return float(out.detach())
        self._graph.replay()
        for name, weight in self.weights.items():
            weight.grad = self._grads[name]
        return float(self._out)

    def _record(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_STEPS):
                for weight in self.weights.values():
                    weight.grad = None
                self.objective(self._static).backward()
        torch.cuda.current_stream().wait_stream(stream)
        for weight in self.weights.values():
            weight.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.objective(self._static)
            out.backward()
        self._graph, self._out = graph, out.detach()
        self._grads = {name: weight.grad for name, weight in self.weights.items()}
        self.captures += 1
