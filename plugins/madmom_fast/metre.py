"""The metre stage: from the beats the downbeat network's DBN decodes to the level a musician
writes (the tactus, the beats per bar, duple or triple subdivision).

madmom's downbeat network was trained on music in 3/4 and 4/4 and hears a beat wherever the
music has a regular accent. On compound metres (6/8, 12/8) the DBN then follows the eighth
notes or every other eighth, and calls each dotted quarter or each 6/8 bar a bar of "3/4":
a 58 BPM 12/8 blues comes out as 175 BPM 3/4. This stage looks at the decoded grid from the
outside, with evidence that holds without drums:

- the **onset strength** (the spectral flux the network takes as input) halfway between the
  beats and at their thirds: whether the decoded beat is itself split in two or three, or
  is only every other pulse of an even stream of eighths;
- **where the harmony changes** (pitch classes averaged per beat): on which decoded bars the
  chords change, which tells 6/8 from 12/8 and a fast 3/4 from a 6/8 at a third of its tempo;
- a **prior over tempo per metre**: a compound tactus (the dotted quarter) lies between
  COMPOUND_BPM; a simple one at 3/4 from the eighths of a 12/8 ballad would be above FAST_BPM.

Three cases are re-levelled (the rest keep their beats, and gain only their subdivision):

1. *Pairs of eighths* (3/4, the onsets halfway between beats nearly as strong as on them):
   each decoded bar is six eighths, i.e. one bar of 6/8 (two dotted-quarter beats: the bar's
   first beat and the middle of its second), or half a bar of 12/8 where the chords change
   on every other decoded bar only.
2. *Eighths* (3/4 above FAST_BPM whose beats are not split in two): each decoded bar is one
   dotted quarter; the bars group in 4 (12/8) or 2 (6/8) by where the chords change, unless
   the chords change on every decoded bar alike (a fast waltz: 3/4 stays).
3. *Triplets* (4/4 below COMPOUND_BPM[1] with onsets at the beat's thirds, not its half): the
   beats stay; the bar is written 6/8 where the chords change every two beats, else 12/8.

Before that, the bars' phase: the harmony moves the bars (``bar_phase``) unless the network
marks the decoded downbeats clearly (``heard_downbeats``), as it does with drums.

The thresholds were chosen on the dev split of ``benchmarks/groove_corpus.py`` (FluidR3) and
the GM dev split; docs/accuracy-metre.md has the numbers on the test splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FPS = 100  # activation and onset frames per second
CHROMA_FPS = 10  # pitch-class frames per second (a beat is >= 0.28 s)
PAIR_SHARE = 0.7  # onsets halfway between beats at least this share of those on the beats: pairs of eighths
FLOOR_SHARE = 0.05  # onsets at the thirds (or the half) of a beat at least this share of the beat's ...
SPLIT_RATIO = 1.3  # ... and this many times those at the half (the thirds): the beat is split in three (two)
FAST_BPM = 150.0  # a decoded 3/4 this fast with nothing between its beats is a stream of eighths
COMPOUND_BPM = (36.0, 92.0)  # where a dotted-quarter tactus lies
GROUP_SHARE = 1.5  # chords change on one beat in two this much more than on the other: bars of 2 beats
DOWNBEAT_SHARE = 3.0  # the network's downbeats this much above every other position: it heard the bars
HALF_BAR_SHARE = 2.0  # ... on one beat in four this much more than on the one halfway: bars of 4 (12/8)
# Bar phase: the harmony changes on the downbeat. Where it changes on another position of the
# bar PHASE_SHARE times as much as on the first (GM dev: the two drum-less songs whose bars the
# DBN started one beat late, 2.2 and 2.9; the highest of the songs it got right, 1.1: swing,
# whose bass walks on every beat), that position is the downbeat.
PHASE_SHARE = 1.5


@dataclass
class Metre:
    """Beats (times, positions in the bar), the written time signature, its confidence and
    the subdivision of the beat (2: duple, 3: triple; 6/8 and 12/8 are triple)."""

    times: np.ndarray
    positions: np.ndarray
    signature: str | None
    confidence: float
    subdivision: int

    def outputs(self) -> dict:
        """The downbeat analyzer's outputs: beats with positions, downbeats, time signature."""
        return {
            "beats": [{"time": float(t), "position": int(p)} for t, p in zip(self.times, self.positions)],
            "downbeats": [{"time": float(t)} for t, p in zip(self.times, self.positions) if p == 1],
            "time_signature": {"label": self.signature, "confidence": self.confidence,
                               "subdivision": self.subdivision if self.signature else None},
        }


