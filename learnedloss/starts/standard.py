"""The standard losses a grid or Taylor loss can start as, and how to look one up by name."""

from __future__ import annotations

from learnedloss.errors import ConfigError

STANDARD_STARTS: dict[str, tuple[str, str]] = {
    "mse": ("regression", "square"),
    "huber": ("regression", "huber"),
    "cross_entropy": ("classification", "identity"),
}
"""What each start is: the kind and the output activation of the residual term."""


def standard_start(start: str) -> tuple[str, str]:
    """The kind and output activation of the standard loss ``start`` names.

    Args:
        start: a key of `STANDARD_STARTS`; dashes may stand for underscores, and ``"ce"`` for
            ``"cross_entropy"``.

    Returns:
        tuple[str, str]: the loss kind and the residual term's output activation.

    Raises:
        ConfigError: ``start`` names no standard loss.

    Examples:
        >>> from learnedloss.starts.standard import standard_start
        >>> standard_start("cross-entropy")
        ('classification', 'identity')
    """
    name = start.replace("-", "_")
    if name == "ce":
        name = "cross_entropy"
    if name not in STANDARD_STARTS:
        raise ConfigError(f"start must be one of {list(STANDARD_STARTS)}, got {start!r}")
    return STANDARD_STARTS[name]
