"""`RunDirectory`: where a meta-training run keeps its checkpoints, and the rules for it.

A fresh run claims its directory: one that holds files is refused, unless the run was asked
to overwrite, which removes the trainer's own files there (`learnedloss.meta.state`) and
leaves every other file. A resumed run reads the newest checkpoint and is refused when it
was made with other settings, another meta-optimizer or another meta-validation set. In a
data-parallel job rank 0 looks at the directory, reads and writes, and every rank gets its
verdict, so all ranks raise or none does (docs/meta-training.md, "Run directories").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from learnedloss.errors import RunDirectoryError
from learnedloss.meta import state as checkpoints
from learnedloss.meta.distributed import Ranks

FRESH_RUN_ADVICE = (
    "continue that run with fit(..., resume=True), replace its checkpoints with "
    "fit(..., overwrite=True) (other files stay), or choose an empty run_dir"
)


class RunDirectory:
    """A run's directory: claim, overwrite, checkpoint write/read/prune and resume checks.

    Overwriting is an argument of `claim` (``MetaTrainer.fit(overwrite=True)``), never a
    setting held elsewhere.

    Args:
        path: the directory (made when the first checkpoint is written).
        ranks: the ranks of a data-parallel job (default: one process).
        keep: how many checkpoints to keep (the newest ones).

    Examples:
        >>> import tempfile
        >>> run = RunDirectory(tempfile.mkdtemp())
        >>> run.claim(overwrite=False)
        >>> _ = run.write(1, lambda: {"step": 1})
        >>> run.read()["step"], run.has_checkpoint()
        (1, True)
    """

    def __init__(self, path: str | os.PathLike, ranks: Ranks | None = None, keep: int = 2):
        self.path = Path(path)
        self.keep = keep
        self._ranks = ranks if ranks is not None else Ranks()
        self.claimed = False  # whether this run may write here

    # ------------------------------------------------------------------ fresh runs

    def claim(self, overwrite: bool) -> None:
        """Before a fresh run writes here: refuse a directory that holds files, or with
        ``overwrite`` remove the trainer's checkpoints there (once; on rank 0).

        Raises:
            RunDirectoryError: the directory is a file, or holds files and not
                ``overwrite``; on every rank of a data-parallel job.
        """
        if self.claimed:
            return
        problem: RunDirectoryError | None = None
        if self._ranks.is_main:
            try:
                self.check_free(overwrite)
            except RunDirectoryError as err:  # re-raised on every rank below
                problem = err
        if self._ranks.active:
            problem = self._ranks.broadcast(problem, "checking the run directory on rank 0")
        if problem is not None:
            raise problem
        self.claimed = True

    def check_free(self, overwrite: bool) -> None:
        """Refuse a directory that holds files (with ``overwrite``: clear the trainer's
        own files and accept it). This process only; `claim` is the collective form."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"run_dir {str(self.path)!r} is a file, not a directory")
        entries = self.entries()
        if not entries:
            return
        if overwrite:
            checkpoints.clear_trainer_files(self.path)
            return
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        held = (
            f"the checkpoints of another run (latest: {self.latest_name()})"
            if self.has_checkpoint()
            else f"files ({shown})"
        )
        raise RunDirectoryError(
            f"run_dir {str(self.path)!r} is not empty: it holds {held}. A fresh run there "
            f"would replace or mix with them: {FRESH_RUN_ADVICE}"
        )

    def entries(self) -> list[str]:
        """The names of everything in the directory, sorted (none if it does not exist)."""
        return sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []

    def clear(self, subdirectories: bool = False) -> list[Path]:
        """Remove the trainer's own files (and with ``subdirectories`` those of its
        immediate subdirectories); every other file stays. Returns what was removed."""
        return checkpoints.clear_trainer_files(self.path, subdirectories=subdirectories)

    # ------------------------------------------------------------------ checkpoints

    def has_checkpoint(self) -> bool:
        """Whether the directory holds a checkpoint to resume from."""
        return checkpoints.has_checkpoint(self.path)

    def latest_name(self) -> str:
        """The name of the newest checkpoint (``step-NNNNNNN``)."""
        return (self.path / "latest").read_text().strip()

    def write(self, step: int, state: Callable[[], dict[str, Any]]) -> Path:
        """Write ``state()`` as checkpoint ``step`` (atomically) and prune older ones.

        In a data-parallel job only rank 0 builds and writes the state; the others return
        the directory rank 0 writes. A run that has not claimed the directory claims it
        first (without overwriting)."""
        if not self._ranks.is_main:
            return self.path / f"step-{step:07d}"
        if not self.claimed:  # written before any fit: the directory must be free too
            self.check_free(overwrite=False)
            self.claimed = True
        return checkpoints.write_state(self.path, step, state(), keep=self.keep)

    def read(self) -> dict[str, Any]:
        """The newest checkpoint; in a data-parallel job rank 0 reads it and broadcasts it
        (or the error it met), so every rank resumes from the same state."""
        if not self._ranks.active:
            return checkpoints.read_state(self.path)
        try:
            state: Any = checkpoints.read_state(self.path) if self._ranks.is_main else None
        except Exception as err:  # re-raised on every rank below
            state = err
        state = self._ranks.broadcast(state, "broadcasting the checkpoint from rank 0")
        if isinstance(state, Exception):
            raise state
        return state

    # ------------------------------------------------------------------ resuming

    def resume(
        self,
        identity: dict,
        optimizer_groups: list[dict],
        validation: Callable[[], dict],
    ) -> dict[str, Any]:
        """The newest checkpoint, after checking that this run can continue it.

        Args:
            identity: the settings a resumed run must share (`MetaTrainer`'s identity).
            optimizer_groups: the meta-optimizer's ``state_dict()["param_groups"]``.
            validation: returns the meta-validation set's fingerprint
                (`learnedloss.meta.validation.ValidationSet.fingerprint`).

        Raises:
            RunDirectoryError: the checkpoint was made with other settings, meta-optimizer
                settings or another meta-validation set.
        """
        state = self.read()
        if state["identity"] != identity:
            raise RunDirectoryError(
                f"cannot resume: the checkpoint in {self.path} was made with "
                f"{state['identity']}, this trainer has {identity}"
            )
        changed = optimizer_changes(state["meta_optimizer"]["param_groups"], optimizer_groups)
        if changed:
            raise RunDirectoryError(
                f"cannot resume: the meta-optimizer's settings differ from those of the "
                f"checkpoint in {self.path} ({changed}). A resumed run continues with the "
                "settings it was checkpointed with: give the same meta_optimizer (and meta_lr), "
                "or start a fresh run (another run_dir, or fit(..., overwrite=True))"
            )
        saved = state.get("validation")  # checkpoints before 0.x have none
        if saved is not None and saved != validation():
            raise RunDirectoryError(
                f"cannot resume: the meta-validation set differs from the one the checkpoint "
                f"in {self.path} was scored on ({validation_changes(saved, validation())}), "
                "so its best score would be compared with scores on other tasks. Resume with "
                "the same validation_tasks, validation_size and seed, or start a fresh run "
                "(another run_dir, or fit(..., overwrite=True))"
            )
        self.claimed = True
        return state


