"""librosa_enhanced.key: the key over time, with its changes, and the song's key.

Per chunk: chroma, and every second the correlation of the chroma around it (``window``
seconds) with the 24 key profiles. When the pipeline has chords (any chord step, bound at the
merge), what they say about the key adds to those scores (:func:`mirflow.harmony.chord_evidence`:
time on each chord by its function, V-I and V-i cadences, the major V of a minor key, the last
chord), so that the relative major or minor and the IV/V neighbours, which share six or seven
notes and so nearly all their chroma, are told apart. Without chords it is chroma only. The
chunks' score curves are stitched (crossfaded over the overlaps) and decoded once over the
whole track with a Viterbi pass that charges ``change_penalty`` for every key change, so that a
modulation shows up once, where it happens, and a few ambiguous bars do not flicker. The song's
key is the key held longest (weighted by confidence); its confidence is the margin between it
and the runner-up over the time it is held (:func:`mirflow.harmony.margin_confidence`).
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve
from mirflow.harmony import MAJOR_NAMES, MINOR_NAMES, chord_evidence, key_label, margin_confidence

from mirflow.dsp.features import HOP, LibrosaAnalyzer, chroma, first_frame_time

__all__ = ["Key", "MAJOR_NAMES", "MINOR_NAMES", "PROFILES", "aggregate_key", "chord_evidence", "decide", "key_label",
           "key_scores"]

PROFILES = {
    # Krumhansl & Kessler (1982) probe-tone ratings.
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley (1999), Kostka-Payne corpus.
    "temperley": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                  (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
    # Albrecht & Shanahan (2013), common-practice corpus.
    "albrecht": ((0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
                 (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052)),
}
STEP = 1.0  # seconds between key scores
SILENT = 24  # the 25th state: nothing tonal to hear (silence, noise, a click)
# Below this spread of a window's summed chroma (standard deviation / mean) nothing tonal
# sounds there: white and brown noise and a click measure 0.03-0.07, the most level window of
# every GM dev song and real excerpt 0.15 or more (a drum-heavy recording's lowest).
ATONAL = 0.1
CHORD_WEIGHT = 1.0  # chosen on the GM corpus's and the key corpus's dev splits (benchmarks/accuracy_key.py)
MARGIN = 0.1  # mean score margin over the runner-up at which the song key's confidence is 0.63


def profile_matrix(profile: str) -> np.ndarray:
    """24 x 12: each key's profile, centred and unit-length, so a dot product with a
    centred unit chroma vector is their correlation."""
    major, minor = (np.asarray(p, dtype=float) for p in PROFILES[profile])
    rows = [np.roll(major, tonic) for tonic in range(12)] + [np.roll(minor, tonic) for tonic in range(12)]
    matrix = np.array(rows)
    matrix -= matrix.mean(axis=1, keepdims=True)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def key_scores(vectors: np.ndarray, profile: str) -> np.ndarray:
    """Correlation of chroma vectors (n x 12) with the 24 keys (n x 24; 0 for a flat vector)."""
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.maximum(norms, 1e-12)) @ profile_matrix(profile).T


class Key(LibrosaAnalyzer):
    """The key over time (a segment per key, modulations included) and the song's key."""

    name = "librosa_enhanced.key"
    version = "6"
    params = {
        # Albrecht-Shanahan: 0.77 MIREX on the GM corpus's dev split where Krumhansl-Kessler gives
        # 0.50 and Temperley 0.66 (equal on the project's own synthesizer): benchmarks/independent.py.
        "profile": mirflow.Param("albrecht", str, choices=tuple(PROFILES), help="key profile"),
        "chroma": mirflow.Param("stft", str, choices=("stft", "cqt"),
                                help="chroma from an 8192-point STFT (faster) or a constant-Q transform"),
        "window": mirflow.Param(16.0, float, min=2.0, max=120.0, help="seconds of chroma behind each key score"),
        "change_penalty": mirflow.Param(30.0, float, min=0.0, max=1000.0,
                                        help="cost of a key change (higher: fewer, surer changes)"),
        "chord_weight": mirflow.Param(CHORD_WEIGHT, float, min=0.0, max=10.0,
                                      help="weight of the chord step's tonal evidence beside the chroma (0: chroma only)"),
    }
    requires = {"chords": mirflow.Requirement("chords", optional=True, at_merge=True)}
    outputs = {"key": mirflow.LABEL}
    chunk_outputs = {"scores": mirflow.CURVE}

    def calls_librosa(self) -> bool:
        return self.config["chroma"] == "cqt"  # the STFT chroma is numpy's (mirflow.dsp.librosa_port)

    def analyze(self, chunk, inputs):
        """Key scores every STEP seconds of the chunk: 24 correlations and a silence flag."""
        times = np.arange(0.0, max(chunk.duration, STEP / 2), STEP)
        values = np.zeros((len(times), 25), dtype=np.float32)
        if chunk.is_silent() or chunk.duration < 0.5:
            values[:, SILENT] = 1.0
            return {"scores": {"times": times, "values": values}}
        frames = chroma(chunk, self.config["chroma"]).T.astype(float)  # n x 12 (digital silence: zeros)
        summed = np.vstack([np.zeros(12), np.cumsum(frames, axis=0)])
        rate = chunk.sample_rate / HOP
        half = self.config["window"] / 2
        frame_times = times - first_frame_time(chunk)
        first = np.clip(np.round((frame_times - half) * rate).astype(int), 0, len(frames))
        last = np.clip(np.round((frame_times + half) * rate).astype(int) + 1, 0, len(frames))
        windows = summed[last] - summed[first]
        values[:, :24] = key_scores(windows, self.config["profile"])
        totals = windows.sum(axis=1)
        spread = windows.std(axis=1) / np.maximum(windows.mean(axis=1), 1e-12)
        values[:, SILENT] = (totals <= 1e-6) | (spread < ATONAL)
        return {"scores": {"times": times, "values": values}}

    def decode(self, times: np.ndarray, scores: np.ndarray, duration: float) -> dict:
        """Key segments from the whole track's score curve, and the song's key."""
        path, posterior = viterbi_keys(scores, self.config["change_penalty"])
        segments = []
        edges = np.r_[0, np.nonzero(np.diff(path))[0] + 1, len(path)]
        for a, b in zip(edges[:-1], edges[1:]):
            if path[a] == SILENT:
                continue
            start = 0.0 if a == 0 else float((times[a - 1] + times[a]) / 2)
            end = duration if b == len(path) else float((times[b - 1] + times[b]) / 2)
            segments.append({"start": start, "end": end, "label": key_label(int(path[a])),
                             "confidence": float(posterior[a:b, path[a]].mean())})
        if not segments:
            return {"label": None, "confidence": 0.0, "timeline": []}
        held: dict[str, float] = {}
        for segment in segments:
            held[segment["label"]] = held.get(segment["label"], 0.0) + (segment["end"] - segment["start"]) * segment["confidence"]
        label = max(held, key=held.get)
        steps = np.zeros(len(path), dtype=bool)
        for segment in segments:
            if segment["label"] == label:
                steps |= (times >= segment["start"]) & (times <= segment["end"])
        confidence = margin_confidence(scores[steps, :24].mean(axis=0), MARGIN) if steps.any() else 0.0
        return {"label": label, "confidence": confidence, "timeline": segments}


