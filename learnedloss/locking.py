"""Inter-process locks on directories: one writer at a time per checkpoint or run directory.

A lock is a `filelock.FileLock` on a file named after the directory's real path (a hash of
it), kept in one lock folder (`lock_folder`) rather than in the directory itself, so that a
checkpoint directory holds exactly its files and a lock works for directories a process may
read but not write (the Hub cache, an installed package). The operating system releases a
lock when its process dies, so a killed writer never leaves a stale lock behind.

Processes exclude each other when they see the same lock folder: every process of a user on
one machine does by default; set ``LEARNEDLOSS_LOCK_DIR`` to a folder on a shared file
system to exclude processes on several machines (or of several users) too.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_DIR_ENV = "LEARNEDLOSS_LOCK_DIR"
"""Environment variable naming the folder that holds the lock files (see `lock_folder`)."""


def lock_folder() -> Path:
    """The folder of the lock files: ``$LEARNEDLOSS_LOCK_DIR``, else
    ``$XDG_CACHE_HOME/learnedloss/locks`` (``~/.cache/learnedloss/locks``), else, where that
    cannot be made, a folder of this user's in the temporary directory."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "learnedloss" / "locks"


def _fallback_folder() -> Path:
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): the numeric id
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"learnedloss-locks-{user}"


def lock_file(directory: str | os.PathLike, purpose: str) -> Path:
    """The lock file of ``directory`` for ``purpose`` (``"checkpoint"``, ``"run"``): one per
    real path, so two spellings of a directory (a symlink, a relative path) share it.

    Raises:
        OSError: no lock folder can be made.
    """
    real = os.path.realpath(os.fspath(directory))
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:40]
    name = f"{purpose}-{digest}.lock"
    folder = lock_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        if os.environ.get(LOCK_DIR_ENV):
            raise
        folder = _fallback_folder()
        folder.mkdir(parents=True, exist_ok=True)
    return folder / name


class DirectoryLock:
    """An inter-process lock on a directory, for one purpose.

    Args:
        directory: the directory (it need not exist yet).
        purpose: which lock of the directory (a checkpoint's writes, a run's ownership).

    Examples:
        >>> import tempfile
        >>> lock = DirectoryLock(tempfile.mkdtemp(), "example")
        >>> with lock.hold(timeout=1) as taken:
        ...     taken, lock.held
        (True, True)
        >>> lock.held
        False
    """

    def __init__(self, directory: str | os.PathLike, purpose: str) -> None:
        self.directory = Path(directory)
        self.purpose = purpose
        self._lock: FileLock | None = None
        self.lock_file: Path | None = None  # known once acquire was called

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._lock is not None and self._lock.is_locked

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (0: not at all). Taking a lock
        this object holds already does nothing.

        Returns:
            Whether this object holds the lock now (False: another process held it all the
            time allowed).

        Raises:
            OSError: no lock file can be made.
        """
        if self.held:
            return True
        self.lock_file = lock_file(self.directory, self.purpose)
        lock = FileLock(str(self.lock_file), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._lock = lock
        return True

    def release(self) -> None:
        """Let the lock go (nothing if it is not held)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[bool]:
        """Hold the lock for a block, which gets whether it was taken (`acquire`); a lock
        held before the block stays held after it."""
        was_held = self.held
        taken = self.acquire(timeout)
        try:
            yield taken
        finally:
            if taken and not was_held:
                self.release()
