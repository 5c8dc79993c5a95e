"""Losses that ship inside the package (the top-level ``pretrained/`` folder of the repository).

The build maps ``pretrained/`` to the sub-package ``learnedloss.pretrained``, so a bundled loss
is found the same way from a source checkout, an editable install and a regular wheel install.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured"
"""What the catalogue says where a loss's card has no measured figure."""


def _bundle_root() -> Path:
    return Path(str(resources.files("learnedloss.pretrained")))


def bundled_names() -> list[str]:
    """Names of the losses bundled with this installation, sorted.

    Examples:
        >>> from learnedloss import bundled_names
        >>> "mse-fit" in bundled_names()
        True
    """
    root = _bundle_root()
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and (entry / "config.json").is_file()
    )


def bundled_path(name: str) -> Path | None:
    """The directory of the bundled loss called ``name``, or None if there is none."""
    if name not in bundled_names():
        return None
    return _bundle_root() / name


@dataclass(frozen=True)
class BundledEntry:
    """What a newcomer needs to choose a bundled loss, read from its ``config.json``.

    The figures live once, in the ``catalog`` block of the loss's metadata; the form is read
    from its architecture fields.

    Attributes:
        name: the bundled name.
        replaces: the standard loss it stands in for (``nn.MSELoss``, ...).
        use: what it is for, in one short phrase.
        vs_standard: its measured verdict against the loss it replaces, as its card states it.
        vs_best_tuned: its measured verdict against the best tuned alternative loss.
        form: how it computes (``grid``, ``MLP 16-16``, ``Taylor``) and its residual form.
        cost: its cost per call relative to the standard loss, or `NOT_MEASURED`.
        experimental: True where its per-call cost is far above the standard loss's, or it
            fails `check`'s whole-range ``monotone`` criterion (it dips somewhere).
        experimental_reason: why it is experimental (empty otherwise).
    """

    name: str
    replaces: str
    use: str
    vs_standard: str
    vs_best_tuned: str
    form: str
    cost: str
    experimental: bool
    experimental_reason: str


def bundled_catalog() -> list[BundledEntry]:
    """One `BundledEntry` per bundled loss, in `bundled_names` order.

    Examples:
        >>> from learnedloss.bundled import bundled_catalog
        >>> [entry.experimental for entry in bundled_catalog() if entry.name == "mse-fit"]
        [True]
    """
    return [_entry(name) for name in bundled_names()]


def experimental_names() -> list[str]:
    """Names of the bundled losses marked experimental (their per-call cost is far above the
    standard loss's, or not measured for an MLP over side inputs), sorted."""
    return [entry.name for entry in bundled_catalog() if entry.experimental]


def _entry(name: str) -> BundledEntry:
    data = json.loads((_bundle_root() / name / "config.json").read_text(encoding="utf-8"))
    catalog = data.get("metadata", {}).get("catalog", {})
    return BundledEntry(
        name=name,
        replaces=catalog.get("replaces", NOT_MEASURED),
        use=catalog.get("use", ""),
        vs_standard=catalog.get("vs_standard", NOT_MEASURED),
        vs_best_tuned=catalog.get("vs_best_tuned", NOT_MEASURED),
        form=_form(data),
        cost=_cost(catalog.get("cost_per_call")),
        experimental=bool(catalog.get("experimental", False)),
        experimental_reason=catalog.get("experimental_reason", ""),
    )


def _form(architecture: dict[str, Any]) -> str:
    parameterization = architecture.get("parameterization", "mlp")
    if parameterization == "mlp":
        hidden = architecture.get("hidden_sizes", [])
        computes = f"MLP {'-'.join(map(str, hidden))}" if hidden else "linear"
    else:
        computes = {"grid": "grid", "taylor": "Taylor"}.get(parameterization, parameterization)
    if not architecture.get("residual", False):
        return f"{computes}, no residual"
    return f"{computes}, residual {architecture.get('residual_form', 'add')}"


def _cost(cost: dict[str, Any] | None) -> str:
    if not cost:
        return NOT_MEASURED
    text = f"{cost['ratio']:g}x {cost['baseline']} at {cost['elements']} elements"
    large = cost.get("large", {}).values()
    if not large:
        return text
    return f"{text}, {min(large):g}-{max(large):g}x at large sizes"
