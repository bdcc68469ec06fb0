"""Where the beats are, from a network's activation around the frames a decode chose: each beat
at its activation peak between frames, the beats the network does not hear at either end
dropped, and the test for a decode that followed every other beat (the tracker then decodes
again at double the tempo)."""

from __future__ import annotations

import numpy as np

from .networks import FPS

END_SHARE = 0.2  # beats at either end whose activation is below this share of the typical beat's are dropped
# Half tempo: halfway between the decoded beats the network still hears a beat (median
# activation at least HALF_EVIDENCE, and HALF_SHARE of the beats' own). On the GM dev split the
# songs the DBN tracks at half tempo (half-time feel and swing at 180-184 BPM) have 0.11-0.16
# there; every song tracked right has at most 0.04 on the whole file (the eighth notes of
# ballads and funk), but a drum-less song cut into 30 s chunks reached 0.083 (the networks are
# bidirectional: a chunk that ends mid-song changes what they hear before the end).
HALF_EVIDENCE = 0.1
HALF_SHARE = 0.1


def beat_activation(activation: np.ndarray) -> np.ndarray:
    """Per frame, how much the network hears a beat (beat and downbeat columns summed)."""
    return activation if activation.ndim == 1 else activation.sum(axis=1)


def strength_at(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """The beat activation's peak within two frames of each of ``frames``."""
    summed = beat_activation(activation)
    return np.array([summed[max(0, f - 2):f + 3].max() for f in np.asarray(frames, dtype=int)])


def double_tempo_floor(frames: np.ndarray, activation: np.ndarray, max_bpm: float) -> float | None:
    """The slowest tempo to decode again with when the beats are at half the tempo the network
    hears, else None.

    The DBN weighs every tempo alike, and where beats 2 and 4 are weaker than 1 and 3 (a
    half-time drum feel, swing with the ride on every beat) it can follow every other beat.
    The network still marks the beats it skipped: if the activation halfway between decoded
    beats is a beat's (HALF_EVIDENCE, HALF_SHARE), the track is decoded again with tempi from
    1.5 times the one found, which leaves the DBN the double tempo (and its phase) to find.
    """
    if len(frames) < 4:
        return None
    frames = np.asarray(frames, dtype=int)
    on = float(np.median(strength_at(frames, activation)))
    between = float(np.median(strength_at((frames[:-1] + frames[1:]) // 2, activation)))
    bpm = 60.0 * FPS / float(np.median(np.diff(frames)))
    if between >= HALF_EVIDENCE and between >= HALF_SHARE * on and 2 * bpm <= max_bpm:
        return 1.5 * bpm
    return None


def peak_times(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """Each beat's time (seconds) at its activation peak, interpolated between frames (a
    parabola through the peak frame and its neighbours, at most half a frame away).

    A peak often spans two frames of nearly equal activation; which of them is the larger
    then turns on float rounding, and the chunked and whole-file runs placed a third of
    the beats of some songs one frame (10 ms) apart. The parabola's vertex hardly moves
    with such a difference, and it is where the peak is, not the nearest frame."""
    frames = np.asarray(frames, dtype=int)
    summed = beat_activation(activation).astype(np.float64)
    if len(frames) == 0:
        return np.zeros(0)
    left = summed[np.maximum(frames - 1, 0)]
    middle = summed[frames]
    right = summed[np.minimum(frames + 1, len(summed) - 1)]
    curvature = left - 2 * middle + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return (frames + np.clip(np.nan_to_num(offset), -0.5, 0.5)) / FPS


def heard(frames: np.ndarray, activation: np.ndarray) -> slice:
    """The beats between the first and the last one the network really hears: the DBN keeps
    its tempo going through a final chord's release or a fade into silence (2-3 s of beats
    after the music on the GM corpus, at activations under a tenth of the song's typical
    beat), and before the first note. Only the ends are trimmed: a quiet passage inside the
    song keeps its beats."""
    if len(frames) == 0:
        return slice(0, 0)
    strength = strength_at(frames, activation)
    strong = np.nonzero(strength >= END_SHARE * np.median(strength))[0]
    return slice(int(strong[0]), int(strong[-1]) + 1) if len(strong) else slice(0, 0)


def beat_peaks(in_beat: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """madmom's beat correction: in each run of frames whose state lies in a beat's range,
    the frame with the highest activation (either column for downbeat activations)."""
    edges = np.nonzero(np.diff(in_beat.astype(int)))[0] + 1
    if in_beat[0]:
        edges = np.r_[0, edges]
    if in_beat[-1]:
        edges = np.r_[edges, in_beat.size]
    width = 1 if activation.ndim == 1 else activation.shape[1]
    return np.asarray([np.argmax(activation[left:right]) // width + left for left, right in edges.reshape((-1, 2))],
                      dtype=float)
