"""Data-parallel meta-training over ``torch.distributed`` ranks (under ``torchrun``).

`MetaTrainer` runs data-parallel when it finds itself in a ``torch.distributed`` job: the
default process group is initialized already, or ``torchrun`` set ``WORLD_SIZE`` > 1 (then it
initializes the group from the environment: ``gloo`` on the CPU, ``nccl`` on CUDA). Nothing
else changes in the user's code::

    torchrun --nproc-per-node 2 train.py                       # MetaTrainer(...).fit(...)
    torchrun --nproc-per-node 2 -m learnedloss meta-train sine ...

How the work is split, so that R ranks compute the meta-gradient one process would:

- Every rank draws the whole meta-batch of ``B`` tasks and model initializations from the
  same seeded generator (sampling is cheap next to the inner loop) and keeps its contiguous
  share of them (`share`); with `learnedloss.meta.Backprop` each rank backpropagates the sum
  of its tasks' objectives divided by ``B``, and the ranks' gradients are summed, which is the
  single-process mean.
- With `learnedloss.meta.EvolutionStrategies` every rank draws all pairs' noise from the same
  generator, evaluates its share of the pairs on all ``B`` tasks, and the partial sums (and
  the count of finite pairs) are summed over the ranks.
- Meta-validation runs on rank 0, which broadcasts the score, so every rank agrees on the
  best step; only rank 0 writes checkpoints; a resumed run reads the checkpoint on rank 0 and
  broadcasts it. The loss's weights are broadcast from rank 0 when the trainer is made.

A rank that fails ends the job instead of hanging it: every collective waits at most
``Distributed(timeout=...)`` seconds (600 by default), then raises `DistributedError` on the
ranks still alive, and ``torchrun`` stops the others.
"""

from __future__ import annotations

import atexit
import math
import os
import pickle
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from learnedloss.errors import DistributedError

