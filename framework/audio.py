"""Decode once, mix down and resample once per wanted rate, and plan chunks.

No analyzer decodes on its own: the runner decodes each file here, and every
analyzer that wants the same (sample rate, channel layout) shares one array.
All audio handed to analyzers is float32 (madmom caches its FFT window on a
processor's first call, so mixing dtypes across files gives garbage silently).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DecodeError(Exception):
    """An input that cannot be read as audio; the message names the file."""


@dataclass(frozen=True)
class ChunkSpan:
    """Where a chunk lies in the track, and the core region it owns.

    Neighbouring chunks overlap; each overlap is split at its middle, so the core
    regions tile the track without gaps or doubles.
    """

    index: int
    start: float
    end: float
    core_start: float
    core_end: float

    def owns(self, time: float, last: bool) -> bool:
        """Whether an event at ``time`` belongs to this chunk (half-open, last closed)."""
        if last:
            return self.core_start <= time <= self.core_end
        return self.core_start <= time < self.core_end


def plan_chunks(
    duration: float,
    *,
    enabled: bool = True,
    min_duration: float = 60.0,
    length: float = 120.0,
    overlap: float = 10.0,
) -> list[ChunkSpan]:
    """Split ``duration`` seconds into chunks of ``length`` with ``overlap``.

    Files not longer than ``min_duration`` (or with chunking off) are one chunk. The
    last chunk may be shorter than ``length``; it always reaches past the overlap.
    """
    if not enabled or duration <= min_duration or duration <= length:
        return [ChunkSpan(0, 0.0, duration, 0.0, duration)]
    step = length - overlap
    count = max(1, math.ceil((duration - overlap) / step))
    starts = [i * step for i in range(count)]
    ends = [min(start + length, duration) for start in starts]
    spans = []
    for i in range(count):
        core_start = 0.0 if i == 0 else (starts[i] + ends[i - 1]) / 2
        core_end = duration if i == count - 1 else (starts[i + 1] + ends[i]) / 2
        spans.append(ChunkSpan(i, starts[i], ends[i], core_start, core_end))
    return spans


@dataclass
class Chunk:
    """The audio of one chunk as one analyzer wants it, plus where it lies.

    ``samples`` is float32, 1-D for mono or (channels, samples) for ``all``; it is a
    view into the shared track array, not a copy. ``start`` is the exact time of
    its first sample.
    """

    index: int
    start: float
    end: float
    core_start: float
    core_end: float
    samples: np.ndarray
    sample_rate: int
    path: str

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    def is_silent(self, floor_db: float = -70.0) -> bool:
        """True when the chunk's RMS is below ``floor_db`` dBFS (digital silence, hum-free)."""
        return bool(rms_db(self.samples) < floor_db)


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


@dataclass
class Decoded:
    """A decoded file: float32 samples shaped (frames, channels) at the file's rate."""

    path: str
    samples: np.ndarray
    sample_rate: int
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    def audio(self, sample_rate: int | None, channels: str, quality: str = "HQ") -> np.ndarray:
        """The track mixed and resampled as asked, computed once per (rate, layout)."""
        rate = sample_rate or self.sample_rate
        key = (rate, channels)
        if key not in self._cache:
            if channels == "mono":
                mono = self.samples.mean(axis=1, dtype=np.float32) if self.channels > 1 else self.samples[:, 0]
                data = resample(mono, self.sample_rate, rate, quality)
            else:
                data = resample(self.samples, self.sample_rate, rate, quality).T
            self._cache[key] = np.ascontiguousarray(data, dtype=np.float32)
        return self._cache[key]

    def chunk(self, span: ChunkSpan, sample_rate: int | None, channels: str, quality: str = "HQ") -> Chunk:
        """A view of one span of the track as one analyzer wants it."""
        rate = sample_rate or self.sample_rate
        data = self.audio(rate, channels, quality)
        first = int(round(span.start * rate))
        last = int(round(span.end * rate))
        return Chunk(
            index=span.index,
            start=first / rate,
            end=span.end,
            core_start=span.core_start,
            core_end=span.core_end,
            samples=data[..., first:last],
            sample_rate=rate,
            path=self.path,
        )


def resample(samples: np.ndarray, source_rate: int, target_rate: int, quality: str = "HQ") -> np.ndarray:
    """Resample along the first axis with soxr (band-limited, linear time)."""
    if source_rate == target_rate:
        return samples
    import soxr

    return soxr.resample(samples, source_rate, target_rate, quality=quality)


def decode(path: str | Path) -> Decoded:
    """Read a file as float32 with soundfile; audioread (ffmpeg) only if soundfile cannot."""
    path = str(path)
    if not Path(path).is_file():
        raise DecodeError(f"{path}: no such file")
    try:
        import soundfile

        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as first_error:
        try:
            samples, rate = _decode_with_audioread(path)
        except Exception:
            reason = str(first_error).replace(path, "").strip(" :'\"") or type(first_error).__name__
            raise DecodeError(f"{path}: cannot decode audio ({reason})") from None
    if samples.shape[0] == 0:
        raise DecodeError(f"{path}: contains no audio samples")
    if not np.all(np.isfinite(samples)):
        raise DecodeError(f"{path}: contains NaN or infinite samples")
    return Decoded(path=path, samples=samples, sample_rate=int(rate))


def _decode_with_audioread(path: str) -> tuple[np.ndarray, int]:
    import audioread

    with audioread.audio_open(path) as source:
        rate, channels = source.samplerate, source.channels
        data = b"".join(source)
    pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return pcm.reshape(-1, channels), rate


def file_sha256(path: str | Path) -> str:
    """Content hash of the file's bytes (part of the result and of resume checks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
