"""Fused CPU kernels: the fast path of the frozen bundled losses as ``torch.library`` ops.

The kernels are C++ sources shipped with the package (``learnedloss/kernels/csrc``). They are
compiled once per machine and torch version, with the compiler the machine has, into a
cache directory (`build_directory`): ``learnedloss build-kernels`` does it ahead of time (the
README's install command runs it), and otherwise the first frozen loss call that can use them
builds them (about a minute on 2 cores) after a one-line notice. Where they cannot be built (no
C++ compiler, a read-only cache) a one-line notice says so and the eager fast path, which is
their reference, computes the same values. `KERNELS_SETTING` set to ``off`` never builds nor
loads them.

Once loaded, the ops live in ``torch.ops.learnedloss``:

- ``monotone_regression``: a frozen monotone regression loss's value and input gradient
  (`learnedloss.functional.monotone`); ``monotone_regression_loss`` is the same loss with its
  own autograd node (the backward scales the gradient the forward computed; under
  ``create_graph`` it recomputes it differentiably);
- ``grid_classification``: a frozen grid classification loss's value and logit gradient
  (`learnedloss.functional.classification`).

Each op computes a call's value and its input gradient in one pass; the autograd glue, and
the decision of which path a call takes, stay in `learnedloss.functional`. Inside
``with kernels.disabled():`` a thread's calls take the eager paths, the kernels' reference.
"""

from __future__ import annotations

from learnedloss.kernels.loader import (
    KERNELS_SETTING,
    active,
    build,
    build_directory,
    disabled,
    kernels_enabled,
    load,
    loaded,
)

__all__ = [
    "KERNELS_SETTING",
    "active",
    "build",
    "build_directory",
    "disabled",
    "kernels_enabled",
    "load",
    "loaded",
]
