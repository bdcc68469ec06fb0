"""Where mirflow keeps what it compiles on the user's machine: numba's code, one folder per
worker slot and one shared folder; chords.cnn_crf's 8-bit network; madmom_fast's C kernels;
and the file lock under which one worker builds each of them while the others wait.

Its own module because the scheduler (which gives each worker slot its folder), the CLI (which
tells a first run that numba will compile) and plugins (madmom_fast's Viterbi kernel, compiled
once per machine into the shared folder) all need the same paths, and a plugin should not import
the scheduler's internals to find a folder.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cache_root() -> Path:
    """mirflow's folder in the user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirflow"


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on the file ``path`` (made if missing) while the block runs: what one
    worker builds into the cache once per machine, the others wait for and then read. Where
    there is no ``fcntl`` (Windows) the block runs unlocked: builders write their result whole
    (``os.replace``), so two of them only cost the work twice."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def numba_cache_root() -> Path:
    """Where worker slots keep numba's compiled code: the user's cache folder."""
    return cache_root() / "numba"


def numba_cache_dir(slot: str) -> Path:
    """One worker slot's numba cache (a folder per slot: see _start)."""
    return numba_cache_root() / slot


def numba_shared_cache() -> Path:
    """Code that every slot loads from one folder, compiled under a file lock by whichever
    worker needs it first (madmom_fast's Viterbi kernel): not a slot's cache."""
    return numba_cache_root() / "shared"


def numba_cache_is_cold() -> bool:
    """True when no worker slot has compiled anything on this machine yet (a first run after
    an install: numba compiles librosa's functions as the workers import it, ~40 s on 2
    cores), and the workers would use mirflow's caches (NUMBA_CACHE_DIR not set by the user).
    The shared folder does not count: a pipeline without librosa fills only that one."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return False
    root, shared = numba_cache_root(), numba_shared_cache()
    slots = [folder for folder in root.iterdir() if folder.is_dir() and folder != shared] if root.is_dir() else []
    return not any(any(slot.iterdir()) for slot in slots)