DEFAULT_TIMEOUT = 600.0
"""Seconds a collective waits for the other ranks before failing (`Distributed.timeout`)."""

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class Distributed:
    """How `MetaTrainer` joins a ``torch.distributed`` job; ``MetaTrainer(distributed=...)``.

    ``MetaTrainer(distributed="auto")`` (the default) is ``Distributed()``: it runs
    data-parallel when the default process group is initialized or the environment says
    ``WORLD_SIZE`` > 1 (``torchrun`` sets it, with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``), and as one process otherwise. ``distributed=False`` always runs as one
    process, even inside a job (e.g. one loss meta-trained per rank).

    Args:
        timeout: seconds any collective waits for the other ranks (also the process group's
            timeout when the trainer initializes it); then the ranks still alive raise
            `DistributedError`. It must exceed the longest time one rank can run ahead of
            the others: a meta-validation, which rank 0 runs alone, or a checkpoint write.
            A group the user initialized keeps its own timeout.
        backend: ``"auto"`` picks ``nccl`` for CUDA when every local rank has a GPU of its
            own, else ``gloo`` (several processes on one GPU, or the CPU); or ``"gloo"`` or
            ``"nccl"``. Only used when the trainer initializes the process group.

    Examples:
        >>> from learnedloss.meta.distributed import Distributed
        >>> Distributed(timeout=120).timeout
        120.0
    """

    timeout: float = DEFAULT_TIMEOUT
    backend: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not (
            isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
        ):
            raise ValueError(f"Distributed needs a finite timeout in seconds, got {self.timeout!r}")
        if self.timeout <= 0:
            raise ValueError(f"Distributed needs a timeout > 0 seconds, got {self.timeout!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        object.__setattr__(self, "timeout", float(self.timeout))

    def ranks(self, device: torch.device) -> Ranks:
        """The `Ranks` of the job this process is in (a single rank outside any job)."""
        if not dist.is_available():
            return Ranks()
        if not dist.is_initialized():
            world = int(os.environ.get("WORLD_SIZE", "1"))
            if world <= 1:
                return Ranks()
            backend = self._backend(device)
            if backend == "nccl":
                torch.cuda.set_device(local_device(device))
            dist.init_process_group(backend, timeout=timedelta(seconds=self.timeout))
            atexit.register(_destroy)
        if dist.get_world_size() <= 1:
            return Ranks()
        return Ranks(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            timeout=self.timeout,
            communicate_on=_communication_device(),
        )

    def _backend(self, device: torch.device) -> str:
        if self.backend != "auto":
            return self.backend
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        if device.type == "cuda" and local_world <= torch.cuda.device_count():
            return "nccl"
        return "gloo"


def distributed_from(setting: str | bool | Distributed) -> Distributed | None:
    """The `Distributed` a ``MetaTrainer(distributed=...)`` setting names (``None``: never).

    ``"auto"`` and ``True`` are ``Distributed()``; ``False`` is ``None``.
    """
    if isinstance(setting, Distributed):
        return setting
    if setting is False:
        return None
    if setting is True or setting == "auto":
        return Distributed()
    raise ValueError(
        "distributed must be 'auto', True, False or a learnedloss.meta.distributed."
        f"Distributed(timeout=..., backend=...), got {setting!r}"
    )


def join(
    setting: str | bool | Distributed, device: str | torch.device
) -> tuple[Ranks, torch.device]:
    """The `Ranks` of the job a ``MetaTrainer(distributed=..., device=...)`` runs in, and the
    device this rank uses (`local_device` in a data-parallel job, else ``device``).

    Examples:
        >>> ranks, device = join(False, "cpu")
        >>> ranks.active, device
        (False, device(type='cpu'))
    """
    distributed = distributed_from(setting)
    requested = torch.device(device)
    ranks = distributed.ranks(requested) if distributed is not None else Ranks()
    return ranks, local_device(requested) if ranks.active else requested


def local_device(device: torch.device) -> torch.device:
    """The device a rank uses: ``"cuda"`` without an index becomes this rank's GPU,
    ``cuda:(LOCAL_RANK mod the GPU count)``, so that several ranks can share one GPU."""
    if device.type != "cuda" or device.index is not None:
        return device
    count = torch.cuda.device_count()
    if count == 0:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % count)


