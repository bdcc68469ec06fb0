"""The beat and downbeat networks' input features in single precision, a block of frames at a time.

madmom computes them per frame size (1024, 2048 and 4096 samples at 100 frames per second) as a
chain of objects: frames, a Hann-windowed STFT in double precision kept as complex64, its
magnitude, a logarithmically spaced filterbank, ``log10(1 + x)``, and the positive difference
to the frame ``diff_frames`` before, stacked beside it. Each step makes a new array of the
whole chunk: on a 120 s chunk that chain took ~0.57 s on one core, about as long as the eight
networks it feeds. :class:`LogSpectralFeatures` does the same arithmetic in float32 (SciPy's
single-precision real FFT), windows and transforms a block of frames that stays in cache, keeps
only the bins the filterbank reads, and filters each block as it comes: ~0.34-0.41 s. The
features differ from madmom's by ~2e-6 (of values up to ~2.5), the networks' activations mostly
by ~1e-5 but by up to ~0.05 in a few frames of sparse arrangements, which moved a few beats'
interpolated times by milliseconds and no F-measure (``benchmarks/features.py`` measures it all).

Only madmom's own chain with its defaults is computed here (:func:`fused_chains` checks each
processor); anything else runs madmom's objects as before.
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 2**20  # float32 frames windowed and transformed at a time (stays in a core's L2 cache)


class SpectralChain:
    """One frame size of the chain: its filterbank (only the rows of bins it reads), window and
    the difference's lag in frames."""

    def __init__(self, frame_size: int, hop: float, filterbank: np.ndarray, diff_frames: int):
        used = np.flatnonzero(filterbank.any(axis=1))
        self.frame_size, self.hop, self.diff_frames = frame_size, hop, diff_frames
        self.bins = int(used[-1]) + 1 if len(used) else 1
        self.filterbank = np.ascontiguousarray(filterbank[:self.bins], dtype=np.float32)
        self.window = np.hanning(frame_size).astype(np.float32)  # madmom's window function, as madmom makes it

    @property
    def width(self) -> int:
        """Columns this frame size gives: its filtered spectrogram, then its difference."""
        return 2 * self.filterbank.shape[1]

    def __call__(self, samples: np.ndarray, frames: int) -> np.ndarray:
        import scipy.fft

        size = self.frame_size
        # Frame i starts at int(i * hop) - size // 2 (madmom's origin 0), zeros beyond the signal.
        padded = np.zeros(len(samples) + 2 * size + int(np.ceil(self.hop)), dtype=np.float32)
        padded[size // 2:size // 2 + len(samples)] = samples
        windows = np.lib.stride_tricks.sliding_window_view(padded, size)
        starts = (np.arange(frames) * self.hop).astype(np.int64)
        whole_hop = float(self.hop).is_integer()
        spectrum = np.empty((frames, self.filterbank.shape[1]), dtype=np.float32)
        block = max(1, BLOCK_BYTES // (4 * size))
        windowed = np.empty((min(block, frames), size), dtype=np.float32)
        for first in range(0, frames, block):
            rows = min(block, frames - first)
            framed = (windows[int(starts[first])::int(self.hop)][:rows] if whole_hop
                      else windows[starts[first:first + rows]])
            np.multiply(framed, self.window, out=windowed[:rows])
            transformed = scipy.fft.rfft(windowed[:rows], axis=1, overwrite_x=True)
            np.matmul(np.abs(transformed[:, :self.bins]), self.filterbank, out=spectrum[first:first + rows])
        np.log10(spectrum + np.float32(1), out=spectrum)
        lag = self.diff_frames
        difference = np.zeros_like(spectrum)
        if frames > lag:
            np.subtract(spectrum[lag:], spectrum[:-lag], out=difference[lag:])
            np.maximum(difference, 0, out=difference)
        return np.hstack([spectrum, difference])


class LogSpectralFeatures:
    """madmom's multi-resolution spectrogram features (beat and downbeat networks), float32."""

    def __init__(self, chains: list[SpectralChain], sample_rate: int):
        self.chains, self.sample_rate = chains, sample_rate

    @property
    def widths(self) -> list[int]:
        return [chain.width for chain in self.chains]

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        hop = self.chains[0].hop
        frames = int(np.ceil(len(samples) / hop))  # madmom's FramedSignal, end="normal"
        if frames == 0:
            return np.zeros((0, sum(self.widths)), dtype=np.float32)
        return np.hstack([chain(samples, frames) for chain in self.chains])


def diff_frames(diff_ratio: float, hop: float, frame_size: int) -> int:
    """madmom's lag for the spectral difference: from the first sample where the Hann window
    exceeds ``diff_ratio`` of its peak to the window's middle, in frames, at least one."""
    window = np.hanning(frame_size)
    sample = np.argmax(window > float(diff_ratio) * max(window))
    return int(max(1, round((len(window) / 2 - sample) / hop)))


def fused_chains(signal, chains) -> LogSpectralFeatures | None:
    """The features of madmom's ``SignalProcessor`` and per-frame-size chains computed here, or
    None where any processor is not madmom's default one (then madmom's own objects run)."""
    from madmom.audio.filters import LogarithmicFilterbank
    from madmom.audio.signal import FramedSignalProcessor, SignalProcessor
    from madmom.audio.spectrogram import (FilteredSpectrogramProcessor, LogarithmicSpectrogramProcessor,
                                          SpectrogramDifferenceProcessor)
    from madmom.audio.stft import ShortTimeFourierTransformProcessor, fft_frequencies

    if not (type(signal) is SignalProcessor and signal.num_channels == 1 and not signal.norm and not signal.gain
            and signal.start is None and signal.stop is None and signal.sample_rate):
        return None
    rate, built, hops = int(signal.sample_rate), [], set()
    for framer, rest in chains:
        steps = list(getattr(rest, "processors", []))
        if len(steps) != 4:
            return None
        stft, filtered, logarithmic, difference = steps
        if not (type(framer) is FramedSignalProcessor and framer.origin == 0 and framer.end == "normal"
                and framer.num_frames is None
                and type(stft) is ShortTimeFourierTransformProcessor and stft.window is np.hanning
                and stft.fft_size is None and not stft.circular_shift and not stft.include_nyquist
                and stft.fft_window is None and stft.fftw is None
                and type(filtered) is FilteredSpectrogramProcessor and filtered.filterbank is LogarithmicFilterbank
                and type(logarithmic) is LogarithmicSpectrogramProcessor and logarithmic.log is np.log10
                and logarithmic.mul == 1 and logarithmic.add == 1
                and type(difference) is SpectrogramDifferenceProcessor and difference.diff_max_bins is None
                and difference.positive_diffs and difference.stack_diffs is np.hstack):
            return None
        size, hop = int(framer.frame_size), float(framer.hop_size)
        hops.add(hop)
        bank = LogarithmicFilterbank(fft_frequencies(size // 2, rate), num_bands=filtered.num_bands,
                                     fmin=filtered.fmin, fmax=filtered.fmax, fref=filtered.fref,
                                     norm_filters=filtered.norm_filters, unique_filters=filtered.unique_filters)
        lag = difference.diff_frames or diff_frames(difference.diff_ratio, hop, size)
        built.append(SpectralChain(size, hop, np.asarray(bank), int(lag)))
    if len(hops) != 1 or not built:
        return None
    return LogSpectralFeatures(built, rate)
