"""librosa_enhanced.tempo: tempo from the onset envelope, without beat tracking.

Per chunk: librosa's onset strength (~43 frames/s, shared with the other librosa
analyzers). Over the whole track (the chunks' envelopes stitched): every second, the
autocorrelation of the ``window`` seconds of envelope around it, weighted by a log-normal
prior around ``prior_bpm``; its best lag (interpolated between frames: a whole frame is
~2 % at 120 BPM) is the local tempo, the mean over the track gives the global tempo and
its runner-up, which is often the half or double tempo.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve

from mirflow.dsp.features import ONSET_HOP, RATE, LibrosaAnalyzer, first_frame_time, grid_offset, onset_envelope

FPS = RATE / ONSET_HOP
STEP = 1.0  # seconds between local tempo estimates


class Tempo(LibrosaAnalyzer):
    """Global tempo (with confidence and the second candidate) and a local tempo curve."""

    name = "librosa_enhanced.tempo"
    version = "1"
    params = {
        "min_bpm": mirflow.Param(40.0, float, min=20, max=300, help="slowest tempo considered"),
        "max_bpm": mirflow.Param(240.0, float, min=30, max=400, help="fastest tempo considered"),
        "prior_bpm": mirflow.Param(120.0, float, min=30, max=300,
                                   help="centre of the log-normal tempo prior (one octave wide)"),
        "window": mirflow.Param(8.0, float, min=2.0, max=30.0, help="seconds of onsets behind each local tempo"),
    }
    outputs = {"tempo": mirflow.SCALAR, "tempo_curve": mirflow.CURVE}
    chunk_outputs = {"onset": mirflow.CURVE}

    @classmethod
    def check_params(cls, values):
        if values["min_bpm"] >= values["max_bpm"]:
            raise mirflow.ParamError(f"min_bpm ({values['min_bpm']:g}) must be below max_bpm ({values['max_bpm']:g})")

    def analyze(self, chunk, inputs):
        if chunk.is_silent():
            envelope = np.zeros(1 + (len(chunk.samples) - grid_offset(chunk)) // ONSET_HOP, dtype=np.float32)
        else:
            envelope = onset_envelope(chunk)
        return {"onset": {"times": first_frame_time(chunk) + np.arange(len(envelope)) / FPS, "values": envelope}}

    def estimate(self, envelope: np.ndarray) -> dict:
        """Tempo and tempo curve from the whole track's onset envelope (FPS frames/s)."""
        empty = {"tempo": {"value": None, "confidence": 0.0}, "tempo_curve": {"times": [], "values": []}}
        if len(envelope) < FPS * 2 or float(envelope.max(initial=0)) <= 1e-6:
            return empty
        lags = np.arange(int(np.floor(60 * FPS / self.config["max_bpm"])),
                         int(np.ceil(60 * FPS / self.config["min_bpm"])) + 1)
        lags = lags[lags >= 1]
        bpm = 60 * FPS / lags
        prior = np.exp(-0.5 * (np.log2(bpm / self.config["prior_bpm"])) ** 2)
        width = int(self.config["window"] * FPS)
        centres = np.arange(0, len(envelope), int(STEP * FPS))
        acf = np.array([self._autocorrelation(envelope, c, width, lags[-1]) for c in centres])
        usable = acf[:, 0] > 0
        if not usable.any():
            return empty
        acf = acf[:, 1:] / np.maximum(acf[:, :1], 1e-12)  # normalized, lag 1 .. max
        weighted = acf[:, lags - 1] * prior
        local = np.array([refine(lags, row) for row in weighted])
        mean = weighted[usable].mean(axis=0)
        order = peaks(mean)
        if not order:
            return empty
        best = refine(lags, mean, order[0])
        # The alternative: the half or the double tempo, whichever the onsets support more.
        lead = lags[order[0]]
        octaves = [i for i in order[1:] if min(abs(lags[i] - 2 * lead), abs(2 * lags[i] - lead)) <= 1.5]
        second = refine(lags, mean, octaves[0]) if octaves else best * (2 if best < 100 else 0.5)
        runner_up = mean[order[1]] if len(order) > 1 else 0.0
        confidence = float(np.clip(1 - runner_up / mean[order[0]], 0, 1))
        curve = np.array([np.median(local[max(0, i - 2):i + 3][usable[max(0, i - 2):i + 3]])
                          if usable[max(0, i - 2):i + 3].any() else np.nan for i in range(len(local))])
        keep = np.isfinite(curve)
        return {"tempo": {"value": float(best), "confidence": confidence, "alternative": float(second)},
                "tempo_curve": {"times": (centres / FPS)[keep], "values": curve[keep]}}

    @staticmethod
    def _autocorrelation(envelope: np.ndarray, centre: int, width: int, max_lag: int) -> np.ndarray:
        """Autocorrelation (lags 0..max_lag) of the Hann-weighted, mean-removed window."""
        first, last = max(0, centre - width // 2), min(len(envelope), centre + width // 2)
        window = envelope[first:last].astype(float)
        if len(window) <= max_lag:
            return np.zeros(max_lag + 1)
        window = (window - window.mean()) * np.hanning(len(window))
        spectrum = np.fft.rfft(window, n=2 * len(window))
        return np.fft.irfft(np.abs(spectrum) ** 2)[:max_lag + 1]


def peaks(values: np.ndarray) -> list[int]:
    """Indices of local maxima, highest first."""
    inner = np.nonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:]))[0] + 1
    return sorted(inner.tolist(), key=lambda i: -values[i])


def refine(lags: np.ndarray, values: np.ndarray, index: int | None = None) -> float:
    """BPM at the peak ``index`` (default: the highest), interpolated with a parabola."""
    index = int(np.argmax(values)) if index is None else index
    lag = float(lags[index])
    if 0 < index < len(values) - 1:
        a, b, c = values[index - 1], values[index], values[index + 1]
        denominator = a - 2 * b + c
        if denominator < 0:
            lag += 0.5 * (a - c) / denominator
    return 60 * FPS / lag


def stitched_envelope(parts, duration: float) -> np.ndarray:
    """The chunks' onset envelopes joined (crossfaded) on one FPS grid over the track."""
    curve = merge_curve(parts, "onset")
    grid = np.arange(int(duration * FPS)) / FPS
    times = np.asarray(curve["times"], dtype=float)
    return np.interp(grid, times, np.asarray(curve["values"], dtype=float)) if len(times) else np.zeros(0)


def aggregate_tempo(analyzer: Tempo, parts, track) -> dict:
    return analyzer.estimate(stitched_envelope(parts, track.duration))
