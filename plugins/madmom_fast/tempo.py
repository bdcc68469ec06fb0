"""madmom_fast.tempo: the tempo, its curve and its changes, from the decoded beats."""

from __future__ import annotations

import numpy as np

import mirflow


class Tempo(mirflow.Analyzer):
    """Global tempo from the decoded beats (with the half/double alternative), a tempo curve
    smoothed over bars, and the times where the tempo changes markedly."""

    name = "madmom_fast.tempo"
    version = "2"
    resource = "cpu"
    sample_rate = None
    chunked = False  # works on the whole track's beats, not on audio
    params = {
        "smooth_beats": mirflow.Param(8, int, min=1, max=64, help="beats in the median window of the curve"),
        "change_threshold": mirflow.Param(0.08, float, min=0.01, max=0.5,
                                          help="relative tempo change that counts as a change"),
    }
    requires = {"beats": mirflow.Requirement("beats")}
    code_licence = "MIT (mirflow)"
    outputs = {"tempo": mirflow.SCALAR, "tempo_curve": mirflow.CURVE, "tempo_changes": mirflow.EVENTS}

    def analyze(self, chunk, inputs):
        times = np.array([beat["time"] for beat in inputs["beats"] or []], dtype=float)
        empty = {"tempo": {"value": None, "confidence": 0.0}, "tempo_curve": {"times": [], "values": []},
                 "tempo_changes": []}
        if len(times) < 3:
            return empty
        intervals = np.diff(times)
        median = float(np.median(intervals))
        near = np.abs(intervals / median - 1) < 0.05
        if not near.any():  # an even count whose two middle intervals differ: the median lies between them
            near = np.abs(intervals - median) <= np.abs(intervals - median).min() + 1e-9
        steady = float(np.mean(near))  # share of beats at that tempo
        # Beats sit on 10 ms frames: at 96 BPM the intervals alternate 0.62 / 0.63 s, and their
        # median is 96.8 or 95.2 BPM. The mean of the intervals near the median is the tempo.
        bpm = 60.0 / float(np.mean(intervals[near]))
        curve_times, curve = tempo_curve(times, self.config["smooth_beats"])
        return {
            "tempo": {"value": bpm, "confidence": steady, "alternative": bpm * 2 if bpm < 100 else bpm / 2},
            "tempo_curve": {"times": curve_times, "values": curve},
            "tempo_changes": tempo_changes(curve_times, curve, self.config["change_threshold"],
                                           self.config["smooth_beats"]),
        }


def tempo_curve(times: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """BPM at each beat (from the second) over ``window`` intervals around it: the mean of the
    middle half of those intervals, so that a missed or extra beat is ignored (as by a median)
    and the 10 ms frame grid averages out (unlike a median, which picks 0.62 or 0.63 s)."""
    intervals = np.diff(times)
    half = window // 2
    smoothed = np.array([60.0 / _middle_mean(intervals[max(0, i - half):i + half + 1])
                         for i in range(len(intervals))])
    return times[1:], smoothed


def _middle_mean(values: np.ndarray) -> float:
    ordered = np.sort(values)
    cut = len(ordered) // 4
    return float(np.mean(ordered[cut:len(ordered) - cut]))


def tempo_changes(times: np.ndarray, curve: np.ndarray, threshold: float, settle: int) -> list[dict]:
    """Where the curve departs by more than ``threshold`` from the tempo held before and then
    stays there for ``settle`` beats (so a single odd beat is not a change)."""
    changes, held, n = [], curve[0], 0
    while n < len(curve):
        if abs(curve[n] / held - 1) > threshold:
            ahead = curve[n:n + settle]
            if len(ahead) and np.all(np.abs(ahead / curve[n] - 1) <= threshold):
                settled = float(np.median(ahead))  # the curve passes through in-between values first
                changes.append({"time": float(times[n]), "from_bpm": float(held), "to_bpm": settled})
                held = settled
                n += settle
                continue
        n += 1
    return changes
