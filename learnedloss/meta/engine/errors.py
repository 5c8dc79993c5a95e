"""The one error the engine raises when it cannot take a set-up."""

from __future__ import annotations


class EngineUnsupported(ValueError):
    """The batched engine cannot run this model, loss, task or optimizer.

    Its message is one line saying why; the caller falls back to the vmap path of
    `learnedloss.meta.inner.InnerLoop`, which runs any model ``torch.func`` can take.
    """