def _communication_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class Ranks:
    """This process's place in a data-parallel job, and the few collectives the trainer uses.

    ``Ranks()`` is a single process: every method is then a no-op that returns its input.
    Every collective is bounded by ``timeout`` and turns a failure into `DistributedError`.

    Attributes:
        rank: this process's rank (0 is the main rank: validation, checkpoints, progress).
        world_size: the number of ranks.
        timeout: seconds each collective waits for the others.
    """

    def __init__(
        self,
        rank: int = 0,
        world_size: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        communicate_on: torch.device | None = None,
    ) -> None:
        self.rank, self.world_size, self.timeout = rank, world_size, timeout
        self.communicate_on = communicate_on or torch.device("cpu")
        self.step: int | None = None  # the outer step, for error messages

    @property
    def active(self) -> bool:
        """Whether there is more than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items (tasks or ES pairs).

        The first ``n % world_size`` ranks get one more item than the others; the caller
        divides by the global count ``n``, so uneven shares are weighted correctly.

        Examples:
            >>> [Ranks(rank, 3).share(8) for rank in range(3)]
            [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None)]
        """
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def check_divisible(self, n: int, what: str) -> None:
        """Refuse to start when some rank would get none of the ``n`` items."""
        if self.active and n < self.world_size:
            raise ValueError(
                f"{what} is {n}, fewer than the {self.world_size} ranks, so some ranks would "
                f"have nothing to do: use at least {self.world_size} (a multiple of "
                f"{self.world_size} splits evenly), or fewer processes"
            )

    # ------------------------------------------------------------------ collectives

    def sum_(self, tensor: torch.Tensor, what: str = "summing over ranks") -> torch.Tensor:
        """Sum ``tensor`` over all ranks, in place (it is returned)."""
        if not self.active:
            return tensor
        buffer = tensor.to(self.communicate_on)
        self._run(lambda: dist.all_reduce(buffer, op=dist.ReduceOp.SUM), what)
        if buffer is not tensor:
            tensor.copy_(buffer)
        return tensor

    def sum_gradients(self, weights: dict[str, torch.Tensor], value: float) -> float:
        """Sum every weight's ``.grad`` and ``value`` over the ranks (one collective).

        A weight whose ``.grad`` is ``None`` on every rank stays ``None``; a rank without a
        gradient for a weight that others have contributes zeros. Returns the summed value.
        """
        if not self.active:
            return value
        tensors = list(weights.values())
        parts = []
        for weight in tensors:
            grad = weight.grad
            parts.append(
                torch.zeros(weight.numel(), dtype=torch.float64, device=weight.device)
                if grad is None
                else grad.detach().reshape(-1).to(torch.float64)
            )
        flags = [0.0 if w.grad is None else 1.0 for w in tensors]
        device = tensors[0].device if tensors else torch.device("cpu")
        flat = torch.cat(
            [*parts, torch.tensor([*flags, value], dtype=torch.float64, device=device)]
        )
        self.sum_(flat, "summing the meta-gradient over ranks")
        offset = 0
        for weight, flag_index in zip(tensors, range(len(tensors)), strict=True):
            n = weight.numel()
            has = flat[-len(tensors) - 1 + flag_index] > 0
            chunk = flat[offset : offset + n]
            offset += n
            if bool(has):
                weight.grad = chunk.to(weight.dtype).reshape(weight.shape).clone()
        return float(flat[-1])

    def broadcast(self, obj: Any, what: str = "broadcasting from rank 0") -> Any:
        """Rank 0's ``obj`` on every rank (picklable; tensors come back on the CPU)."""
        if not self.active:
            return obj
        payload = [_to_cpu(obj) if self.is_main else None]
        self._run(
            lambda: dist.broadcast_object_list(payload, src=0, device=self._object_device()), what
        )
        return payload[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers, in place."""
        if not self.active:
            return
        state = self.broadcast(
            {k: v.detach() for k, v in module.state_dict().items()},
            "broadcasting the loss's initial weights from rank 0",
        )
        with torch.no_grad():
            for name, value in module.state_dict().items():
                value.copy_(state[name])

    def check_same(self, settings: dict, what: str) -> None:
        """Raise on every rank unless every rank has the same ``settings``."""
        if not self.active:
            return
        gathered: list[Any] = [None] * self.world_size
        self._run(
            lambda: dist.all_gather_object(gathered, pickle.dumps(settings)),
            f"comparing the {what} of all ranks",
        )
        settings_of = [pickle.loads(s) for s in gathered]
        for rank, other in enumerate(settings_of):
            if other != settings_of[0]:
                keys = sorted(
                    k
                    for k in set(other) | set(settings_of[0])
                    if other.get(k) != settings_of[0].get(k)
                )
                raise ValueError(
                    f"rank {rank} was given other {what} than rank 0 (they differ in {keys}: "
                    f"{ {k: other.get(k) for k in keys} } vs "
                    f"{ {k: settings_of[0].get(k) for k in keys} }); every rank must run the "
                    "same MetaTrainer configuration"
                )

    def _object_device(self) -> torch.device | None:
        return self.communicate_on if self.communicate_on.type == "cuda" else None

    def _run(self, collective, what: str) -> None:
        try:
            collective()
        except (RuntimeError, dist.DistBackendError) as err:
            where = "" if self.step is None else f" at outer step {self.step}"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what}{where} failed: {first}. "
                f"Another rank probably failed, stopped or hung (look for its error); every "
                f"collective waits at most {self.timeout:g} s "
                "(MetaTrainer(distributed=Distributed(timeout=...)))"
            ) from err


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
