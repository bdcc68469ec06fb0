"""What a WAV file's header declares, to tell a truncated file from a short song.

libsndfile quietly reports the frames a truncated WAV really holds, so a file whose header
promises 10 s and holds 3.3 s would pass for a 3.3 s song. The header's data-chunk size says
what was meant; the decoder compares it with what it read and notes a shortfall.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAX_CHUNKS = 64  # chunks walked before the data chunk: a header is never longer in practice


def declared_seconds(path: str | Path) -> float | None:
    """The duration a RIFF/WAVE header declares for its audio (data-chunk bytes / byte rate);
    None when the file is not such a WAV or leaves the size open, as streaming writers do."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = None
            for _ in range(MAX_CHUNKS):
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"data":
                    return size / byte_rate if byte_rate and size not in (0, 0xFFFFFFFF) else None
                if name == b"fmt ":
                    body = handle.read(min(size, 16))
                    if len(body) < 12:
                        return None
                    byte_rate = struct.unpack("<I", body[8:12])[0]
                    size -= len(body)
                handle.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def shortfall_note(path: str | Path, seconds: float) -> str | None:
    """A note when the file holds less audio than its header declares (a cut download or copy)."""
    declared = declared_seconds(path)
    if declared is None or declared - seconds <= 0.001:
        return None
    return f"file shorter than its header: the header declares {declared:.1f} s, the file holds {seconds:.1f} s"
