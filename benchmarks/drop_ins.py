"""The bundled losses that drop in for a standard PyTorch loss, and those that cannot.

A drop-in is called exactly like the loss it replaces, ``loss(input, target)``. Bundled losses
that read side inputs (``velocity=...``, ``x=...``) need more than that; they are listed as left
out, with the side inputs they read, so that a table can say why a row is missing.

Used by benchmarks/step_overhead.py and benchmarks/call_profile.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from learnedloss import LearnedLoss, bundled_names

STANDARD_LOSS = {"regression": nn.MSELoss, "classification": nn.CrossEntropyLoss}


@dataclass(frozen=True)
class BundledOfKind:
    """The bundled losses of one kind.

    Attributes:
        drop_ins: name -> loss (frozen, as ``from_pretrained`` returns it), in bundled order.
        left_out: name -> the side inputs it reads, for losses that are not drop-ins.
    """

    drop_ins: dict[str, LearnedLoss]
    left_out: dict[str, tuple[str, ...]]


def bundled_of_kind(kind: str, only: list[str] | None = None) -> BundledOfKind:
    """Load the bundled losses of ``kind`` (``"regression"`` or ``"classification"``).

    Args:
        kind: the loss kind to keep; losses of other kinds are not mentioned.
        only: if given, keep only these names: bundled names, or directories (and Hub ids)
            of other saved losses, which are loaded too.
    """
    drop_ins: dict[str, LearnedLoss] = {}
    left_out: dict[str, tuple[str, ...]] = {}
    bundled = list(bundled_names())
    for name in bundled + [name for name in only or () if name not in bundled]:
        if only is not None and name not in only:
            continue
        loss = LearnedLoss.from_pretrained(name)
        if loss.config.kind != kind:
            continue
        side_inputs = tuple(loss.config.side_inputs)
        if side_inputs:
            left_out[name] = side_inputs
        else:
            drop_ins[name] = loss
    return BundledOfKind(drop_ins, left_out)


def form_of(loss: nn.Module) -> str:
    """A short label of how a loss computes: ``grid``/``mlp``/``taylor`` and its residual form,
    or ``standard`` for a PyTorch loss."""
    config = getattr(loss, "config", None)
    if config is None:
        return "standard"
    parameterization = getattr(config, "parameterization", "?")
    if not getattr(config, "residual", False):
        return parameterization
    return f"{parameterization}, {getattr(config, 'residual_form', '?')} form"
