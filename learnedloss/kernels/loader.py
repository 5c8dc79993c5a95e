"""Build, cache and load the fused CPU kernels (see `learnedloss.kernels`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from learnedloss.kernels.fakes import register_fakes

KERNELS_SETTING = "LEARNEDLOSS_KERNELS"
"""The environment variable that switches the fused kernels: ``auto`` (the default: load them,
building them on first use) or ``off`` (never build nor load them: the eager fast path)."""

CACHE_SETTING = "LEARNEDLOSS_KERNELS_DIR"
"""The environment variable naming the directory the kernels are built in (default: the user's
cache, ``~/.cache/learnedloss/kernels``)."""

SOURCES = tuple(sorted((Path(__file__).parent / "csrc").glob("*.cpp")))
"""The C++ sources of the kernels, compiled into one library."""

BASE_FLAGS = ("-O3", "-fopenmp-simd")
"""The flags the library is always compiled with (``-fopenmp-simd``: the kernels' loops
declare their sums as vector reductions)."""

VECTOR_FLAGS = {"AVX2": ("-mavx2", "-mfma"), "AVX512": ("-mavx2", "-mfma")}
"""Extra flags by the CPU capability torch reports (the library is built on the machine that
runs it)."""


def compiler_flags() -> tuple[str, ...]:
    """The flags the library is compiled with here (part of its cache key)."""
    capability = torch.backends.cpu.get_cpu_capability()
    return BASE_FLAGS + VECTOR_FLAGS.get(capability, ())


_lock = threading.Lock()
_state: dict[str, bool] = {}
_thread = threading.local()


def kernels_enabled() -> bool:
    """Whether `KERNELS_SETTING` lets the kernels load (anything but ``off``)."""
    return os.environ.get(KERNELS_SETTING, "auto").strip().lower() != "off"


@functools.cache
def library_name() -> str:
    """The library's name: its sources, flags and torch version hashed, so that a changed
    source or another torch builds a library of its own (read once per process)."""
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    digest.update(" ".join(compiler_flags()).encode())
    digest.update(torch.__version__.encode())
    return f"learnedloss_kernels_{digest.hexdigest()[:16]}"


def build_directory() -> Path:
    """Where the library is built and cached: `CACHE_SETTING`, or the user's cache."""
    configured = os.environ.get(CACHE_SETTING)
    if configured:
        return Path(configured).expanduser() / library_name()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "learnedloss" / "kernels" / library_name()


def _built_library() -> Path:
    return build_directory() / f"{library_name()}.so"


def build(verbose: bool = False) -> Path:
    """Compile the kernels into `build_directory` (nothing to do where they are built already)
    and load them; returns the library's path. Raises whatever the compiler raises."""
    from torch.utils import cpp_extension

    directory = build_directory()
    directory.mkdir(parents=True, exist_ok=True)
    # torch's own warnings about the compiler's version would add lines to the notice
    torch_logger = logging.getLogger(cpp_extension.__name__)
    level = torch_logger.level
    if not verbose:
        torch_logger.setLevel(logging.ERROR)
    try:
        cpp_extension.load(
            name=library_name(),
            sources=[str(source) for source in SOURCES],
            extra_cflags=list(compiler_flags()),
            build_directory=str(directory),
            is_python_module=False,
            verbose=verbose,
        )
    finally:
        torch_logger.setLevel(level)
    return _built_library()


def load() -> bool:
    """Load the kernels once per process, building them first where they are not built yet;
    True when ``torch.ops.learnedloss`` holds them. A failure is reported once, on one line,
    and the eager fast path is used from then on."""
    if "loaded" in _state:
        return _state["loaded"]
    with _lock:
        if "loaded" not in _state:
            _state["loaded"] = kernels_enabled() and _load_or_build()
    return _state["loaded"]


def active() -> bool:
    """Whether the losses' calls in this thread use the kernels: loaded (`load`) and not
    inside `disabled`."""
    return not getattr(_thread, "disabled", False) and load()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """A block in which this thread's loss calls take the eager paths, the kernels'
    reference (tests compare the two; the reference fingerprints of release 0.1 are eager)."""
    before = getattr(_thread, "disabled", False)
    _thread.disabled = True
    try:
        yield
    finally:
        _thread.disabled = before


def loaded() -> bool:
    """Whether the kernels are loaded in this process (without trying to load them)."""
    return _state.get("loaded", False)


def compiler() -> str | None:
    """The C++ compiler a build would use (``$CXX``, else ``c++``) where it exists."""
    return shutil.which(os.environ.get("CXX", "c++"))


def _load_or_build() -> bool:
    library = _built_library()
    try:
        if library.exists():
            torch.ops.load_library(str(library))
        elif compiler() is None:
            wanted = os.environ.get("CXX", "c++")
            _notice(
                f"the fused CPU kernels are not available (no C++ compiler: {wanted}); "
                "using eager code"
            )
            return False
        else:
            _notice(
                "building the fused CPU kernels once (about a minute; "
                "`learnedloss build-kernels` does it ahead of time)"
            )
            build()
    except Exception as error:  # no compiler, a read-only cache, a failed compile
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        _notice(f"the fused CPU kernels are not available ({first_line[:160]}); using eager code")
        return False
    register_fakes()
    return True


def _notice(message: str) -> None:
    print(f"learnedloss: {message}", file=sys.stderr, flush=True)
