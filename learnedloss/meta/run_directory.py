"""`RunDirectory`: where a meta-training run keeps its checkpoints, and the rules for it.

A fresh run claims its directory: one that holds files is refused, unless the run was asked
to overwrite, which removes the trainer's own files there (`learnedloss.meta.state`) and
leaves every other file. A resumed run reads the newest checkpoint and is refused when it
was made with other settings, another meta-optimizer or another meta-validation set. In a
data-parallel job rank 0 looks at the directory, reads and writes, and every rank gets its
verdict, so all ranks raise or none does (docs/meta-training.md, "Run directories").

One run at a time: a run holds the directory's inter-process lock (`learnedloss.locking`)
from its claim or resume until `release` (the end of ``fit``), so a second run started
into the same directory, in another process, is refused before it trains, and can never
prune the first one's checkpoints. A checkpoint that cannot be resumed (a file missing,
truncated or corrupt, a key missing or of the wrong type, NaN weights, a ``latest`` that
points elsewhere) is a `CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from learnedloss.errors import CheckpointError, RunDirectoryError
from learnedloss.hub import read_capped
from learnedloss.locking import DirectoryLock
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
        self._lock = DirectoryLock(self.path, "run")

    # ------------------------------------------------------------------ one run at a time

    def hold(self) -> None:
        """Take the directory's lock for this run (this process), unless another run holds
        it; `release` lets it go.

        Raises:
            RunDirectoryError: another process holds it (a run writing there now).
        """
        try:
            taken = self._lock.acquire(timeout=0)
        except OSError as err:
            raise RunDirectoryError(f"cannot lock run_dir {str(self.path)!r}: {err}") from None
        if not taken:
            raise RunDirectoryError(
                f"run_dir {str(self.path)!r} is in use: another run (another process) is "
                f"writing checkpoints there now (it holds the lock {self._lock.lock_file}). "
                "Two runs in one directory would replace and prune each other's checkpoints: "
                "wait for that run to finish (then resume it), or choose another run_dir"
            )

    def release(self) -> None:
        """Let the directory's lock go (the run stopped writing; nothing if not held)."""
        self._lock.release()

    def _on_main(self, action: Callable[[], None], what: str) -> None:
        """Run ``action`` on rank 0 and raise its `RunDirectoryError` (or `CheckpointError`)
        on every rank."""
        problem: Exception | None = None
        if self._ranks.is_main:
            try:
                action()
            except (RunDirectoryError, CheckpointError) as err:  # re-raised on every rank
                problem = err
        if self._ranks.active:
            problem = self._ranks.broadcast(problem, what)
        if problem is not None:
            raise problem

    # ------------------------------------------------------------------ fresh runs

    def claim(self, overwrite: bool) -> None:
        """Before a fresh run writes here: take the directory's lock (`hold`), and refuse a
        directory that holds files, or with ``overwrite`` remove the trainer's checkpoints
        there (once; on rank 0).

        Raises:
            RunDirectoryError: another run holds the directory, it is a file, or it holds
                files and not ``overwrite``; on every rank of a data-parallel job.
        """
        self._on_main(lambda: self._hold_and_check(overwrite), "checking the run directory")
        self.claimed = True

    def _hold_and_check(self, overwrite: bool) -> None:
        was_held = self._lock.held
        self.hold()
        try:
            if not self.claimed:
                self.check_free(overwrite)
        except RunDirectoryError:
            if not was_held:
                self.release()
            raise

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
        raw = read_capped(self.path / "latest", 64) or b"(unreadable)"
        return raw.decode("utf-8", errors="replace").strip()

    def write(self, step: int, state: Callable[[], dict[str, Any]]) -> Path:
        """Write ``state()`` as checkpoint ``step`` (atomically) and prune older ones.

        In a data-parallel job only rank 0 builds and writes the state; the others return
        the directory rank 0 writes. A run that has not claimed the directory claims it
        first (without overwriting)."""
        if not self._ranks.is_main:
            return self.path / f"step-{step:07d}"
        was_held = self._lock.held
        self.hold()  # written outside fit: held for this write only
        try:
            if not self.claimed:  # written before any fit: the directory must be free too
                self.check_free(overwrite=False)
                self.claimed = True
            return checkpoints.write_state(self.path, step, state(), keep=self.keep)
        finally:
            if not was_held:
                self.release()

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
            RunDirectoryError: another run holds the directory, or the checkpoint was made
                with other settings, meta-optimizer settings or another meta-validation set.
            CheckpointError: the checkpoint is corrupt (`check_resumable`).
        """
        self._on_main(self.hold, "locking the run directory")
        state = self.read()
        self._on_main(
            lambda: check_resumable(
                state, checkpoints.latest_checkpoint(self.path) / checkpoints.STATE_NAME
            ),
            "checking the checkpoint on rank 0",
        )
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


RESUMABLE_STATE = {
    "identity": (dict,),
    "step": (int,),
    "skips": (int,),
    "path": (str,),
    "path_reason": (str, type(None)),
    "history": (list,),
    "best": (dict,),
    "loss": (dict,),
    "meta_optimizer": (dict,),
    "generator": (torch.Tensor,),
}
"""The entries a trainer checkpoint needs to be resumed, and their types (others, such as
``validation`` and ``moved``, are optional: older checkpoints lack them)."""
_RESUMABLE_PARTS = {
    "best": {"score": (int, float, type(None)), "step": (int,), "weights": (dict, type(None))},
    "meta_optimizer": {"state": (dict,), "param_groups": (list,)},
}


def check_resumable(state: Any, source: Path) -> None:
    """Refuse a checkpoint a run cannot continue: an entry of `RESUMABLE_STATE` missing or
    of the wrong type (a ``bool`` is no count), a negative step, or weights that are not
    tensors.

    Raises:
        CheckpointError: naming ``source`` (the checkpoint's ``state.json``) and the entry.
    """

    def refuse(what: str) -> CheckpointError:
        return CheckpointError(
            f"{source} cannot be resumed: {what}. The file is corrupt "
            "or from another program: restore it, or start a fresh run"
        )

    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not an object")
    for part, fields in [(None, RESUMABLE_STATE), *_RESUMABLE_PARTS.items()]:
        holder = state if part is None else state[part]
        for key, types in fields.items():
            name = key if part is None else f"{part}.{key}"
            if key not in holder:
                raise refuse(f"the entry {name!r} is missing")
            value = holder[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                expected = " or ".join(t.__name__ for t in types)
                raise refuse(f"{name!r} is {value!r:.80}, expected {expected}")
    if state["step"] < 0 or state["skips"] < 0:
        raise refuse(f"step {state['step']} and skips {state['skips']} must be >= 0")
    if not all(isinstance(t, torch.Tensor) for t in state["loss"].values()):
        raise refuse("the loss's weights are not all tensors")


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
