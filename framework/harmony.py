"""Harmony helpers any plugin may use: Harte chord labels as pitch classes, and what a chord
sequence says about the key.

Shared code belongs in the core (no plugin package imports another): ``chords.summary``,
``structure`` and ``librosa_enhanced.key`` all read chord labels, so the reading lives here.
Nothing here imports a heavy library.

The key evidence weighs what a musician hears in a progression and a chroma profile does not:
how long the tonic chord sounds, the dominant resolving to it (V-I, V-i: a cadence), the major V
of a minor key (its raised leading tone, foreign to the relative major), and the chord a song
ends on. The relative major and minor share all seven notes and a key and its IV or V neighbour
six of seven, so a chroma profile alone confuses them; the chords' functions do not.
"""

from __future__ import annotations

import numpy as np

NOTES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


def chord_root(label: str) -> tuple[int, bool] | None:
    """A Harte label's root pitch class and whether its third is minor; None for N, X or an
    unknown root."""
    root, _, quality = str(label).partition(":")
    root = FLATS.get(root, root)
    if root not in NOTES:
        return None
    return NOTES.index(root), quality.startswith(("min", "dim", "hdim"))


def pitch_classes(label: str) -> np.ndarray:
    """A chord label's pitch classes as a 12-vector (zeros for N, X or an unknown root)."""
    vector = np.zeros(12)
    found = chord_root(label)
    if found is None:
        return vector
    root, minor = found
    quality = label.partition(":")[2]
    intervals = [0, 3 if minor else 4, 6 if quality.startswith("dim") else 7]
    if "7" in quality:
        intervals.append(11 if quality.startswith("maj") else 10)
    for interval in intervals:
        vector[(root + interval) % 12] = 1.0
    return vector


def key_label(index: int) -> str:
    """Key 0-11 (C..B major) or 12-23 (C..B minor) as 'Eb major', 'F# minor' (mir_eval's spelling)."""
    return f"{MAJOR_NAMES[index]} major" if index < 12 else f"{MINOR_NAMES[index - 12]} minor"


def key_index(label: str) -> int:
    """The inverse of :func:`key_label` ('A minor' -> 21), for any spelling of the tonic."""
    tonic, _, mode = label.partition(" ")
    found = chord_root(tonic)
    if found is None or mode not in ("major", "minor"):
        raise ValueError(f"not a key: {label!r}")
    return found[0] + (12 if mode == "minor" else 0)


# How much a second of a chord says for a key, by its function there: the tonic chord most,
# then the dominant (the major V, in minor keys too: harmonic minor), the subdominant, the other
# diatonic chords and the usual borrowed ones (bVI, bVII in minor; iv in major); a chord outside
# the key counts against it.
MAJOR_FUNCTIONS = {(0, "maj"): 1.0, (7, "maj"): 0.5, (5, "maj"): 0.4, (9, "min"): 0.3, (2, "min"): 0.3,
                   (4, "min"): 0.2, (5, "min"): 0.1, (10, "maj"): 0.1}
MINOR_FUNCTIONS = {(0, "min"): 1.0, (7, "maj"): 0.6, (5, "min"): 0.4, (8, "maj"): 0.3, (3, "maj"): 0.2,
                   (10, "maj"): 0.2, (7, "min"): 0.2, (5, "maj"): 0.1, (0, "maj"): 0.3}
OUTSIDE = -0.3
# A dominant resolving to the tonic (V-I; V-i with the major V), in seconds of tonic chord it is
# worth; the backward IV-I (plagal) less. The chord a song ends on (after its last change), as much
# as a cadence.
CADENCE = 2.0
PLAGAL = 0.5
FINAL = 2.0


def function_table() -> np.ndarray:
    """24 keys x 12 roots x (major, minor): the weight of each chord in each key."""
    table = np.full((24, 12, 2), OUTSIDE)
    for tonic in range(12):
        for (step, quality), weight in MAJOR_FUNCTIONS.items():
            table[tonic, (tonic + step) % 12, int(quality == "min")] = weight
        for (step, quality), weight in MINOR_FUNCTIONS.items():
            table[12 + tonic, (tonic + step) % 12, int(quality == "min")] = weight
    return table


def voiced(chords: list[dict]) -> list[tuple[float, float, int, bool]]:
    """(start, end, root, minor) of the chords that have a root, equal neighbours joined."""
    found: list[tuple[float, float, int, bool]] = []
    for chord in chords:
        parsed = chord_root(chord.get("label", "N"))
        if parsed is None or chord["end"] <= chord["start"]:
            continue
        if found and found[-1][2:] == parsed and chord["start"] - found[-1][1] < 1e-6:
            found[-1] = (found[-1][0], float(chord["end"]), *parsed)
        else:
            found.append((float(chord["start"]), float(chord["end"]), *parsed))
    return found


def cadences(chords: list[dict]) -> list[tuple[float, np.ndarray]]:
    """(time of the arrival, 24-vector) for each chord change that resolves to a key's tonic:
    CADENCE for the keys whose major V moves to their tonic chord (V-I; V-i, the raised leading
    tone of a minor key), PLAGAL for IV-I and iv-i."""
    events = []
    sequence = voiced(chords)
    for (_, _, root_a, minor_a), (start, _, root_b, minor_b) in zip(sequence, sequence[1:]):
        vector = np.zeros(24)
        key = root_b + (12 if minor_b else 0)
        if (root_a - root_b) % 12 == 7 and not minor_a:
            vector[key] = CADENCE
        elif (root_a - root_b) % 12 == 5 and minor_a == minor_b:
            vector[key] = PLAGAL
        if vector.any():
            events.append((start, vector))
    return events


def chord_evidence(chords: list[dict], times: np.ndarray, window: float) -> np.ndarray:
    """len(times) x 24: what the chords of the ``window`` seconds around each time say for each
    key, per second of window: the chords' functions weighted by how long they sound there, the
    cadences that arrive there, and the song's last chord where the window reaches it."""
    table = function_table()
    evidence = np.zeros((len(times), 24))
    half = window / 2
    sequence = voiced(chords)
    for start, end, root, minor in sequence:
        overlap = np.clip(np.minimum(end, times + half) - np.maximum(start, times - half), 0, None)
        evidence += overlap[:, None] * table[:, root, int(minor)][None, :]
    for at, vector in cadences(chords):
        evidence += (np.abs(times - at) <= half)[:, None] * vector[None, :]
    if len(sequence) > 1:
        start, end, root, minor = sequence[-1]
        evidence[:, root + (12 if minor else 0)] += FINAL * (times + half >= start)
    return evidence / window


def song_evidence(chords: list[dict]) -> np.ndarray:
    """The whole song's chord evidence for each of the 24 keys, per second of chords (the
    window of :func:`chord_evidence` stretched over the whole song)."""
    sequence = voiced(chords)
    if not sequence:
        return np.zeros(24)
    first, last = sequence[0][0], sequence[-1][1]
    middle = np.array([(first + last) / 2])
    return chord_evidence(chords, middle, max(last - first, 1e-6) + 1e-6)[0]


def margin_confidence(scores: np.ndarray, scale: float) -> float:
    """0 when the two best of ``scores`` tie, towards 1 as the best pulls ahead (by ``scale``:
    0.63, twice that: 0.86)."""
    if len(scores) < 2:
        return 1.0
    best, second = np.sort(scores)[::-1][:2]
    return float(1.0 - np.exp(-max(best - second, 0.0) / scale))
