"""Claim files: several ``mirflow run`` processes on one folder never do a file twice.

A claim is ``.NAME.claim`` beside the result, created with O_EXCL (atomic on local and
NFSv3+ file systems) and holding ``host pid``. A claim whose process is gone (same host)
is stale and taken over; one on another host is left alone. Scratch folders for decoded
audio follow the same rule: named after their process, removed once it is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
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
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_dir(prefix: str) -> str:
    """A fresh temporary folder named after this process, after removing those of dead ones.

    A run killed outright (SIGKILL, power loss) cannot clean up after itself, and decoded
    audio of long files is large, so the next run removes what such runs left behind.
    """
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{prefix}*"):
        match = re.fullmatch(re.escape(prefix) + r"(\d+)-\w+", old.name)
        if match and not process_alive(int(match.group(1))):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