SHARPNESS = 25.0  # correlation -> log-probability scale (a 0.1 better correlation: e^2.5 more likely)


def viterbi_keys(scores: np.ndarray, change_penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """The most likely key per step (index 0-23, or SILENT) and each step's posterior-like
    probabilities (softmax of the scores), charging ``change_penalty`` per change."""
    n = len(scores)
    silent = scores[:, SILENT] > 0.5
    log_p = np.empty((n, 25))
    log_p[:, :24] = SHARPNESS * scores[:, :24]
    log_p[:, SILENT] = np.where(silent, 1e3, -1e3)
    log_p[silent, :24] = -1e3
    posterior = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    best = log_p[0].copy()
    back = np.zeros((n, 25), dtype=np.int8)
    for t in range(1, n):
        leader = int(np.argmax(best))
        switch = best[leader] - change_penalty
        stay = best >= switch
        back[t] = np.where(stay, np.arange(25), leader)
        best = np.where(stay, best, switch) + log_p[t]
    path = np.empty(n, dtype=int)
    path[-1] = int(np.argmax(best))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path, posterior


def decide(analyzer: Key, times: np.ndarray, scores: np.ndarray, chords: list[dict] | None, duration: float) -> dict:
    """The key output from the stitched chroma scores (n x 25) and, when given, the chords."""
    if chords and analyzer.config["chord_weight"] > 0:
        scores = scores.copy()
        scores[:, :24] += analyzer.config["chord_weight"] * chord_evidence(chords, times, analyzer.config["window"])
    return analyzer.decode(times, scores, duration)


def aggregate_key(analyzer: Key, parts, track) -> dict:
    curve = merge_curve(parts, "scores")
    times, scores = np.asarray(curve["times"], dtype=float), np.asarray(curve["values"], dtype=float)
    if len(times) == 0:
        return {"key": {"label": None, "confidence": 0.0, "timeline": []}}
    return {"key": decide(analyzer, times, scores, track.inputs.get("chords"), track.duration)}
