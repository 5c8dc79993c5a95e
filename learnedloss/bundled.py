"""Losses that ship inside the package (the top-level ``pretrained/`` folder of the repository).

The build maps ``pretrained/`` to the sub-package ``learnedloss.pretrained``, so a bundled loss
is found the same way from a source checkout, an editable install and a regular wheel install.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


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
