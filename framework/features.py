"""Features computed once per chunk and shared by every analyzer that asks for them.

Two analyzers of one pipeline that both need, say, the CQT chroma of a chunk (the key and
the template chords) may run in different worker processes. The first to ask computes it
and leaves it beside the chunk's memory-mapped audio in the run's temporary folder; the
others load it (a second asker while it is being computed waits for it rather than
computing it again). The files go when the file's audio does. Outside the scheduler (a
chunk made by hand) features are simply computed.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

COMPUTED: Counter = Counter()  # feature name -> computations in this process (tests count them)
WAIT_SECONDS = 600.0  # how long to wait for another worker's computation before doing it here


def shared(chunk, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``'s array for this chunk, computed once per chunk and run.

    ``name`` must say everything the value depends on besides the chunk's audio and sample
    rate (e.g. ``"chroma_cqt-hop2048"``).
    """
    prefix = getattr(chunk, "cache_prefix", None)
    if prefix is None:
        return _compute(name, compute)
    target = Path(f"{prefix}.{chunk.index}.{name}.npy")
    if target.exists():
        return np.load(target)
    lock = target.with_suffix(".lock")
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        deadline = time.monotonic() + WAIT_SECONDS
        while lock.exists() and not target.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if target.exists():
            return np.load(target)
        return _compute(name, compute)  # its computer died or is very slow: do it here
    try:
        value = _compute(name, compute)
        partial = target.with_suffix(".partial.npy")
        np.save(partial, value)
        os.replace(partial, target)  # others see all of it or nothing
        return value
    finally:
        os.close(handle)
        lock.unlink(missing_ok=True)


def _compute(name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    COMPUTED[name] += 1
    return np.asarray(compute())
