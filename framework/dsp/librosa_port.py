"""librosa's STFT features and chord Viterbi, ported to numpy and scipy with the same arithmetic.

The default pipeline's key and sections read an STFT chroma (with librosa's tuning
estimate) and RMS, centroid and MFCCs of one STFT; the fast pipeline's template chords
also smooth their matches with librosa's discriminative Viterbi. Importing librosa
compiles ~50 numba functions (``util._localmax`` and friends, with explicit signatures, so
at import): ~30 s on a machine's first run, and ~3 s per worker per run to load them from
numba's cache afterwards. These few functions need none of that, so they are copied here
from librosa 0.11 (ISC licence, (c) the librosa development team), step by step, same
dtypes, same FFT library (scipy.fft), same array layouts: their results equal librosa's to
the bit (tests/test_librosa_port.py compares them), so no accuracy table moves.

Only what those analyzers call is here: Hann windows, centred zero-padded frames,
float32 input, uniform state marginals.
"""

# The code below is adapted from librosa 0.11 (core/spectrum.py, core/pitch.py, core/convert.py,
# feature/spectral.py, filters.py, sequence.py, util/utils.py), under its licence:
#
#   ISC License. Copyright (c) 2013--2023, librosa development team.
#
#   Permission to use, copy, modify, and/or distribute this software for any purpose with or
#   without fee is hereby granted, provided that the above copyright notice and this permission
#   notice appear in all copies.
#
#   THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS
#   SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE
#   AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
#   WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT,
#   NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
#   PERFORMANCE OF THIS SOFTWARE.

from __future__ import annotations

import numpy as np

MAX_MEM_BLOCK = 2 ** 8 * 2 ** 10  # librosa's STFT block (bytes of frames per FFT call)


def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (float64): ``scipy.signal.get_window("hann", n_fft)``'s
    arithmetic (a general cosine window over n_fft + 1 points, the last dropped) without
    importing scipy.signal, which takes ~1.3 s (it imports scipy.stats)."""
    if n_fft <= 1:
        return np.ones(n_fft)
    angles = np.linspace(-np.pi, np.pi, n_fft + 1, dtype=np.float64)
    window = np.zeros(n_fft + 1, dtype=np.float64)
    for k, weight in enumerate((0.5, 1.0 - 0.5)):
        window += np.float64(weight) * np.cos(k * angles)
    return window[:-1]


def frame(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """frame_length x frames strided view (librosa's ``util.frame`` on a 1-D signal)."""
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(len(y) - frame_length + 1, frame_length), strides=(y.strides[0], y.strides[0]), writeable=False)
    return np.moveaxis(frames, -1, -2)[:, ::hop_length]