def _plain(value: Any) -> Any:
    """An optimizer setting as JSON writes it (tensors and tuples as lists)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def optimizer_changes(saved: list[dict], current: list[dict]) -> str:
    """How an optimizer's param-group settings differ from a checkpoint's ('' if they do
    not); settings only one side has (another torch release) are not compared."""
    if len(saved) != len(current):
        return f"{len(saved)} parameter groups in the checkpoint, {len(current)} now"
    changes = []
    for index, (old, new) in enumerate(zip(saved, current, strict=True)):
        where = f"group {index} " if len(saved) > 1 else ""
        for key in sorted(set(old) & set(new) - {"params"}):
            if _plain(old[key]) != _plain(new[key]):
                changes.append(
                    f"{where}{key}={_plain(old[key])!r} in the checkpoint, {_plain(new[key])!r} now"
                )
    return "; ".join(changes)


def validation_changes(saved: dict, current: dict) -> str:
    """How two validation-set fingerprints differ, in words."""
    old, new = saved.get("tasks"), current.get("tasks")
    if isinstance(old, dict) and isinstance(new, dict):
        pairs = [(f"tasks' {k}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new))]
    else:
        pairs = [("tasks", old, new)]
    pairs.append(("size", saved.get("size"), current.get("size")))
    changes = [f"{what} {a!r} in the checkpoint, {b!r} now" for what, a, b in pairs if a != b]
    return "; ".join(changes) or "the same settings and size, but other tasks were drawn"
