"""librosa_enhanced.features: curves to plot beside the timeline, and their summary.

At ~10.8 frames per second (frames centred at multiples of 2048 / 22050 s): loudness (RMS
in dBFS), spectral centroid (Hz, brightness) and onset density (onsets per second over
the surrounding 2 s). Summary scalars come from the whole track's curves.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve

from mirflow.dsp.features import ONSET_HOP, LibrosaAnalyzer, first_frame_time, frame_times, onset_envelope, spectral

FLOOR_DB = -100.0
DENSITY_SPAN = 2.0  # seconds of onsets counted around each frame


class Features(LibrosaAnalyzer):
    """Loudness, brightness and onset density over time, with track summaries."""

    name = "librosa_enhanced.features"
    version = "1"
    outputs = {
        "loudness": mirflow.CURVE,
        "spectral_centroid": mirflow.CURVE,
        "onset_density": mirflow.CURVE,
        "loudness_mean": mirflow.SCALAR,
        "loudness_range": mirflow.SCALAR,
        "brightness": mirflow.SCALAR,
        "onset_rate": mirflow.SCALAR,
    }
    chunk_outputs = {name: mirflow.CURVE for name in ("loudness", "spectral_centroid", "onset_density")}

    def analyze(self, chunk, inputs):
        times = frame_times(chunk)
        frames = len(times)
        if chunk.is_silent():
            zeros = np.zeros(frames)
            return {"loudness": {"times": times, "values": zeros + FLOOR_DB},
                    "spectral_centroid": {"times": times, "values": zeros},
                    "onset_density": {"times": times, "values": zeros}}
        import librosa

        rms, centroid = spectral(chunk)[:, :frames]
        envelope = onset_envelope(chunk)
        onsets = first_frame_time(chunk) + librosa.onset.onset_detect(
            onset_envelope=envelope, sr=chunk.sample_rate, hop_length=ONSET_HOP, units="time")
        half = DENSITY_SPAN / 2
        counted = np.searchsorted(onsets, times + half) - np.searchsorted(onsets, times - half)
        span = np.minimum(times + half, chunk.duration) - np.maximum(times - half, 0.0)
        return {"loudness": {"times": times, "values": 20 * np.log10(np.maximum(rms, 10 ** (FLOOR_DB / 20)))},
                "spectral_centroid": {"times": times, "values": centroid},
                "onset_density": {"times": times, "values": counted / np.maximum(span, 1e-9)}}


def aggregate_features(parts, track) -> dict:
    merged = {name: merge_curve(parts, name) for name in ("loudness", "spectral_centroid", "onset_density")}
    loudness = np.asarray(merged["loudness"]["values"], dtype=float)
    heard = loudness > -60.0  # leave silence out of the summaries
    summary = {"loudness_mean": None, "loudness_range": None, "brightness": None, "onset_rate": None}
    if heard.any():
        power = np.mean(10 ** (loudness[heard] / 10))
        summary = {
            "loudness_mean": 10 * np.log10(power),
            "loudness_range": float(np.percentile(loudness[heard], 95) - np.percentile(loudness[heard], 10)),
            "brightness": float(np.mean(np.asarray(merged["spectral_centroid"]["values"])[heard])),
            "onset_rate": float(np.mean(np.asarray(merged["onset_density"]["values"])[heard])),
        }
    return {**merged, **{name: {"value": None if value is None else float(value), "confidence": 1.0}
                         for name, value in summary.items()}}
