"""`LearnedLoss`: the module users put where ``nn.MSELoss()`` stood."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitInfo
from torch import nn

from learnedloss import hub
from learnedloss._version import __version__
from learnedloss.config import UNSCHEDULED_PROGRESS, LossConfig, check_metadata
from learnedloss.functional import REDUCTIONS, check_reduction, learned_loss
from learnedloss.functional.grid import fit_grid
from learnedloss.kinds import KINDS, loss_kind
from learnedloss.networks import build_network
from learnedloss.progress import HELD_ATTRIBUTE, HeldProgress, progress_fraction, progress_of

__all__ = ["REDUCTIONS", "LearnedLoss", "finite_check_disabled"]


class LearnedLoss(nn.Module):
    r"""A learned loss function that works wherever ``nn.MSELoss`` or ``nn.CrossEntropyLoss``
    works.

    A small MLP :math:`\ell_\phi` scores each element from its features, and the scores are
    reduced like a standard PyTorch loss (ML3, Bechtle et al., ICPR 2021). ``config.kind``
    names the loss's kind (`learnedloss.kinds`), which says what it replaces and how it reads
    its arguments:

    **Regression** (kind ``regression``, a drop-in for ``nn.MSELoss``):

    .. math::
        l_n = \ell_\phi(x_n, y_n)

    over all elements :math:`n` of ``input`` and ``target``; ``reduction='mean'`` returns
    :math:`\frac{1}{N}\sum_n l_n`, ``'sum'`` returns :math:`\sum_n l_n`, ``'none'`` returns
    the :math:`l_n` with the input's shape. Because the network is applied per element, one
    loss serves any output width or shape.

    **Classification** (kind ``classification``, a drop-in for ``nn.CrossEntropyLoss``):
    with :math:`p_{n,c}` the softmax of the logits over the class dimension and
    :math:`y_{n,c}` the target probability (one-hot for class indices),

    .. math::
        l_n = \sum_{c=1}^{C} \ell_\phi(\log p_{n,c}, y_{n,c}),

    so the same network serves any number of classes. ``reduction`` and ``ignore_index``
    behave as in ``nn.CrossEntropyLoss``: ignored samples count 0 and ``'mean'`` divides by
    the number of samples not ignored. See docs/classification.md.

    **Policy gradient** (kind ``policy_gradient``, a drop-in for the REINFORCE surrogate
    ``-(log_prob * advantage).mean()``): ``input`` is the log-probability of each action
    taken and ``target`` its advantage (the return that followed it, or that minus a
    baseline), one element per time step of each episode, and

    .. math::
        l_n = \ell_\phi(\log \pi(a_n | s_n), A_n, \dots),

    reduced as for regression. Only ``input`` should carry the policy's gradient: pass the
    advantages (and side inputs such as a time step) detached. See docs/policy-gradient.md.

    A trained loss (`from_pretrained`, or ``LearnedLoss(pretrained=name)``) is frozen: it
    has no parameters, and its weights are constants held outside the module tree, so a
    module that holds it gains no parameters, no ``state_dict`` entries and no submodules,
    ``model.requires_grad_(True)`` and ``model.apply(init_fn)`` leave it alone, and
    ``optimizer = SGD(model.parameters())`` lines stay as they are. `unfreeze` makes the
    weights parameters again (to meta-train it further). A freshly constructed loss starts
    from PyTorch's default ``nn.Linear`` initialization, drawn from the global RNG (seed it
    with ``torch.manual_seed``), or, with ``config.residual``, from exactly MSE,
    cross-entropy or the REINFORCE surrogate.

    Values the network cannot evaluate behave as in the standard loss: where an element's
    features are NaN, infinite or beyond ``1e18`` in magnitude (``1e150`` in float64), the
    element's loss is the standard loss's own value there, with its gradient
    (`learnedloss.kinds.LossKind.standard_loss`): NaN in gives NaN out, an infinite error an
    infinite loss, and a ``-inf`` logit masks its class as in ``nn.CrossEntropyLoss``. Nothing
    is checked on the host by default (no exception, no sync), so the loss runs under
    ``torch.func`` transforms, ``torch.compile`` and on the ``meta`` device.

    With the ``"weight"`` residual form (`batch_dependent`), an element's loss depends on the
    other elements of the call: ``reduction='none'`` gives each element's share of this call's
    loss, and per-sample gradients (``torch.func.vmap`` over samples) are those of the loss
    evaluated on each sample alone. See docs/swap.md.

    A loss whose ``config.inputs`` name ``"progress"`` changes its shape over training. It
    works with no extra line, at `learnedloss.config.UNSCHEDULED_PROGRESS`; one line in the
    training loop, ``loss_fn.progress(step, total)`` as with an lr scheduler, gives it the
    schedule (docs/progress.md). Other losses accept the call and ignore it.

    Args:
        config: the network architecture of a new, untrained loss, e.g. ``LossConfig()``,
            ML3's regression reference (hidden sizes (50, 50), ReLU, Softplus output, no
            bias). Give ``config`` or ``pretrained``.
        pretrained: load a trained loss instead, frozen: a directory, a bundled name
            (`learnedloss.bundled_names`) or a Hub repo id, as `from_pretrained` takes it.
            This is how frameworks that build the loss from its class and keyword arguments
            get a trained one, e.g. skorch's ``criterion=LearnedLoss,
            criterion__pretrained="mse-fit"``.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``, as in the standard losses;
            checked whenever it is set.
        ignore_index: classification only: samples whose class-index target equals it are
            ignored (default -100, as in ``nn.CrossEntropyLoss``).
        check_finite: opt-in strict mode: raise ``ValueError`` on NaN or infinite
            ``input``/``target``/side-input values (``-inf`` logits, which mask classes,
            pass), and check class indices on accelerators too (on the CPU they are always
            checked). Default False. It reads the data on the host (a sync per call on an
            accelerator); it is skipped inside ``torch.compile``, under ``torch.func``
            transforms and on the ``meta`` device.
        metadata: JSON-serializable provenance written to ``config.json`` and the model card
            (keys such as ``description``, ``training``, ``results``, ``reproduce``).

    Raises:
        TypeError: neither or both of ``config`` and ``pretrained`` are given.

    Shape (regression):
        - Input: :math:`(*)`, any number of dimensions, including 0-dim.
        - Target: :math:`(*)`, the same shape as the input. No broadcasting.
        - Side inputs (only those the config declares, by keyword): :math:`(*)`, the
          input's shape.
        - Output: scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.

    Shape (policy gradient): as for regression; ``input`` the log-probabilities, ``target``
    the advantages.

    Shape (classification):
        - Input: logits :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ..., d_K)`.
        - Target: class indices (an integer dtype) of shape :math:`()`, :math:`(N)` or
          :math:`(N, d_1, ..., d_K)`, each in :math:`[0, C)` or ``ignore_index``; or class
          probabilities (floating point) of the input's shape.
        - Output: scalar; with ``reduction='none'``, the target's shape for class indices,
          the input's shape without the class dimension for probabilities.

    Inputs must be floating point (float16, bfloat16, float32 or float64). The network runs
    in the wider of the input's and the parameters' dtype, and the result has the input's
    dtype.

    Examples:
        >>> import torch
        >>> from learnedloss import LearnedLoss
        >>> loss_fn = LearnedLoss.from_pretrained("mse-fit")   # was: nn.MSELoss()
        >>> prediction = torch.zeros(8, 3, requires_grad=True)
        >>> loss = loss_fn(prediction, torch.ones(8, 3))
        >>> loss.backward()
        >>> prediction.grad.shape
        torch.Size([8, 3])
        >>> same = LearnedLoss(pretrained="mse-fit")           # what skorch's criterion__ builds
        >>> list(same.parameters()), same.frozen
        ([], True)
    """

    def __init__(
        self,
        config: LossConfig | None = None,
        *,
        pretrained: str | os.PathLike | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        check_finite: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.reduction = reduction  # checked by the property
        if metadata is not None:
            check_metadata(dict(metadata))
        checkpoint = None
        if pretrained is not None:
            if config is not None or metadata is not None:
                raise TypeError(
                    "LearnedLoss takes config (a new, untrained loss) or pretrained (a trained "
                    "one, with its own config and metadata), not both"
                )
            checkpoint = _read_pretrained(type(self), pretrained)
            config, metadata = checkpoint.config, checkpoint.metadata
        elif config is None:
            raise TypeError(
                "LearnedLoss needs a config (a new, untrained loss, e.g. "
                "LearnedLoss(LossConfig()), ML3's reference network) or pretrained (a trained "
                "loss: LearnedLoss(pretrained='mse-fit'), or LearnedLoss.from_pretrained). "
                "With skorch, pass criterion=LearnedLoss, criterion__pretrained='mse-fit'; "
                "skorch builds an instance's class again from the criterion__ arguments alone."
            )
        self.config = config
        if not isinstance(self.config, LossConfig):
            raise TypeError(f"config must be a LossConfig, got {type(config).__name__}")
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        if ignore_index != -100 and not loss_kind(self.config.kind).uses_ignore_index:
            using = " and ".join(name for name, kind in KINDS.items() if kind.uses_ignore_index)
            raise ValueError(
                f"ignore_index applies to {using or 'no'} losses; this loss is of kind "
                f"{self.config.kind!r}"
            )
        self.ignore_index = ignore_index
        if self.config.kind == "classification":
            _warn_if_skorch_wants_probabilities()
        self.check_finite = check_finite
        self.metadata = dict(metadata or {})
        check_metadata(self.metadata)
        if checkpoint is None:
            self.network = build_network(self.config)
        else:
            with torch.device("cpu"):  # real weights, whatever device context the caller is in
                self.network = build_network(self.config)
            self._load_pretrained(checkpoint.tensors, source=str(checkpoint.directory))
        if self.config.reads_progress:
            # on the CPU whatever the device context (a model built on the meta device still
            # holds a real value); `.to()` moves it, and a call reads it on its own device
            self.__dict__[HELD_ATTRIBUTE] = HeldProgress(UNSCHEDULED_PROGRESS, "cpu")

    @property
    def reduction(self) -> str:
        """``'mean'``, ``'sum'`` or ``'none'``; setting anything else raises ``ValueError``."""
        return self._reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self._reduction = check_reduction(value)

    @property
    def network(self) -> nn.Module:
        """The loss network (`learnedloss.networks`).

        A submodule while the loss is trainable; while it is frozen, held outside the module
        tree (see `freeze`)."""
        network = self.__dict__["_modules"].get("network")
        if network is None:
            network = self.__dict__.get("_frozen_network")
        if network is None:
            raise AttributeError(f"{type(self).__name__} has no network yet")
        return network

    @property
    def frozen(self) -> bool:
        """Whether the loss is frozen (see `freeze`): no parameters, weights held as constants."""
        return "network" not in self.__dict__["_modules"]

    @property
    def side_inputs(self) -> tuple[str, ...]:
        """The side inputs the loss reads by keyword (``config.side_inputs``), the attribute
        through which callers that treat any loss alike (a frozen loss has no parameters)
        learn what to pass."""
        return tuple(self.config.side_inputs)

    @property
    def batch_dependent(self) -> bool:
        """Whether an element's loss depends on the other elements of the call.

        True for the ``"weight"`` residual form, whose weights ``N * softmax(h)`` are
        normalized over the N elements of each call: ``reduction='none'`` then gives each
        element's share of this call's loss rather than a per-element loss, the loss of a
        batch is not the mean of its halves' losses, and per-sample gradients
        (``torch.func.vmap(grad(...))`` over samples) are the gradients of the loss
        evaluated on each sample alone, which do not average to the batch gradient.
        """
        return loss_kind(self.config.kind).batch_dependent(self.config)

    @property
    def training_progress(self) -> float | None:
        """The progress the loss reads, from 0 to 1 (`progress` sets it; until then
        `learnedloss.config.UNSCHEDULED_PROGRESS`), or None for a loss that does not read
        progress."""
        held = self.__dict__.get(HELD_ATTRIBUTE)
        return None if held is None else float(held)

    def progress(self, step: float, total: float) -> LearnedLoss:
        """Tell the loss how far training has come: ``step`` of ``total`` steps (or epochs),
        so progress ``min(step / total, 1)``. Call it once per step before the loss, as with
        an lr scheduler::

            for step in range(total):
                loss_fn.progress(step, total)
                loss = loss_fn(model(x), y)

        Progress is 0 at the first step; ``step`` past ``total`` holds it at 1. A loss that
        does not read progress (``"progress"`` not in ``config.inputs``) ignores the call, so
        a training script may call it for any loss. The value is state of the run, not of the
        loss: it is not a parameter or a buffer, is never saved with the weights, and moves
        and casts with ``.to()``. Returns ``self``.

        Raises:
            ScheduleError: ``step`` or ``total`` is not a finite real number (Python, NumPy
                or a one-element tensor), ``step`` is negative or ``total`` is not positive:
                an unbounded run (Lightning's ``estimated_stepping_batches`` is ``inf`` then)
                has no progress. The loss's progress is then unchanged.

        Examples:
            >>> from learnedloss import LearnedLoss, LossConfig
            >>> config = LossConfig(inputs=("input", "target", "progress"))
            >>> LearnedLoss(config).progress(25, 100).training_progress
            0.25
        """
        fraction = progress_fraction(step, total)
        held = self.__dict__.get(HELD_ATTRIBUTE)
        if held is not None:
            held.set(fraction)
        return self

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, **side_inputs: torch.Tensor
    ) -> torch.Tensor:
        return self._loss(input, target, side_inputs, self.reduction)

    def per_element(
        self, input: torch.Tensor, target: torch.Tensor, **side_inputs: torch.Tensor
    ) -> torch.Tensor:
        """The loss of each sample, whatever ``reduction`` is set to: what the call returns
        with ``reduction='none'`` (`check`, `plot` and the online shape recorder read a loss
        this way).

        Shape: as the call's output with ``reduction='none'`` (see `LearnedLoss`).

        Examples:
            >>> import torch
            >>> from learnedloss import LearnedLoss
            >>> loss_fn = LearnedLoss.from_pretrained("mse-fit")
            >>> loss_fn.per_element(torch.zeros(2, 3), torch.ones(2, 3)).shape
            torch.Size([2, 3])
        """
        return self._loss(input, target, side_inputs, "none")

    def _loss(
        self, input: torch.Tensor, target: torch.Tensor, side_inputs: dict, reduction: str
    ) -> torch.Tensor:
        return learned_loss(
            self.config,
            self.network,
            input,
            target,
            side_inputs,
            reduction=reduction,
            ignore_index=self.ignore_index,
            check_finite=self.check_finite,
            parameters=self._constants_for(getattr(input, "device", None)),
            frozen=self.frozen,
            progress=progress_of(self, getattr(input, "device", None)),
        )

    def extra_repr(self) -> str:
        out = f"kind={self.config.kind!r}, reduction={self.reduction!r}"
        if loss_kind(self.config.kind).uses_ignore_index:
            out += f", ignore_index={self.ignore_index}"
        if self.batch_dependent:
            out += ", batch_dependent=True"
        if self.frozen:
            out += ", frozen=True"
        return out

    # ----------------------------------------------------------------- freezing

    def freeze(self) -> LearnedLoss:
        """Make the weights constants: the loss then has no parameters and no state.

        The network leaves the module tree (``loss.network`` still reaches it) with
        ``requires_grad=False``, so a module holding the loss gains no parameters, no
        ``state_dict`` entries and no submodules; ``requires_grad_(True)`` (Lightning's
        ``unfreeze()``), ``model.apply(init_fn)`` and frameworks' weight initialization
        (transformers' ``post_init``) never reach it; ``.to()``, ``.half()`` and
        ``.to_empty()`` move and cast it and keep its values. The module's train/eval mode is
        left alone (it changes nothing in a loss), so frameworks that warn about modules in
        eval mode (Lightning) stay quiet. `save_pretrained` and `weights` still see the
        weights. Gradients still flow through the loss to its ``input``. Returns ``self``.

        Examples:
            >>> from torch import nn
            >>> from learnedloss import LearnedLoss
            >>> model = nn.Linear(3, 1)
            >>> model.loss_fn = LearnedLoss.from_pretrained("mse-fit")   # frozen
            >>> sorted(model.state_dict()), len(list(model.parameters()))
            (['bias', 'weight'], 2)
        """
        self._forget_constants()
        network = self.network
        network.requires_grad_(False)
        if "network" in self._modules:
            del self._modules["network"]
            self.__dict__["_frozen_network"] = network
        return self

    def unfreeze(self) -> LearnedLoss:
        """Make the weights trainable parameters again (train mode, ``requires_grad=True``).

        Use it to meta-train a loaded loss further. The weights are then in the loss's (and
        any parent's) ``parameters()`` and ``state_dict()`` again. Returns ``self``.

        Examples:
            >>> from learnedloss import LearnedLoss
            >>> loss_fn = LearnedLoss.from_pretrained("mse-fit").unfreeze()
            >>> all(p.requires_grad for p in loss_fn.parameters())
            True
        """
        network = self.__dict__.pop("_frozen_network", None)
        if network is not None and "network" not in self._modules:
            self._modules["network"] = network
        self.network.requires_grad_(True)
        return self.train()

    def weights(self) -> dict[str, torch.Tensor]:
        """The network's tensors by checkpoint name (``"network.layers.0.weight"``, ...),
        detached, frozen or not: what `save_pretrained` writes and `load_state_dict_strict`
        reads."""
        return {f"network.{name}": t for name, t in self.network.state_dict().items()}

    def state_dict(self, *args, **kwargs):
        """As ``nn.Module.state_dict``; a frozen loss's own ``state_dict()`` holds its weights,
        but inside another module's ``state_dict()`` a frozen loss holds nothing (a constant
        of that module, not state: a checkpoint of the module loads whichever loss the module
        holds)."""
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        if not self.frozen or prefix:
            return super().state_dict(*args, **kwargs)
        with self._registered():
            return super().state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; a frozen loss loads its weights (and stays
        frozen). Loading a parent module's checkpoint never touches a frozen loss."""
        if not self.frozen:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        with self._registered():
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @contextlib.contextmanager
    def _registered(self) -> Iterator[None]:
        """Put a frozen network back in the module tree for a block (it stays frozen)."""
        network = self.__dict__["_frozen_network"]
        self._modules["network"] = network
        try:
            yield
        finally:
            del self._modules["network"]
            network.requires_grad_(False)
            self._forget_constants()

    def _forget_constants(self) -> None:
        """Drop what `_constants_for` keeps (the network moved, froze or was reloaded)."""
        self.__dict__.pop("_constants_on", None)
        self.__dict__.pop("_first_constant", None)

    def _constants_for(self, device: torch.device | None) -> dict[str, torch.Tensor] | None:
        """A frozen network's constants on ``device`` when they live elsewhere (copied there
        once and kept), so that a frozen loss works on any device, as a parameter-free loss
        such as ``nn.MSELoss`` does, the ``meta`` device included; None when the network's
        own tensors serve."""
        network = self.network
        if device is None or not self.frozen:
            return None
        # the network's first parameter, kept (moving the network in place moves it, and
        # `_apply` forgets it): reading it per call through ``parameters()`` costs more than
        # a small loss call
        first = self.__dict__.get("_first_constant")
        if first is None:
            first = self.__dict__["_first_constant"] = network.layers[0].weight
        if first.device == device:
            return None
        copies = self.__dict__.setdefault("_constants_on", {})
        if device not in copies:
            named = itertools.chain(network.named_parameters(), network.named_buffers())
            copies[device] = {name: t.detach().to(device) for name, t in named}
        return copies[device]

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.cuda()``, ``.half()``, ``.to_empty()`` ... reach a frozen network too,
        and keep its values (``to_empty`` included: they are constants, not state to load),
        as does the training progress (`progress`)."""
        super()._apply(fn, recurse=recurse)
        held = self.__dict__.get(HELD_ATTRIBUTE)
        if held is not None:  # moved, never cast: it stays float64 (a half 1/3 is not 1/3)
            self.__dict__[HELD_ATTRIBUTE] = held.moved(fn(held.value).device)
        self._forget_constants()
        network = self.__dict__.get("_frozen_network")
        if network is not None and recurse:
            before = [t.detach() for t in itertools.chain(network.parameters(), network.buffers())]
            network._apply(fn)
            after = itertools.chain(network.parameters(), network.buffers())
            with torch.no_grad():
                for old, new in zip(before, after, strict=True):
                    if new.dtype == old.dtype and not (old.is_meta or new.is_meta):
                        new.copy_(old)
        return self

    # ----------------------------------------------------------------- checkpoints

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        repo_id: str | None = None,
        *,
        push_to_hub: bool = False,
        check: bool = True,
        **push_to_hub_kwargs: Any,
    ) -> Path:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` (model card).

        The save is all or nothing: if it is interrupted at any point, `from_pretrained`
        loads the checkpoint the directory held before or the new one, never a mix of the
        two (docs/checkpoints.md). Other files in the directory are left alone.

        Args:
            save_directory: the directory to write; created if needed.
            repo_id: the name the card's usage snippet loads the loss by, and the Hub repo
                to push to (default: the directory's name).
            push_to_hub: also upload the checkpoint with `push_to_hub`.
            check: run `check` over the range the loss was meta-trained on and state the
                result in the model card (a loss that fails still saves; one whose metadata
                records no range says so in its card). About half a second.
            **push_to_hub_kwargs: passed to `push_to_hub` (``token``, ``private``,
                ``revision``, ``create_pr``, ``commit_message``, ...).

        Returns:
            The directory as a ``pathlib.Path``.

        Examples:
            >>> import tempfile
            >>> from learnedloss import LearnedLoss, LossConfig
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     path = LearnedLoss(LossConfig(hidden_sizes=(4,))).save_pretrained(tmp)
            ...     sorted(p.name for p in path.iterdir())
            ['README.md', 'config.json', 'model.safetensors']
        """
        if push_to_hub_kwargs and not push_to_hub:
            raise TypeError(
                f"save_pretrained got {sorted(push_to_hub_kwargs)}, which are arguments of "
                "push_to_hub; pass push_to_hub=True to upload"
            )
        if push_to_hub and repo_id is None:
            repo_id = Path(save_directory).resolve().name
        directory = hub.write_checkpoint(
            save_directory,
            self.config,
            self.metadata,
            self.weights(),
            library_version=__version__,
            repo_id=repo_id,
            checks=self._card_checks() if check else None,
        )
        if push_to_hub:
            hub.upload_checkpoint(directory, repo_id, **push_to_hub_kwargs)
        return directory

    def _card_checks(self) -> dict[str, Any] | str:
        """`check`'s report for the model card, or why it could not run."""
        try:
            return self.check().to_dict()
        except ValueError as err:  # no recorded range, or a kind check does not cover
            return str(err)

    def check(self, ranges: dict[str, tuple[float, float]] | None = None, **options: Any):
        """Is this a sane loss over the range it was meta-trained on? Finite values and
        gradients, its minimum at the target, gradients that push predictions toward the
        target and are neither collapsed nor exploded next to MSE's or cross-entropy's, and
        no dependence on the rest of the batch (`learnedloss.inspection.check`, whose
        ``options`` it takes).

        Args:
            ranges: the feature ranges to probe, e.g. ``{"target": (-5, 5), "residual":
                (-10, 10)}`` (default: those the loss's metadata records).

        Returns:
            report (CheckReport): the findings (`learnedloss.inspection.CheckReport`); read
                ``report.passed``, or ``print(report)``.

        Examples:
            >>> from learnedloss import LearnedLoss
            >>> LearnedLoss.from_pretrained("mse-fit").check().passed
            True
        """
        from learnedloss.inspection.check import check

        return check(self, ranges, **options)

    def to_grid(self, ranges: dict[str, tuple[float, float]] | None = None, **options: Any):
        """This loss in the fast grid (spline) form, and the largest error of the conversion
        over the range the loss was meta-trained on (the conversion is
        `learnedloss.functional.grid.fit_grid`, whose ``options`` it takes: ``knots``,
        ``probes``).

        Returns:
            grid_loss (LearnedLoss): the loss in grid form, frozen.
            report (ExportReport): the conversion's error
                (`learnedloss.inspection.ExportReport`).
        """
        export = fit_grid(self.config, self.network, self.metadata, ranges, **options)
        grid = LearnedLoss(export.config, reduction=self.reduction, metadata=export.metadata)
        weights = {f"network.{name}": t for name, t in export.network.state_dict().items()}
        grid.load_state_dict_strict(weights, source="the grid export")
        return grid.freeze(), export.report

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        reduction: str = "mean",
        ignore_index: int = -100,
        check_finite: bool = False,
        map_location: str | torch.device = "cpu",
    ) -> LearnedLoss:
        """Load a loss by local directory, bundled name or Hugging Face Hub repo id.

        A local directory wins over a bundled name, which wins over a Hub repo id. Loading is
        strict: every tensor the architecture needs must be present with its shape, nothing
        else may be, and all values must be finite. Only safetensors weights are read.

        Args:
            name_or_path: a directory, a bundled name (`learnedloss.bundled_names`) or a Hub
                repo id such as ``"org/my-loss"``.
            revision: Hub branch, tag or commit.
            cache_dir: Hub cache directory (default: the ``HF_HUB_CACHE`` location).
            local_files_only: never go to the network; use the Hub cache only.
            token: Hub token for private repos.
            force_download: re-download even when cached.
            reduction: ``'mean'``, ``'sum'`` or ``'none'``.
            ignore_index: see `LearnedLoss` (classification losses).
            check_finite: see `LearnedLoss`.
            map_location: device to put the weights on.

        Returns:
            The loss, frozen (see `freeze`). It loads real weights even inside a
            ``torch.device("meta")`` context (as transformers' ``from_pretrained`` builds
            models).

        Raises:
            FileNotFoundError: nothing of that name is found.
            learnedloss.ConfigError: ``config.json`` is malformed or of an unknown version.
            learnedloss.CheckpointError: the weights are pickles, truncated, foreign,
                mis-shaped, incomplete or not finite.
        """
        checkpoint = _read_pretrained(
            cls,
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        with torch.device("cpu"):  # real weights, whatever device context the caller is in
            loss = cls(
                checkpoint.config,
                reduction=reduction,
                ignore_index=ignore_index,
                check_finite=check_finite,
                metadata=checkpoint.metadata,
            )
        loss._load_pretrained(checkpoint.tensors, source=str(checkpoint.directory))
        return loss.to(map_location)

    def load_state_dict_strict(
        self, tensors: dict[str, torch.Tensor], source: str = "checkpoint"
    ) -> None:
        """Load weights, refusing missing, unexpected, mis-shaped or non-finite tensors.

        ``tensors`` are named as `weights` names them; they are copied into the network,
        frozen or not. Floating-point tensors are cast to this module's dtype.
        """
        self._check_weights(tensors, source)
        self._forget_constants()
        network = {name.removeprefix("network."): t for name, t in tensors.items()}
        self.network.load_state_dict(network, strict=True)

    def _check_weights(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        expected = {name: tuple(t.shape) for name, t in self.weights().items()}
        hub.check_tensor_infos(hub.tensor_infos(tensors), expected, self.config, source)
        hub.check_weight_values(tensors, source)

    def _load_pretrained(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Check ``tensors``, freeze, and make them the network's weights (cast to its dtype).

        They are assigned, not copied into the tensors the network was built with, so the
        weights are real even when the network was built on the ``meta`` device (or by a
        framework's empty-weights context that moves new parameters there)."""
        self._check_weights(tensors, source)
        self.freeze()
        network = self.network
        with torch.no_grad():
            for name, tensor in tensors.items():
                path, _, leaf = name.removeprefix("network.").rpartition(".")
                module = network.get_submodule(path)
                current = getattr(module, leaf)
                value = tensor.to(dtype=current.dtype).clone()
                if leaf in module._parameters:  # not setattr: hooks may move it to meta
                    module._parameters[leaf] = nn.Parameter(value, requires_grad=False)
                else:
                    module._buffers[leaf] = value

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload learned loss with learnedloss",
        commit_description: str | None = None,
        create_pr: bool = False,
        delete_stale: bool = True,
    ) -> CommitInfo:
        """Publish the loss to the Hugging Face Hub in one commit.

        Creates the repo if it does not exist, and the branch ``revision`` (from ``main``)
        if it does not exist yet, then commits ``model.safetensors``, ``config.json`` and
        the model card, written as by `save_pretrained`.

        Args:
            repo_id: ``"namespace/name"`` (or ``"name"`` in your own namespace).
            token: a Hub token with write access (default: the one ``hf auth login``
                saved).
            private: create the repo private (an existing repo keeps its visibility).
            revision: the branch to commit to (default ``main``); with ``create_pr``, the
                branch the pull request targets.
            commit_message: the commit's title.
            commit_description: the commit's (or pull request's) description.
            create_pr: open a pull request with the commit instead of committing to the
                branch.
            delete_stale: delete the branch's other files in the same commit (all but
                ``.gitattributes``), so the repo holds exactly this checkpoint and no
                weights of an older upload in another format stay behind.

        Returns:
            ``huggingface_hub.CommitInfo`` of the commit; ``pr_url`` and ``pr_revision``
            (``refs/pr/N``, loadable with ``from_pretrained(repo_id, revision=...)``) for a
            pull request.

        Example (needs a Hub token; tests/core/test_hub_server.py runs it against a local server)::

            loss_fn.push_to_hub("my-org/robust-sine-loss")
        """
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id)
            return hub.upload_checkpoint(
                tmp,
                repo_id,
                token=token,
                private=private,
                revision=revision,
                commit_message=commit_message,
                commit_description=commit_description,
                create_pr=create_pr,
                delete_stale=delete_stale,
            )


@contextlib.contextmanager
def finite_check_disabled(loss: nn.Module) -> Iterator[None]:
    """Turn off a `LearnedLoss`'s opt-in strict check (``check_finite=True``) for a block (a
    no-op for other losses and for losses without the check, the default).

    The check reads values on the host; it already skips itself under ``torch.func``
    transforms and ``torch.compile``, and this block turns it off everywhere.
    """
    previous = getattr(loss, "check_finite", None)
    if previous is not None:
        loss.check_finite = False
    try:
        yield
    finally:
        if previous is not None:
            loss.check_finite = previous


def _warn_if_skorch_wants_probabilities() -> None:
    """Warn when a skorch ``NeuralNetClassifier`` that infers its ``predict_nonlinearity``
    builds a classification loss (``criterion=LearnedLoss, criterion__pretrained=...``):
    skorch applies softmax in ``predict_proba`` for ``nn.CrossEntropyLoss`` only and has no
    hook for other losses, so it would return logits (docs/swap.md)."""
    skorch = sys.modules.get("skorch")
    frame = sys._getframe(2)
    for _ in range(3):  # the skorch frame that builds the criterion, if any
        if skorch is None or frame is None:
            return
        net = frame.f_locals.get("self")
        if isinstance(net, skorch.NeuralNetClassifier):
            if net.predict_nonlinearity == "auto":
                warnings.warn(
                    "skorch's NeuralNetClassifier applies softmax in predict_proba only for "
                    "nn.CrossEntropyLoss; with a classification LearnedLoss it returns logits. "
                    "Pass predict_nonlinearity=torch.nn.Softmax(dim=-1) to the net (docs/swap.md)",
                    UserWarning,
                    stacklevel=4,
                )
            return
        frame = frame.f_back


def _read_pretrained(cls: type, name_or_path: str | os.PathLike, **options: Any):
    """The checkpoint `from_pretrained` and ``LearnedLoss(pretrained=...)`` load."""
    directory = hub.resolve_checkpoint_dir(name_or_path, **options)
    return hub.read_checkpoint(  # checks shapes before anything is allocated
        directory, expected_tensors=lambda config: hub.module_tensor_shapes(config, cls)
    )
