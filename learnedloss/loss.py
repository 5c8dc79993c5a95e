"""`LearnedLoss`: the module users put where ``nn.MSELoss()`` stood."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitInfo
from torch import nn

from learnedloss import hub
from learnedloss._version import __version__
from learnedloss.config import LossConfig, check_metadata
from learnedloss.errors import CheckpointError
from learnedloss.kinds import KINDS
from learnedloss.networks import build_network

REDUCTIONS = ("mean", "sum", "none")


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

    A loss from `from_pretrained` is frozen (``eval()``, parameters with
    ``requires_grad=False``), so ``optimizer = SGD(model.parameters())`` lines stay as they
    are. Call `unfreeze` to meta-train it further. A freshly constructed loss starts from
    PyTorch's default ``nn.Linear`` initialization, drawn from the global RNG (seed it with
    ``torch.manual_seed``), or, with ``config.residual``, from exactly MSE, cross-entropy or
    the REINFORCE surrogate.

    Args:
        config: the network architecture; defaults to ML3's regression reference
            (hidden sizes (50, 50), ReLU, Softplus output, no bias).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``, as in the standard losses.
        ignore_index: classification only: samples whose class-index target equals it are
            ignored (default -100, as in ``nn.CrossEntropyLoss``).
        check_finite: raise on NaN or infinite ``input``/``target`` values, and on class
            indices out of range, in eager mode (default True). Costs one pass over the data
            and a host sync; set False in hot loops on accelerators. Skipped inside
            ``torch.compile``.
        metadata: JSON-serializable provenance written to ``config.json`` and the model card
            (keys such as ``description``, ``training``, ``results``, ``reproduce``).

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

    Example:
        >>> import torch
        >>> from learnedloss import LearnedLoss
        >>> loss_fn = LearnedLoss.from_pretrained("mse-fit")   # was: nn.MSELoss()
        >>> prediction = torch.zeros(8, 3, requires_grad=True)
        >>> loss = loss_fn(prediction, torch.ones(8, 3))
        >>> loss.backward()
        >>> prediction.grad.shape
        torch.Size([8, 3])
    """

    def __init__(
        self,
        config: LossConfig | None = None,
        *,
        reduction: str = "mean",
        ignore_index: int = -100,
        check_finite: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
        self.config = config if config is not None else LossConfig()
        if not isinstance(self.config, LossConfig):
            raise TypeError(f"config must be a LossConfig, got {type(config).__name__}")
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        if ignore_index != -100 and not self.config.loss_kind.uses_ignore_index:
            using = " and ".join(name for name, kind in KINDS.items() if kind.uses_ignore_index)
            raise ValueError(
                f"ignore_index applies to {using or 'no'} losses; this loss is of kind "
                f"{self.config.kind!r}"
            )
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.check_finite = check_finite
        self.metadata = dict(metadata or {})
        check_metadata(self.metadata)
        self.network = build_network(self.config)

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, **side_inputs: torch.Tensor
    ) -> torch.Tensor:
        kind = self.config.loss_kind
        named, valid = kind.element_features(
            input,
            target,
            side_inputs,
            config=self.config,
            param_dtype=self.network.layers[0].weight.dtype,
            ignore_index=self.ignore_index,
            check_finite=self.check_finite,
        )
        skip = multiplier = None
        if self.config.residual:  # the standard loss's own term, which the network corrects
            skip, multiplier = kind.standard_term(named)
        features = torch.stack([named[name] for name in self.config.inputs], dim=-1)
        per_sample = kind.per_sample(self.network(features, skip, multiplier))
        return _reduce(per_sample, self.reduction, valid).to(input.dtype)

    def extra_repr(self) -> str:
        out = f"kind={self.config.kind!r}, reduction={self.reduction!r}"
        if self.config.loss_kind.uses_ignore_index:
            out += f", ignore_index={self.ignore_index}"
        return out

    # ----------------------------------------------------------------- freezing

    def freeze(self) -> LearnedLoss:
        """Put the loss in eval mode with ``requires_grad=False`` on every parameter.

        Gradients still flow through the loss to its ``input``. Returns ``self``.
        """
        self.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> LearnedLoss:
        """Make the parameters trainable again (train mode, ``requires_grad=True``).

        Use it to meta-train a loaded loss further. Returns ``self``.

        Example:
            >>> from learnedloss import LearnedLoss
            >>> loss_fn = LearnedLoss.from_pretrained("mse-fit").unfreeze()
            >>> all(p.requires_grad for p in loss_fn.parameters())
            True
        """
        self.requires_grad_(True)
        return self.train()

    # ----------------------------------------------------------------- checkpoints

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        repo_id: str | None = None,
        *,
        push_to_hub: bool = False,
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
            **push_to_hub_kwargs: passed to `push_to_hub` (``token``, ``private``,
                ``revision``, ``create_pr``, ``commit_message``, ...).

        Returns:
            The directory as a ``pathlib.Path``.

        Example:
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
            self.state_dict(),
            library_version=__version__,
            repo_id=repo_id,
        )
        if push_to_hub:
            hub.upload_checkpoint(directory, repo_id, **push_to_hub_kwargs)
        return directory

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
        check_finite: bool = True,
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
            The loss, frozen and in eval mode.

        Raises:
            FileNotFoundError: nothing of that name is found.
            learnedloss.ConfigError: ``config.json`` is malformed or of an unknown version.
            learnedloss.CheckpointError: the weights are pickles, truncated, foreign,
                mis-shaped, incomplete or not finite.
        """
        directory = hub.resolve_checkpoint_dir(
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        checkpoint = hub.read_checkpoint(  # checks shapes before anything is allocated
            directory, expected_tensors=lambda config: hub.module_tensor_shapes(config, cls)
        )
        loss = cls(
            checkpoint.config,
            reduction=reduction,
            ignore_index=ignore_index,
            check_finite=check_finite,
            metadata=checkpoint.metadata,
        )
        loss.load_state_dict_strict(checkpoint.tensors, source=str(directory))
        return loss.to(map_location).freeze()

    def load_state_dict_strict(
        self, tensors: dict[str, torch.Tensor], source: str = "checkpoint"
    ) -> None:
        """Load weights, refusing missing, unexpected, mis-shaped or non-finite tensors.

        Floating-point tensors are cast to this module's dtype.
        """
        expected = self.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{source}: weights do not match the architecture in config.json "
                f"({self.config}): missing tensors {missing}, unexpected tensors {unexpected}"
            )
        mis_shaped = [
            f"{name!r} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
            for name, tensor in sorted(tensors.items())
            if tensor.shape != expected[name].shape
        ]
        if mis_shaped:
            raise CheckpointError(
                f"{source}: tensors do not fit the architecture in config.json "
                f"({self.config}): " + "; ".join(mis_shaped)
            )
        for name, tensor in sorted(tensors.items()):
            if not tensor.is_floating_point():
                raise CheckpointError(
                    f"{source}: tensor {name!r} has dtype {tensor.dtype}, expected floating point"
                )
            if not torch.isfinite(tensor).all():
                raise CheckpointError(f"{source}: tensor {name!r} holds NaN or infinite values")
        self.load_state_dict(tensors, strict=True)

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

        Example:
            >>> loss_fn.push_to_hub("my-org/robust-sine-loss")  # doctest: +SKIP
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
    """Turn off a `LearnedLoss`'s finite-value check for a block (a no-op for other losses).

    The check is data-dependent control flow, which ``torch.func.vmap`` cannot run; the inner
    loop evaluates the loss under vmap inside this block.
    """
    previous = getattr(loss, "check_finite", None)
    if previous is not None:
        loss.check_finite = False
    try:
        yield
    finally:
        if previous is not None:
            loss.check_finite = previous


def _reduce(
    values: torch.Tensor, reduction: str, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce per-element (or per-sample) losses as PyTorch's losses do.

    ``valid`` masks out ignored samples (``ignore_index``): they count 0, and ``'mean'``
    divides by the number left (NaN when none is, as ``F.cross_entropy`` does).
    """
    if valid is not None:
        values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.mean() if valid is None else values.sum() / valid.sum()
