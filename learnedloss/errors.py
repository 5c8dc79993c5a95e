"""Exceptions raised by learnedloss. Each message says what was expected and what came."""


class ConfigError(ValueError):
    """A loss configuration or ``config.json`` is malformed, unknown or unsupported."""


class CheckpointError(ValueError):
    """A checkpoint's weights are missing, foreign, truncated, mis-shaped or not finite."""


class LossInputError(ValueError, TypeError):
    """A loss was called with inputs it cannot take: not tensors, the wrong dtype, shapes that
    differ or do not match the kind, undeclared or missing side inputs, out-of-range class
    indices, or (with ``check_finite=True``) non-finite values. It is both a `ValueError`
    and a `TypeError`, the built-in types these were raised as before, so existing
    ``except`` clauses keep working. Nothing is computed when it is raised."""


class ScheduleError(ValueError, TypeError):
    """``loss.progress(step, total)`` was given a step or total it cannot take (not a finite
    number, a negative step, a total that is not positive). The loss's progress is left as it
    was. Both a `ValueError` and a `TypeError`, as `LossInputError` is."""


class LossNotFoundError(FileNotFoundError):
    """``from_pretrained`` found no loss under a name: not a directory, not a bundled loss,
    not a readable Hub repo (or revision), or not in the local Hub cache when offline."""


class CardWarning(UserWarning):
    """A checkpoint's model card (``README.md``) could not be read; the loss loads without it.

    The card is documentation only: the loss's architecture and weights come from
    ``config.json`` and ``model.safetensors``, so a broken card never blocks loading.
    """


class RunDirectoryError(ValueError):
    """A run directory cannot be used as asked: a fresh run was pointed at a directory that
    already holds files (another run's checkpoints, say), or a run cannot resume from the
    checkpoint there (it was made with other settings, another meta-optimizer or another
    meta-validation set). Nothing has been written or deleted when it is raised."""


class TaskModelError(ValueError):
    """A task family's model cannot be trained by the inner loop: it has no parameters, or
    every parameter is frozen (``requires_grad=False``). Raised before any task is trained."""


class MetaTrainingStalled(RuntimeError):
    """Meta-training ran but never changed the loss: its meta-gradient was zero at every
    outer step (e.g. a loss of one kind meta-trained on tasks of another, or an inner loop
    that does not move the models). The run's result would be the untrained loss."""


class MetaTrainingDiverged(RuntimeError):
    """The meta-gradient was not finite for too many consecutive outer steps, or for every
    outer step of a run (whose loss is then the untrained one)."""


class DistributedError(RuntimeError):
    """A collective failed or timed out: another rank failed, stopped or hung."""


class UnknownFamilyError(LookupError):
    """No registered family has that name."""


class CommandLineError(SystemExit):
    """A mistake on the command line. Exits with status 2; ``str()`` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message
