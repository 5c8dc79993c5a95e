"""Exceptions raised by learnedloss. Each message says what was expected and what came."""


class ConfigError(ValueError):
    """A loss configuration or ``config.json`` is malformed, unknown or unsupported."""


class CheckpointError(ValueError):
    """A checkpoint's weights are missing, foreign, truncated, mis-shaped or not finite."""
