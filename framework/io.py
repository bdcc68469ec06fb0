"""Files: atomic writes (one file, or a set of files that appear together or not at all), and
a file's content hash.

A result is several files (JSON, JAMS, lab, csv, png); resume trusts what it finds, so a
full disk or a killed process must never leave part of a set. Every file of the set is
written to a temporary file beside its target and synced first; only when all are on disk
are they renamed into place, in the order given (the caller puts the file resume reads last).
A failure removes the temporaries and whatever this attempt already renamed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temp file beside ``path``, then rename: never half-written."""
    write_together([(Path(path), content)])


def write_together(files: list[tuple[Path, str | bytes]]) -> None:
    """Write every ``(path, content)``, all or none: temporaries first, then the renames."""
    temps: list[tuple[str, Path]] = []
    renamed: list[Path] = []
    try:
        for path, content in files:
            temps.append((_write_temp(Path(path), content), Path(path)))
        for temp, path in temps:
            os.replace(temp, path)
            renamed.append(path)
    except BaseException:
        for temp, _ in temps:
            Path(temp).unlink(missing_ok=True)
        for path in renamed:
            path.unlink(missing_ok=True)
        raise


def _write_temp(path: Path, content: str | bytes) -> str:
    """A synced temporary file beside ``path`` holding ``content``, with ordinary permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8") if isinstance(content, str) else content)
            out.flush()
            os.fsync(out.fileno())
        make_ordinary(temp)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def make_ordinary(path: str | Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the permissions of any file the user
    writes (0666 less the umask): results and renders are for sharing, not secrets."""
    os.chmod(path, 0o666 & ~_umask())


def check_writable(directory: str | Path) -> None:
    """Raise OSError unless results can be written to ``directory``: it is a folder this process
    may write in, or the nearest existing one above it is (the run makes the rest). Checked before
    any worker starts, so a read-only or impossible output folder stops a run at once; nothing is
    created here."""
    path = Path(directory).absolute()
    folder = next(p for p in (path, *path.parents) if p.exists())
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def file_sha256(path: str | Path) -> str:
    """Content hash of the file's bytes (part of the result and of resume checks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
