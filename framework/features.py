"""Features computed once per chunk and shared by every analyzer that asks for them.

Two analyzers of one pipeline that both need, say, the CQT chroma of a chunk (the key and
the template chords) may run in different worker processes. The first to ask computes it
and leaves it beside the chunk's memory-mapped audio in the run's temporary folder; the
others load it (a second asker while it is being computed waits for it rather than
computing it again). The files (and their lock files) go when the file's audio does.
Outside the scheduler (a chunk made by hand) features are simply computed.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

COMPUTED: Counter = Counter()  # feature name -> computations in this process (tests count them)

try:  # POSIX: a lock the kernel releases when its holder dies
    import fcntl
except ImportError:  # Windows: no sharing between workers, each computes what it needs
    fcntl = None


def shared(chunk, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``'s array for this chunk, computed once per chunk and run.

    ``name`` must say everything the value depends on besides the chunk's audio and sample
    rate (e.g. ``"chroma_cqt-hop2048"``). The first asker holds an ``flock`` on a lock file
    while it computes; the others block on it and then load the file. A holder that dies
    (killed, or crashed in a library) releases the lock with its process: the next asker
    computes it instead of waiting for a file that will never come.
    """
    prefix = getattr(chunk, "cache_prefix", None)
    if prefix is None or fcntl is None:
        return _compute(name, compute)
    target = Path(f"{prefix}.{chunk.index}.{name}.npy")
    if target.exists():
        return np.load(target)
    with open(target.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.exists():
                return np.load(target)
            value = _compute(name, compute)
            partial = target.with_suffix(".partial.npy")
            np.save(partial, value)
            os.replace(partial, target)  # others see all of it or nothing
            return value
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compute(name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    COMPUTED[name] += 1
    return np.asarray(compute())
