"""madmom's RNNs per chunk, and what the merge needs to read their outputs back.

:class:`BlockedRNN` runs one of madmom's beat or downbeat networks on a chunk with its input
spectrogram computed a block of frames at a time (memory); :func:`pitch_classes` is the
chunk's harmony for the bar phase and the metre stage; :func:`stitch` lays the chunks'
curves on one uniform grid for the whole-track decode.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve
from mirflow.plugins._onnx import CPU, configure_sessions
from mirflow.plugins._stft import batched_stfts

from .metre import CHROMA_FPS

FPS = 100  # madmom's beat networks are trained at 100 frames per second
FEATURE_BLOCK = 2000  # frames (20 s) of spectrogram computed at a time
FEATURE_CONTEXT = 16  # frames before each block: more than the spectral difference looks back
CHROMA_FFT = 8192  # samples per pitch-class frame at 44.1 kHz: 5.4 Hz bins, a semitone apart from 55 Hz
CHROMA_BLOCK = 256  # frames transformed at a time (8 MB)


class BlockedRNN:
    """One of madmom's RNN processors (beats, downbeats), with its input features computed a
    block of frames at a time.

    The same networks; their input is madmom's spectrogram chain computed in single precision
    by :mod:`.spectra` (a block of frames in cache at a time: ~0.35 instead of ~0.57 s per 120 s
    chunk, features within ~1e-6 of madmom's). A chain that is not madmom's default runs
    madmom's objects a block of FEATURE_BLOCK frames at a time (a 120 s chunk peaks at ~120 MB
    instead of ~660 MB; each block gets FEATURE_CONTEXT frames before it so that the spectral
    difference sees its predecessors). Models load once. On the CPU, an ensemble of
    bidirectional LSTMs (both trackers' networks) runs in mirflow's kernel (:mod:`.ensemble`,
    ~30 % quicker than onnxruntime, outputs within ~1e-5) where it is built and ``kernel``;
    otherwise onnxruntime sessions run the networks, with the worker's thread budget and no
    memory arena (see configure_sessions), on ``providers`` (None: no networks at all, for a
    worker that only computes the features: the GPU lane's CPU half). ``devices``: where the
    networks really run.
    """

    def __init__(self, processor, providers: tuple[str, ...] | None = CPU, kernel: bool = True):
        from madmom.processors import SequentialProcessor

        from .ensemble import lane_ensemble
        from .spectra import fused_chains

        features, *self.after = processor.processors  # the network, then any post-processing
        # On the CPU the LSTM ensembles run in mirflow's kernel where it is built (.ensemble);
        # onnxruntime runs everything else, and the networks on a GPU.
        lanes = lane_ensemble(self.after[0]) if kernel and providers is not None and self.after else None
        if providers is None:
            self.devices = set()
        elif providers == CPU and lanes is not None:
            self.devices = {"cpu"}
        else:
            self.devices = configure_sessions(processor, mirflow.threads_per_worker(), providers)
            lanes = lanes if self.devices == {"cpu"} else None  # CUDA did not start: the CPU's kernel then
        if lanes is not None:
            self.after[0] = lanes
        self.signal, multi, _ = features.processors
        # Per frame size: how to frame the signal, and the rest of its spectrogram chain.
        self.chains = [(chain.processors[0], SequentialProcessor(chain.processors[1:])) for chain in multi.processors]
        self.fused = fused_chains(self.signal, self.chains)

    def features(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        if self.fused is not None and sample_rate == self.fused.sample_rate:
            self.widths = self.fused.widths  # per frame size: spectrogram, then its difference
            return self.fused(samples)
        return self.madmom_features(samples, sample_rate)

    def madmom_features(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The features as madmom's own objects compute them (double-precision STFT)."""
        from madmom.audio.signal import Signal

        # Always float32: madmom caches its FFT window on a processor's first call.
        signal = self.signal(Signal(samples.astype(np.float32, copy=False), sample_rate=sample_rate))
        stacked = []
        with batched_stfts():
            for framer, rest in self.chains:
                frames = framer(signal)
                blocks = []
                for first in range(0, len(frames), FEATURE_BLOCK):
                    start = max(0, first - FEATURE_CONTEXT)
                    block = np.asarray(rest(frames[start:first + FEATURE_BLOCK]), dtype=np.float32)
                    blocks.append(block[first - start:])
                stacked.append(np.vstack(blocks))
        self.widths = [part.shape[1] for part in stacked]  # per frame size: spectrogram, then its difference
        return np.hstack(stacked)

    def network(self, features: np.ndarray) -> np.ndarray:
        for step in self.after:
            features = step(features)
        return features

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.network(self.features(samples, sample_rate))


def pitch_classes(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Loudness per pitch class (frames x 12, CHROMA_FPS frames per second): the magnitude
    spectrum from 55 to 1760 Hz folded onto the twelve semitones, square-root compressed. Only
    where the harmony changes matters here, so no tuning estimate or harmonic model.

    SciPy's real FFT, not NumPy's: both transform float32 frames in single precision, but
    SciPy's runs a block of frames side by side in vector lanes (a 120 s chunk's 1,200 frames
    of 8192: ~0.07 instead of ~0.16 s on one core; values within ~1e-7 of each other)."""
    import scipy.fft

    hop = sample_rate // CHROMA_FPS
    size = CHROMA_FFT * sample_rate // 44100
    count = max(1, int(round(len(samples) / hop)))
    padded = np.pad(samples.astype(np.float32, copy=False), (size // 2, size))
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    band = (freqs >= 55) & (freqs <= 1760)
    low, high = np.flatnonzero(band)[[0, -1]]
    classes = ((np.round(12 * np.log2(freqs[band] / 440.0)) + 9) % 12).astype(int)
    fold = np.zeros((int(band.sum()), 12), dtype=np.float32)
    fold[np.arange(len(classes)), classes] = 1.0
    window = np.hanning(size).astype(np.float32)
    out = np.empty((count, 12), dtype=np.float32)
    for first in range(0, count, CHROMA_BLOCK):
        starts = hop * np.arange(first, min(count, first + CHROMA_BLOCK))
        frames = np.lib.stride_tricks.sliding_window_view(padded, size)[starts] * window
        spectrum = scipy.fft.rfft(frames, axis=1, overwrite_x=True)[:, low:high + 1]
        out[first:first + len(starts)] = np.abs(spectrum) @ fold
    return np.sqrt(out)


def stitch(parts, name: str, duration: float, fps: int = FPS) -> np.ndarray:
    """The per-chunk curves joined (crossfaded) and laid on one uniform grid of ``fps``."""
    return lay(merge_curve(parts, name), np.arange(int(round(duration * fps))) / fps)


def lay(curve: dict, grid: np.ndarray) -> np.ndarray:
    """A joined curve laid on ``grid`` (seconds) by linear interpolation, as float32. Each grid
    point's value depends only on the two curve frames around it: a stretch of the grid gets
    the values the whole grid has there (what the folds of the downbeat decode rely on)."""
    values = np.asarray(curve["values"])
    if len(curve["times"]) == 0:
        return np.zeros((len(grid),) + values.shape[1:], dtype=np.float32)
    if values.ndim == 1:
        return np.interp(grid, curve["times"], values).astype(np.float32)
    return np.stack([np.interp(grid, curve["times"], column) for column in values.T], axis=1).astype(np.float32)
