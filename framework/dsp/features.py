"""The spectral features analyzers share (key, template chords, tempo, curves, sections): each
computed once per chunk.

Every function takes a chunk (22050 Hz mono) and returns its feature through
:func:`mirflow.features.shared`, so the key, the template chords, the tempo and the
curves of one pipeline never compute the same spectrogram twice, whichever worker runs
them. Features start at the chunk's first sample on the track's frame grid, so the frames
of all chunks fall on one grid: frame ``n`` is centred at ``first_frame_time(chunk) + n *
hop / 22050`` s of the chunk, a multiple of ``hop / 22050`` s of the track.
"""

from __future__ import annotations

import numpy as np

from ..analyzer import Analyzer
from ..features import shared

from . import librosa_port

RATE = 22050
HOP = 2048  # chroma and curve frames: ~10.8 per second
ONSET_HOP = 512  # onset envelope frames: ~43 per second (tempo needs the resolution)
BLOCK = HOP * 640  # ~60 s: CQT chroma is computed in blocks (memory)
CONTEXT = HOP * 32  # ~3 s each side: the lowest CQT filters (and their resampling) reach ~1.6 s


class LibrosaAnalyzer(Analyzer):
    """What the analyzers on these shared features have in common: 22.05 kHz mono, librosa
    and its licence, and a set-up that imports librosa's feature code once per worker when
    the analyzer calls librosa (~3 s per worker from numba's cache, ~30 s on a machine's
    first run while numba compiles it). The STFT chroma and :func:`timbre` do not: they
    are librosa's code ported to numpy (:mod:`.librosa_port`), so the default pipeline never
    imports librosa."""

    resource = "cpu"
    sample_rate = RATE
    libraries = ("librosa",)
    install_hint = "pip install librosa"
    code_licence = "ISC (librosa), MIT (mirflow)"

    def calls_librosa(self) -> bool:
        """Whether :meth:`analyze` calls librosa itself (then set-up imports it once)."""
        return True

    def compiles_on_first_run(self) -> bool:
        return self.calls_librosa()  # importing librosa compiles its numba functions

    def setup(self, device):
        if self.calls_librosa():
            import librosa.feature  # noqa: F401
            import librosa.onset  # noqa: F401

        self.device = "cpu"


def frame_times(chunk) -> np.ndarray:
    """Chunk times of the HOP frames of every feature here (1 + the whole hops after the grid offset)."""
    frames = 1 + (len(chunk.samples) - grid_offset(chunk)) // HOP
    return first_frame_time(chunk) + np.arange(frames) * HOP / chunk.sample_rate


def grid_offset(chunk) -> int:
    """Samples from the chunk's start to its first frame on the track's HOP grid."""
    return int(-round(chunk.start * chunk.sample_rate) % HOP)


def first_frame_time(chunk) -> float:
    """Chunk time (s) of frame 0 of every feature here."""
    return grid_offset(chunk) / chunk.sample_rate


def _aligned(chunk) -> np.ndarray:
    return np.ascontiguousarray(chunk.samples[grid_offset(chunk):], dtype=np.float32)


def chroma(chunk, kind: str = "stft") -> np.ndarray:
    """12 x frames chroma, each frame scaled to a maximum of 1 (librosa's default)."""
    if kind == "cqt":
        return shared(chunk, f"chroma_cqt-{HOP}", lambda: chroma_cqt(_aligned(chunk), chunk.sample_rate))
    return shared(chunk, f"chroma_stft-{HOP}", lambda: chroma_stft(_aligned(chunk), chunk.sample_rate))


def chroma_stft(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """STFT chroma with an 8192-point window (~0.37 s: 2.7 Hz bins, enough for the bass),
    computed ~60 s at a time (a 120 s chunk: ~170 MB in one call) with one tuning estimate
    for the whole chunk, so blocks join exactly. librosa's tuning estimate and chroma, in
    numpy (:mod:`.librosa_port`: equal to librosa's to the bit)."""
    middle = len(samples) // 2
    excerpt = samples[max(0, middle - RATE * 15):middle + RATE * 15]  # tuning from the middle 30 s
    tuning = librosa_port.estimate_tuning(np.ascontiguousarray(excerpt, dtype=np.float32), sample_rate) \
        if len(excerpt) > 4 * HOP else 0.0
    return blockwise(samples, lambda block: librosa_port.chroma_stft(block, sample_rate, 4 * HOP, HOP, tuning))


def chroma_cqt(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """CQT chroma computed ~60 s at a time (a 120 s chunk in one call peaks at ~340 MB; in
    blocks at ~60 MB, for ~30 % more time)."""
    import librosa

    return blockwise(samples, lambda block: librosa.feature.chroma_cqt(y=block, sr=sample_rate, hop_length=HOP))


def blockwise(samples: np.ndarray, compute) -> np.ndarray:
    """``compute`` (samples -> features x frames at HOP) run ~60 s at a time with CONTEXT on
    both sides. Frames are centred on multiples of the hop, so each block keeps exactly the
    frames it owns; a short remainder joins the block before it."""
    frames = 1 + len(samples) // HOP
    starts = list(range(0, len(samples), BLOCK))
    if len(starts) > 1 and len(samples) - starts[-1] < BLOCK // 4:
        starts.pop()
    parts = []
    for n, first in enumerate(starts):
        last = starts[n + 1] if n + 1 < len(starts) else len(samples)
        start = max(0, first - CONTEXT)
        part = compute(np.ascontiguousarray(samples[start:last + CONTEXT], dtype=np.float32))
        skip = (first - start) // HOP
        parts.append(part[:, skip:skip + (last - first) // HOP])
    whole = np.hstack(parts)
    if whole.shape[1] < frames:  # the final frame (centred past the last full hop) from the last block
        whole = np.hstack([whole, part[:, -(frames - whole.shape[1]):]])
    return whole[:, :frames].astype(np.float32)


def onset_envelope(chunk) -> np.ndarray:
    """Spectral-flux onset strength (librosa's, on a mel spectrogram), ~43 frames per second."""
    import librosa

    return shared(chunk, f"onset-{ONSET_HOP}", lambda: librosa.onset.onset_strength(
        y=_aligned(chunk), sr=chunk.sample_rate, hop_length=ONSET_HOP).astype(np.float32))


def spectral(chunk) -> np.ndarray:
    """2 x frames: RMS (linear) and spectral centroid (Hz): the first rows of :func:`timbre`."""
    return timbre(chunk)[:2]


MFCCS = 13


def timbre(chunk) -> np.ndarray:
    """(2 + MFCCS) x frames from one 4096-point STFT: RMS (linear), spectral centroid (Hz) and
    13 MFCCs of a 40-band mel spectrogram of the same STFT. The loudness curves, the template
    chords' silence test and the structure analyzer's timbre all read this one transform
    (librosa's functions, in numpy: :mod:`.librosa_port`)."""

    def compute():
        magnitude = np.abs(librosa_port.stft(_aligned(chunk), 2 * HOP, HOP))
        rms = librosa_port.rms(magnitude, 2 * HOP)
        centroid = librosa_port.spectral_centroid(magnitude, chunk.sample_rate, 2 * HOP)
        mel = librosa_port.melspectrogram(magnitude ** 2, chunk.sample_rate, 40)
        mfcc = librosa_port.mfcc(librosa_port.power_to_db(mel), MFCCS)
        return np.vstack([rms, centroid, mfcc]).astype(np.float32)

    return shared(chunk, f"timbre-{HOP}", compute)