def stft(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred, zero-padded STFT of float32 ``y``: complex64, 1 + n_fft/2 x frames, Fortran order.

    Like librosa: only the frames that reach into the padding are framed from padded
    copies; the others are views of ``y``; the windowed frames are float64 and each
    block's FFT is cast to complex64."""
    import scipy.fft

    window = hann(n_fft)[:, np.newaxis]
    half = n_fft // 2
    start_k = int(np.ceil(half / hop_length))
    tail_k = (len(y) + half - n_fft) // hop_length + 1
    frames_pre = frames_post = None
    if tail_k <= start_k:
        start = extra = 0
        y = np.pad(y, (half, half), mode="constant")
    else:
        start = start_k * hop_length - half
        y_pre = np.pad(y[:(start_k - 1) * hop_length - half + n_fft + 1], (half, 0), mode="constant")
        frames_pre = frame(y_pre, n_fft, hop_length)[:, :start_k]
        extra = frames_pre.shape[-1]
        if tail_k * hop_length - half + n_fft <= len(y) + half:
            y_post = np.pad(y[tail_k * hop_length - half:], (0, half), mode="constant")
            frames_post = frame(y_post, n_fft, hop_length)
            extra += frames_post.shape[-1]
    frames = frame(y[start:], n_fft, hop_length)
    matrix = np.zeros((1 + half, frames.shape[-1] + extra), dtype=np.complex64, order="F")
    off_start = 0
    if extra > 0:
        off_start = frames_pre.shape[-1]
        matrix[:, :off_start] = scipy.fft.rfft(window * frames_pre, axis=-2)
        if frames_post is not None and frames_post.shape[-1] > 0:
            matrix[:, -frames_post.shape[-1]:] = scipy.fft.rfft(window * frames_post, axis=-2)
    columns = max(int(MAX_MEM_BLOCK // (frames.shape[0] * frames.itemsize)), 1)
    for first in range(0, frames.shape[-1], columns):
        last = min(first + columns, frames.shape[-1])
        matrix[:, first + off_start:last + off_start] = scipy.fft.rfft(window * frames[:, first:last], axis=-2)
    return matrix


def fft_frequencies(sample_rate: float, n_fft: int) -> np.ndarray:
    """Centre frequencies (Hz) of the 1 + n_fft/2 bins of a real FFT."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)


def normalize(values: np.ndarray, norm: float, axis: int) -> np.ndarray:
    """librosa's ``util.normalize`` (fill=None): columns scaled to unit ``norm``; columns
    below the dtype's smallest normal number are left as they are."""
    threshold = np.finfo(values.dtype).tiny
    if not np.all(np.isfinite(values)):
        raise ValueError("Input must be finite")
    magnitude = np.abs(values).astype(float)
    if norm == np.inf:
        length = np.max(magnitude, axis=axis, keepdims=True)
    else:
        length = np.sum(magnitude ** norm, axis=axis, keepdims=True) ** (1.0 / norm)
    length[length < threshold] = 1.0
    scaled = np.empty_like(values)
    scaled[:] = values / length
    return scaled


def hz_to_octs(frequencies, tuning: float = 0.0, bins_per_octave: int = 12):
    """Octaves above C0 (A440 shifted by ``tuning`` fractions of a bin)."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies) / (float(a440) / 16))


def chroma_filters(sample_rate: float, n_fft: int, tuning: float, n_chroma: int = 12) -> np.ndarray:
    """librosa's ``filters.chroma`` with its defaults (centre octave 5, width 2, L2 norm, C first)."""
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    distance = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    weights = np.exp(-0.5 * (2 * distance / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    weights = normalize(weights, norm=2, axis=0)
    weights *= np.tile(np.exp(-0.5 * ((frqbins / n_chroma - 5.0) / 2) ** 2), (n_chroma, 1))
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, :int(1 + n_fft / 2)], dtype=np.float32)


def chroma_stft(y: np.ndarray, sample_rate: float, n_fft: int, hop_length: int, tuning: float) -> np.ndarray:
    """``librosa.feature.chroma_stft(y=y, sr=..., n_fft=..., hop_length=..., tuning=...)``."""
    power = np.abs(stft(y, n_fft, hop_length)) ** 2
    filters = chroma_filters(sample_rate, n_fft, tuning)
    raw = np.einsum("cf,...ft->...ct", filters, power, optimize=True)
    return normalize(raw, norm=np.inf, axis=-2)


def _parabolic_shifts(below: np.ndarray, centre: np.ndarray, above: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Per peak (its bin's magnitude, its neighbours' and whether it is the first or last
    bin), the offset of the parabola through the three (0 where that is more than a bin away,
    and at both ends): librosa's numba stencil, whose ``2 * x`` and ``/ 2`` are float64 (an
    int64 literal with a float32), its result float32."""
    a = (above + below).astype(np.float64) - 2 * centre.astype(np.float64)
    b = (above - below).astype(np.float64) / 2
    shifts = np.zeros(len(centre), dtype=centre.dtype)
    inside = (np.abs(b) < np.abs(a)) & ~edge
    shifts[inside] = -b[inside] / a[inside]
    return shifts


def _gradient(below: np.ndarray, centre: np.ndarray, above: np.ndarray, first: np.ndarray,
              last: np.ndarray) -> np.ndarray:
    """``np.gradient(magnitude, axis=-2)`` at each peak: the central difference, one-sided at
    the first and the last bin (numpy's arithmetic)."""
    out = (above - below) / 2.0
    out[first] = (above - centre)[first] / 1.0
    out[last] = (centre - below)[last] / 1.0
    return out


def _local_maxima(values: np.ndarray) -> np.ndarray:
    """librosa's ``util.localmax`` along axis 0: above the previous, not below the next;
    the first row never, the last when above the one before."""
    found = np.zeros(values.shape, dtype=bool)
    found[1:-1] = (values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])
    found[-1] = values[-1] > values[-2]
    return found


def piptrack(y: np.ndarray, sample_rate: float, n_fft: int = 2048,
             fmin: float = 150.0, fmax: float = 4000.0, threshold: float = 0.1):
    """librosa's ``piptrack(y=y, sr=...)``: parabolic-interpolated peaks per frame."""
    magnitude = np.abs(stft(y, n_fft, n_fft // 4))
    fmin = np.maximum(fmin, 0)
    fmax = np.minimum(fmax, float(sample_rate) / 2)
    frequencies = fft_frequencies(sample_rate, n_fft)
    pitches = np.zeros_like(magnitude)
    magnitudes = np.zeros_like(magnitude)
    frequency_mask = ((fmin <= frequencies) & (frequencies < fmax))[:, np.newaxis]
    reference = np.expand_dims(threshold * np.max(magnitude, axis=-2), -2)
    index = np.nonzero(frequency_mask & _local_maxima(magnitude * (magnitude > reference)))
    # The shift and the gradient only at the peaks (over the whole spectrogram they were ~60 %
    # of the tuning estimate: 0.34 -> 0.14 s per 120 s of audio), each peak with its neighbours.
    bins, frames = index
    top = magnitude.shape[-2] - 1
    below = magnitude[np.maximum(bins - 1, 0), frames]
    centre = magnitude[index]
    above = magnitude[np.minimum(bins + 1, top), frames]
    first, last = bins == 0, bins == top
    shift = _parabolic_shifts(below, centre, above, first | last)
    dskew = 0.5 * _gradient(below, centre, above, first, last) * shift
    pitches[index] = (bins + shift) * float(sample_rate) / n_fft
    magnitudes[index] = centre + dskew
    return pitches, magnitudes


def estimate_tuning(y: np.ndarray, sample_rate: float, resolution: float = 0.01, bins_per_octave: int = 12) -> float:
    """``librosa.estimate_tuning(y=y, sr=...)``: the most common deviation (in fractions of
    a semitone) of the strong spectral peaks from A440."""
    pitch, magnitude = piptrack(y, sample_rate)
    pitched = pitch > 0
    threshold = np.median(magnitude[pitched]) if pitched.any() else 0.0
    frequencies = np.atleast_1d(pitch[(magnitude >= threshold) & pitched])
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    residual = np.mod(bins_per_octave * hz_to_octs(frequencies), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return float(tuning[np.argmax(counts)])


def rms(magnitude: np.ndarray, frame_length: int) -> np.ndarray:
    """``librosa.feature.rms(S=magnitude, frame_length=...)[0]``."""
    power = np.square(magnitude, dtype=np.float32)
    power[..., 0, :] *= 0.5
    if frame_length % 2 == 0:
        power[..., -1, :] *= 0.5
    return (np.sqrt(2 * np.sum(power, axis=-2, keepdims=True) / frame_length ** 2))[0]


def spectral_centroid(magnitude: np.ndarray, sample_rate: float, n_fft: int) -> np.ndarray:
    """``librosa.feature.spectral_centroid(S=magnitude, sr=..., n_fft=...)[0]`` (float64)."""
    frequencies = fft_frequencies(sample_rate, n_fft)[:, np.newaxis]
    return np.sum(frequencies * normalize(magnitude, norm=1, axis=-2), axis=-2, keepdims=True)[0]


def hz_to_mel(frequencies):
    """Slaney's mel scale (linear below 1 kHz, logarithmic above)."""
    frequencies = np.asanyarray(frequencies)
    f_sp = 200.0 / 3
    mels = (frequencies - 0.0) / f_sp
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if frequencies.ndim:
        high = frequencies >= 1000.0
        mels[high] = min_log_mel + np.log(frequencies[high] / 1000.0) / logstep
    elif frequencies >= 1000.0:
        mels = min_log_mel + np.log(frequencies / 1000.0) / logstep
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel` (for arrays)."""
    f_sp = 200.0 / 3
    frequencies = 0.0 + f_sp * mels
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    high = mels >= min_log_mel
    frequencies[high] = 1000.0 * np.exp(logstep * (mels[high] - min_log_mel))
    return frequencies


def mel_filters(sample_rate: float, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's ``filters.mel`` with its defaults (0 Hz to Nyquist, Slaney scale and norm), float32."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    frequencies = fft_frequencies(sample_rate, n_fft)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(float(sample_rate) / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, frequencies)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def melspectrogram(power: np.ndarray, sample_rate: float, n_mels: int) -> np.ndarray:
    """``librosa.feature.melspectrogram(S=power, sr=..., n_mels=...)``."""
    n_fft = 2 * (power.shape[-2] - 1)
    return np.einsum("...ft,mf->...mt", power, mel_filters(sample_rate, n_fft, n_mels), optimize=True)


def power_to_db(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, top_db=None)``."""
    decibels = 10.0 * np.log10(np.maximum(amin, power))
    decibels -= 10.0 * np.log10(np.maximum(amin, 1.0))
    return decibels


def mfcc(decibels: np.ndarray, n_mfcc: int) -> np.ndarray:
    """``librosa.feature.mfcc(S=decibels, n_mfcc=...)``: an orthonormal DCT-II over the bands."""
    import scipy.fft

    return scipy.fft.dct(decibels, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]



def transition_loop(n_states: int, stay: float) -> np.ndarray:
    """``librosa.sequence.transition_loop(n_states, stay)``: stay with ``stay``, else any other state alike."""
    transition = np.empty((n_states, n_states), dtype=np.float64)
    for i in range(n_states):
        transition[i] = (1.0 - np.float64(stay)) / (n_states - 1)
        transition[i, i] = np.float64(stay)
    return transition


def viterbi_discriminative(probability: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """``librosa.sequence.viterbi_discriminative(probability, transition)`` (uniform state
    marginal and initial distribution): the most likely state per frame (uint16).

    librosa runs the recursion in numba (compiled on a machine's first run); here each
    frame's step is vectorized over the states, with the same additions in float64 and the
    same first-maximum choice, so the path is the same."""
    n_states, n_steps = probability.shape
    epsilon = np.finfo(probability.dtype).tiny
    uniform = np.empty(n_states)
    uniform.fill(1.0 / n_states)
    log_p_init = np.log(uniform + epsilon)
    log_trans = np.log(transition + epsilon)
    log_marginal = np.log(uniform + epsilon)[:, np.newaxis]
    log_prob = (np.log(probability + epsilon) - log_marginal).T
    pointers = np.zeros((n_steps, n_states), dtype=np.uint16)
    value = (log_prob[0] + log_p_init).astype(np.float64)
    states = np.arange(n_states)
    incoming = np.ascontiguousarray(log_trans.T)
    for t in range(1, n_steps):
        trans_out = value + incoming  # [j, i]: arriving in j from i
        best = np.argmax(trans_out, axis=1)
        pointers[t] = best
        value = log_prob[t] + trans_out[states, best]
    path = np.zeros(n_steps, dtype=np.uint16)
    path[-1] = np.argmax(value)
    for t in range(n_steps - 2, -1, -1):
        path[t] = pointers[t + 1, path[t + 1]]
    return path


def frames_to_time(frames: np.ndarray, sample_rate: float, hop_length: int) -> np.ndarray:
    """``librosa.frames_to_time(frames, sr=..., hop_length=...)``."""
    return (np.asanyarray(frames) * hop_length).astype(int) / float(sample_rate)