def heard_downbeats(times: np.ndarray, positions: np.ndarray, activation: np.ndarray) -> bool:
    """Whether the network marks the decoded first beats as downbeats DOWNBEAT_SHARE times as
    strongly as any other position: then the harmony does not move the bars (a walking bass
    changes the pitch classes on every beat, and swing then had its bars moved a beat early)."""
    if len(times) < 9 or activation.ndim == 1:
        return False
    peaks = np.array([activation[max(0, f - 2):f + 3, 1].max() for f in np.round(times * FPS).astype(int)])
    means = [peaks[positions == p].mean() for p in range(1, int(positions.max()) + 1) if (positions == p).any()]
    return len(means) > 1 and means[0] >= DOWNBEAT_SHARE * max(means[1:])


def bar_phase(times: np.ndarray, positions: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Positions in the bar, moved so that bars start where the harmony changes.

    The downbeat network hears bars mostly through the drums; without them it can start
    every bar on the wrong beat (GM dev: downbeat F 0 on two drum-less songs, beats right).
    Chords change on downbeats far more often than on other beats: the pitch classes are
    averaged per beat, and if the change into the beats of one position is PHASE_SHARE
    times the change into the first beats, that position becomes the first.
    """
    if len(times) < 9 or len(chroma) == 0:
        return positions
    per_bar = int(positions.max())
    frames = np.clip(np.round(times * CHROMA_FPS).astype(int), 0, len(chroma) - 1)
    beats = np.array([chroma[a:max(a + 1, b)].mean(axis=0) for a, b in zip(frames[:-1], frames[1:])])
    beats /= np.maximum(np.linalg.norm(beats, axis=1, keepdims=True), 1e-9)
    change = 1.0 - np.sum(beats[1:] * beats[:-1], axis=1)  # into beat 1, 2, ... (from the one before)
    at = positions[1:len(change) + 1]
    means = np.array([change[at == p].mean() if (at == p).any() else 0.0 for p in range(1, per_bar + 1)])
    best = int(np.argmax(means)) + 1
    if best == 1 or means[best - 1] < PHASE_SHARE * means[0]:
        return positions
    return (positions - best) % per_bar + 1


def onset_strength(features: np.ndarray, widths: list[int]) -> np.ndarray:
    """Spectral flux per frame: the positive spectral differences the downbeat network takes
    as input (the second half of each frame size's columns), summed over frame sizes."""
    parts, first = [], 0
    for width in widths:
        parts.append(features[:, first + width // 2:first + width].sum(axis=1))
        first += width
    return np.sum(parts, axis=0).astype(np.float32) if parts else np.zeros(len(features), dtype=np.float32)


def peaks_at(curve: np.ndarray, times: np.ndarray, fps: int = FPS, reach: int = 2) -> np.ndarray:
    """The curve's largest value within ``reach`` frames of each time."""
    frames = np.round(np.asarray(times) * fps).astype(int)
    return np.array([curve[max(0, f - reach):f + reach + 1].max() if 0 <= f < len(curve) else 0.0 for f in frames])


def subdivision_shares(times: np.ndarray, onsets: np.ndarray) -> tuple[float, float]:
    """(halfway, thirds): the median onset strength between consecutive beats, at their middle
    and at their thirds, as shares of the median strength on the beats."""
    on = float(np.median(peaks_at(onsets, times)))
    if on <= 0:
        return 0.0, 0.0
    start, span = times[:-1], np.diff(times)
    half = float(np.median(peaks_at(onsets, start + span / 2)))
    thirds = float(np.median((peaks_at(onsets, start + span / 3) + peaks_at(onsets, start + 2 * span / 3)) / 2))
    return half / on, thirds / on


def harmonic_change(edges: np.ndarray, chroma: np.ndarray | None, span: int = 1) -> np.ndarray:
    """How much the pitch classes change at each of ``edges`` (beat times, and where the last
    beat ends): 1 - cosine between their means over the ``span`` beats before and the ``span``
    beats from it; one value per beat from the second, 0 at the first and last ``span - 1``.

    Windows of several beats see the chord change through a bass that walks or plays a boogie
    figure on every beat: the figure repeats in every window alike."""
    count = max(0, len(edges) - 2)
    if chroma is None or len(chroma) == 0 or count == 0:
        return np.zeros(count)
    frames = np.clip(np.round(np.asarray(edges) * CHROMA_FPS).astype(int), 0, len(chroma) - 1)
    beats = np.array([chroma[a:max(a + 1, b)].mean(axis=0) for a, b in zip(frames[:-1], frames[1:])])
    change = np.zeros(count)
    for n in range(1, len(beats)):
        before, after = beats[max(0, n - span):n].mean(axis=0), beats[n:n + span].mean(axis=0)
        if n >= span and n + span <= len(beats):
            norm = max(float(np.linalg.norm(before) * np.linalg.norm(after)), 1e-9)
            change[n - 1] = 1.0 - float(before @ after) / norm
    return change


def grouping(edges: np.ndarray, chroma: np.ndarray | None) -> tuple[int, int] | None:
    """(group, phase): dotted-quarter beats grouped into bars of 4 (12/8) or 2 (6/8) by where
    the harmony changes (windows of two beats either side, which a boogie or walking bass
    repeats alike), phase = the index of a bar's first
    beat, 0-based; None when the harmony changes alike on every beat (or never).

    12/8 where the chords change on one beat in four at least HALF_BAR_SHARE times as much as
    on the beat halfway through that bar (in 6/8 with a chord per bar, that beat starts a bar
    too), else 6/8 where they change on one beat in two GROUP_SHARE times as much as on the other."""
    change = harmonic_change(edges, chroma, 2)  # change[i]: into beat i + 1, half a 12/8 bar either side
    if len(change) >= 12:
        means = np.array([change[(phase - 1) % 4::4].mean() for phase in range(4)])
        best = int(np.argmax(means))
        if means[best] > 0.02 and means[best] >= HALF_BAR_SHARE * max(means[(best + 2) % 4], 1e-6):
            return 4, best
    if len(change) >= 6:
        means = np.array([change[(phase - 1) % 2::2].mean() for phase in range(2)])
        best = int(np.argmax(means))
        if means[best] > 0.02 and means[best] >= GROUP_SHARE * max(means[1 - best], 1e-6):
            return 2, best
    return None


def compound(starts: np.ndarray, end: float, chroma, confidence: float, fallback: int | None) -> Metre | None:
    """Dotted-quarter beats ``starts`` (and where the last one ends) as 6/8 or 12/8, their bars
    by where the chords change; ``fallback`` bar length where the harmony says nothing (None:
    no compound reading then)."""
    if len(starts) < 4:
        return None
    found = grouping(np.r_[starts, end], chroma)
    if found is None:
        if fallback is None:
            return None
        found = (fallback, 0)
    group, phase = found
    # Counted in beat periods from the first beat, so that a beat the decode missed does not
    # shift every later bar.
    index = np.round((starts - starts[0]) / np.median(np.diff(starts))).astype(int)
    positions = (index - phase) % group + 1
    return Metre(starts, positions, "12/8" if group == 4 else "6/8", confidence, 3)


def relevel(decoded: Metre, activation: np.ndarray, onsets: np.ndarray | None, chroma: np.ndarray | None) -> Metre:
    """The decoded metre at the level a musician writes (see the module's docstring)."""
    times, positions = decoded.times, decoded.positions
    if onsets is None or len(times) < 8 or decoded.signature is None:
        return decoded
    half, thirds = subdivision_shares(times, onsets)
    period = float(np.median(np.diff(times)))
    bpm = 60.0 / period
    per_bar = int(positions.max())
    # Split in three or in two: onsets at one of them clearly above the other. An onset curve
    # that is as high at both (slow attacks, reverb) says nothing about the subdivision.
    triple = thirds >= FLOOR_SHARE and thirds >= SPLIT_RATIO * half
    duple = half >= FLOOR_SHARE and half >= SPLIT_RATIO * thirds
    if per_bar == 3 and half >= PAIR_SHARE:
        # Case 1: each decoded beat is two eighths; the bar's first and its middle are the beats.
        first = np.nonzero(positions == 1)[0]
        starts = np.sort(np.r_[times[first], times[first] + 1.5 * period])
        starts = starts[starts <= times[-1] + 1e-6]
        if COMPOUND_BPM[0] <= bpm / 1.5 <= COMPOUND_BPM[1]:
            found = compound(starts, times[-1] + period, chroma, decoded.confidence, 2)
            if found is not None:
                return found
    if per_bar == 3 and bpm >= FAST_BPM and not duple:  # (a third of such a beat is no musical pulse)
        # Case 2: each decoded beat is an eighth and each decoded bar a dotted quarter, which
        # starts on the eighth with the strongest onsets (the bass and the kick drum).
        strength = peaks_at(onsets, times)
        first = 1 + int(np.argmax([strength[positions == p].mean() for p in (1, 2, 3)]))
        starts = times[positions == first]
        if COMPOUND_BPM[0] <= bpm / 3 <= COMPOUND_BPM[1]:
            found = compound(starts, times[-1] + period, chroma, decoded.confidence, None)
            if found is not None:
                return found
    if per_bar == 4 and triple and bpm <= COMPOUND_BPM[1]:
        # Case 3: slow beats split in three: a 12/8 ballad or blues decoded at its dotted quarter,
        # or a 6/8 one whose chords change every two beats.
        found = compound(times, times[-1] + period, chroma, decoded.confidence, None)
        if found is not None and found.signature == "6/8":
            return found
        return Metre(times, positions, "12/8", decoded.confidence, 3)
    subdivision = 3 if triple else 2
    return Metre(times, positions, decoded.signature, decoded.confidence, subdivision)
