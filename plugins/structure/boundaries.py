"""Where sections start: on downbeats, preferably at phrase starts, never too close together.

Three rules on top of the novelty curve (:mod:`.segment` makes it):

1. **Minimum length in bars and in seconds.** ``min_units`` is the larger of ``min_bars``
   bars and ``min_seconds`` seconds, so a fast 3/4 song (1 s bars) is not cut every 4 bars.
2. **Phrase grid.** Sections in songs start every 4 or 8 bars counted from where the song's
   phrases start; an intro of odd length (3, 5 or 6 bars) moves that grid for the rest of the
   song. The grid's phase is the one that collects the most novelty; off-grid candidates keep
   ``off_grid`` of their novelty, so a strong change (a pickup bar, an odd-length intro) still
   wins over a weak change on the grid.
3. **A threshold from the song's own novelty.** The median of the curve's local maxima plus
   ``spread`` times their median absolute deviation: a song with few, strong changes and a song
   whose changes are all subtle both keep their section starts and drop the wiggles.
"""

from __future__ import annotations

import numpy as np

PHRASE_BARS = 4
OFF_GRID = 0.75  # novelty kept by a candidate off the phrase grid
ON_EIGHT = 1.0  # on the 8-bar grid
ON_FOUR = 0.92  # on the 4-bar grid only


def min_units(edges: np.ndarray, per_bar: int, min_bars: int, min_seconds: float) -> int:
    """The shortest section in units: ``min_bars`` bars or ``min_seconds`` seconds, the longer."""
    unit = float(np.median(np.diff(edges))) if len(edges) > 1 else 1.0
    return max(1, min_bars * per_bar, int(np.ceil(min_seconds / max(unit, 1e-6) - 1e-6)))


def local_maxima(curve: np.ndarray) -> np.ndarray:
    """Indices (1 .. len-2) where the curve is at least its neighbours and above zero."""
    if len(curve) < 3:
        return np.array([], dtype=int)
    inner = curve[1:-1]
    return 1 + np.flatnonzero((inner > 0) & (inner >= curve[:-2]) & (inner >= curve[2:]))


def phrase_weights(novelty: np.ndarray, per_bar: int) -> np.ndarray:
    """A weight per unit edge: ``ON_EIGHT`` on the 8-bar grid, ``ON_FOUR`` on the 4-bar one,
    ``OFF_GRID`` elsewhere; the grid's phase (in units, 0 .. 8 bars) is the one whose edges
    hold the most novelty at local maxima (4-bar phase first, then which half is the 8-bar one)."""
    n = len(novelty)
    period = PHRASE_BARS * per_bar
    peaks = np.zeros(n)
    found = local_maxima(novelty)
    peaks[found] = novelty[found]
    four = int(np.argmax([peaks[p::period].sum() for p in range(period)]))
    eight = four if peaks[four::2 * period].sum() >= peaks[four + period::2 * period].sum() else four + period
    weights = np.full(n, OFF_GRID)
    weights[four::period] = ON_FOUR
    weights[eight::2 * period] = ON_EIGHT
    return weights


def adaptive_threshold(novelty: np.ndarray, spread: float, floor: float) -> float:
    """The median of the local maxima plus ``spread`` median absolute deviations (at least ``floor``)."""
    found = novelty[local_maxima(novelty)]
    if len(found) < 3:
        return floor
    middle = float(np.median(found))
    deviation = float(np.median(np.abs(found - middle)))
    return max(floor, middle + spread * deviation)
