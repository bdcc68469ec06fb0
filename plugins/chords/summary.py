"""chords.summary: what a chord timeline says about the song's harmony.

Works on any chord step's output (no audio): the share of time of each chord, chord
changes per minute, the most frequent progressions (2- to 4-chord n-grams), and a
harmonic change curve (how different the chords of the next ``window`` seconds are from
those of the last) whose peaks mark likely section boundaries.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

import mirflow
from mirflow.harmony import pitch_classes

CURVE_RATE = 2.0  # frames per second of the harmonic change curve

__all__ = ["Summary", "harmonic_change", "most_common_ngrams", "boundaries"]


class Summary(mirflow.Analyzer):
    """Chord histogram, changes per minute, top progressions, harmonic change curve and
    the likely section boundaries it shows."""

    name = "chords.summary"
    version = "1"
    resource = "cpu"
    sample_rate = None
    chunked = False  # reads the whole track's chords, not audio
    params = {
        "window": mirflow.Param(8.0, float, min=1.0, max=60.0,
                                help="seconds of chords compared before and after each time"),
        "boundary_threshold": mirflow.Param(0.2, float, min=0.0, max=1.0,
                                            help="harmonic change (0-1) that marks a section boundary"),
        "top": mirflow.Param(5, int, min=1, max=50, help="progressions listed per length"),
    }
    requires = {"chords": mirflow.Requirement("chords")}
    code_licence = "MIT (mirflow)"
    outputs = {
        "chord_histogram": mirflow.SCALAR,
        "chord_changes_per_minute": mirflow.SCALAR,
        "progression": mirflow.LABEL,
        "harmonic_change": mirflow.CURVE,
        "harmonic_boundaries": mirflow.EVENTS,
    }

    def merge(self, parts, track):
        return dict(parts[0].outputs)  # one whole-track part: keep its extra fields as they are

    def analyze(self, chunk, inputs):
        chords = [c for c in inputs["chords"] or [] if c["end"] > c["start"]]
        duration = chunk.duration if chunk is not None else (chords[-1]["end"] if chords else 0.0)
        voiced = [c for c in chords if c["label"] not in ("N", "X")]
        shares: dict[str, float] = {}
        for chord in voiced:
            shares[chord["label"]] = shares.get(chord["label"], 0.0) + (chord["end"] - chord["start"]) / duration
        sequence = [c["label"] for n, c in enumerate(voiced) if n == 0 or voiced[n - 1]["label"] != c["label"]]
        changes = max(0, len(sequence) - 1)
        grams = {n: most_common_ngrams(sequence, n, self.config["top"]) for n in (2, 3, 4)}
        best = next((grams[n][0] for n in (4, 3, 2) if grams[n] and grams[n][0]["count"] > 1), None)
        times, change = harmonic_change(chords, duration, self.config["window"])
        return {
            "chord_histogram": {"value": len(shares), "confidence": 1.0,
                                "shares": dict(sorted(shares.items(), key=lambda item: -item[1]))},
            "chord_changes_per_minute": {"value": changes / (duration / 60) if duration else None, "confidence": 1.0},
            "progression": {"label": " ".join(best["chords"]) if best else None,
                            "confidence": best["share"] if best else 0.0, "ngrams": grams},
            "harmonic_change": {"times": times, "values": change},
            "harmonic_boundaries": boundaries(times, change, self.config["boundary_threshold"], self.config["window"]),
        }


def most_common_ngrams(sequence: list[str], n: int, top: int) -> list[dict]:
    """The ``top`` most frequent runs of ``n`` successive chords, with their count and share
    of all runs of that length (ties: the one heard first)."""
    runs = [tuple(sequence[i:i + n]) for i in range(len(sequence) - n + 1)]
    if not runs:
        return []
    first = {}
    for i, run in enumerate(runs):
        first.setdefault(run, i)
    counted = sorted(Counter(runs).items(), key=lambda item: (-item[1], first[item[0]]))
    return [{"chords": list(run), "count": count, "share": count / len(runs)} for run, count in counted[:top]]


def harmonic_change(chords: list[dict], duration: float, window: float) -> tuple[np.ndarray, np.ndarray]:
    """At CURVE_RATE frames per second: 1 - cosine similarity of the mean chord pitch classes
    in the ``window`` seconds before and after (0 inside a progression that repeats every
    ``window`` seconds; 0 where either window would reach past the ends)."""
    frames = int(duration * CURVE_RATE)
    if frames == 0:
        return np.zeros(0), np.zeros(0)
    grid = np.zeros((frames, 12))
    for chord in chords:
        a, b = int(chord["start"] * CURVE_RATE), int(np.ceil(chord["end"] * CURVE_RATE))
        grid[a:b] = pitch_classes(chord["label"])
    width = max(1, int(window * CURVE_RATE))
    summed = np.vstack([np.zeros(12), np.cumsum(grid, axis=0)])
    index = np.arange(frames)
    before = summed[index] - summed[np.maximum(0, index - width)]
    after = summed[np.minimum(frames, index + width)] - summed[index]
    norms = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    cosine = np.where(norms > 0, (before * after).sum(axis=1) / np.maximum(norms, 1e-12), 1.0)
    full = (index >= width) & (index + width <= frames)  # half-empty windows at the ends say nothing
    return index / CURVE_RATE, np.where(full, np.clip(1 - cosine, 0.0, 1.0), 0.0)


def boundaries(times: np.ndarray, change: np.ndarray, threshold: float, window: float) -> list[dict]:
    """Peaks of the change curve above ``threshold``, at least ``window`` seconds apart."""
    found: list[dict] = []
    for i in np.argsort(-change):
        if change[i] < threshold:
            break
        if all(abs(times[i] - f["time"]) >= window for f in found):
            found.append({"time": float(times[i]), "strength": float(change[i])})
    return sorted(found, key=lambda f: f["time"])
