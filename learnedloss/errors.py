"""Exceptions raised by learnedloss. Each message says what was expected and what came."""


class ConfigError(ValueError):
    """A loss configuration or ``config.json`` is malformed, unknown or unsupported."""


class CheckpointError(ValueError):
    """A checkpoint's weights are missing, foreign, truncated, mis-shaped or not finite."""


class CardWarning(UserWarning):
    """A checkpoint's model card (``README.md``) could not be read; the loss loads without it.

    The card is documentation only: the loss's architecture and weights come from
    ``config.json`` and ``model.safetensors``, so a broken card never blocks loading.
    """
