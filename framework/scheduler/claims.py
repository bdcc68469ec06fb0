"""Claim files: several ``mirflow run`` processes on one folder never do a file twice.

A claim is ``.NAME.claim`` beside the result, created with O_EXCL (atomic on local and
NFSv3+ file systems) and holding ``host pid``. A claim whose process is gone (same host)
is stale and taken over; one on another host is left alone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Claim:
    path: Path

    @classmethod
    def take(cls, directory: Path, name: str) -> Claim | None:
        """The claim on ``name``, or None when a live process holds it."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f".{name}.claim"
        for _ in range(2):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(path):
                    return None
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as out:
                out.write(f"{socket.gethostname()} {os.getpid()}\n")
            return cls(path)
        return None

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _stale(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return False  # being written right now, or unreadable: treat as held
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return True  # left by this very process (an earlier, interrupted run in it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
