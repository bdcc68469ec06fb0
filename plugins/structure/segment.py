"""Sections from whole-track features: units on the metrical grid, novelty, repetition, labels.

The recipe, on units of one bar (from the downbeats), else one beat, else half a second:

1. **Unit features.** Chroma as a short sequence (a bar's four quarters, each a unit-length
   12-vector), blended with the chord step's pitch classes when the pipeline has chords;
   timbre as the mean MFCCs (without the 0th) and loudness, standardized over the track.
2. **Similarity.** A harmonic self-similarity matrix (cosine per quarter, averaged) and a
   timbre one (a Gaussian of the standardized distance).
3. **Boundaries** from three novelty curves, each scaled to a maximum of 1 and averaged:
   Foote's checkerboard kernel on the timbre matrix (texture and loudness change, Foote
   2000); a harmonic *set* novelty (how few of the chords of the bars before a candidate come
   back in the bars after it: a section looping a progression is harmonically homogeneous as
   a set though not bar by bar); and Serrà et al.'s (2014) structure features (the rows of the
   smoothed time-lag recurrence matrix change where the repetition pattern changes). Peaks
   at least ``min_units`` apart, above ``threshold``.
   :mod:`.boundaries` puts the picks on the phrase grid, sets the minimum length in bars and
   seconds and the threshold from the song's own novelty.
4. **Labels**: :mod:`.labels` (aligned chords, transposition-invariant, timbre as tie-breaker).

Memory: a few ``units x units`` float64 matrices; a 60-minute song at 100 BPM in 4/4 has
1,500 bars (18 MB a matrix). Longer grids are coarsened to at most MAX_UNITS units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_UNITS = 2500  # 50 MB per matrix at most
QUARTERS = 4  # chroma sub-parts per bar


@dataclass
class Grid:
    """Unit edges in seconds (``len(edges) = units + 1``); ``per_bar`` units make a bar;
    ``bars``: the bar number (from 1 at the first downbeat) of each unit's start, or None."""

    edges: np.ndarray
    kind: str  # "bar" | "beat" | "frame"
    per_bar: int
    bars: list[int] | None


def unit_grid(beats: list[dict] | None, duration: float, frame: float = 0.5) -> Grid:
    """Bars when the beats carry positions, else beats, else ``frame``-second units."""
    beats = beats or []
    times = np.array([b["time"] for b in beats], dtype=float)
    positions = [b.get("position") for b in beats]
    if len(times) >= 8 and all(p is not None for p in positions):
        downbeats = times[[p == 1 for p in positions]]
        if len(downbeats) >= 2:
            bar = float(np.median(np.diff(downbeats)))
            end = min(duration, downbeats[-1] + bar)
            edges = np.r_[downbeats, end] if end > downbeats[-1] + 1e-3 else downbeats
            return _coarsened(Grid(edges, "bar", 1, list(range(1, len(edges)))))
    if len(times) >= 8:
        period = float(np.median(np.diff(times)))
        end = min(duration, times[-1] + period)
        edges = np.r_[times, end] if end > times[-1] + 1e-3 else times
        return _coarsened(Grid(edges, "beat", 4, None))
    count = int(duration // frame)
    if count < 2:
        return Grid(np.array([0.0, duration]), "frame", 4, None)
    return _coarsened(Grid(np.r_[np.arange(count) * frame, duration], "frame", 4, None))


def _coarsened(grid: Grid) -> Grid:
    """Every k-th edge when there are more than MAX_UNITS units (boundaries stay on the grid)."""
    units = len(grid.edges) - 1
    if units <= MAX_UNITS:
        return grid
    k = int(np.ceil(units / MAX_UNITS))
    keep = np.r_[np.arange(0, units, k), units]
    bars = None if grid.bars is None else [grid.bars[i] for i in keep[:-1]] + [grid.bars[-1]]
    return Grid(grid.edges[keep], grid.kind, max(1, grid.per_bar // k), bars)


def unit_means(times: np.ndarray, values: np.ndarray, edges: np.ndarray, parts: int) -> np.ndarray:
    """units x parts x dims: the mean of the frames in each of ``parts`` equal slices of each unit
    (a slice with no frame takes the frame nearest to its middle)."""
    units = len(edges) - 1
    bounds = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * np.linspace(0, 1, parts + 1)[None, :]
    summed = np.vstack([np.zeros(values.shape[1]), np.cumsum(values, axis=0)])
    first = np.searchsorted(times, bounds[:, :-1], side="left")
    last = np.searchsorted(times, bounds[:, 1:], side="left")
    counts = (last - first)[..., None]
    means = (summed[last] - summed[first]) / np.maximum(counts, 1)
    empty = counts[..., 0] == 0
    if empty.any() and len(times):
        middle = (bounds[:, :-1] + bounds[:, 1:]) / 2
        nearest = np.clip(np.searchsorted(times, middle[empty]), 0, len(times) - 1)
        means[empty] = values[nearest]
    return means.reshape(units, parts, values.shape[1])


def activity(times: np.ndarray, timbre: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """units x 2: how busy each unit is, which the mean timbre does not say: the spread of its
    loudness (dB; drums and accents make it wide) and the mean change of the MFCCs from one
    frame to the next (onset density, a drum pattern against held chords)."""
    loudness = timbre[:, -1:]
    flux = np.r_[0.0, np.linalg.norm(np.diff(timbre[:, :-1], axis=0), axis=1)][:, None]
    means = unit_means(times, np.hstack([loudness, loudness ** 2, flux]), edges, 1)[:, 0, :]
    spread = np.sqrt(np.maximum(means[:, 1] - means[:, 0] ** 2, 0.0))
    return np.column_stack([spread, means[:, 2]])


def unit_length(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norms > 1e-9, vectors / np.maximum(norms, 1e-9), 0.0)


def harmonic_similarity(chroma: np.ndarray) -> np.ndarray:
    """units x units: the mean over the quarters of the cosine between unit-length chroma."""
    unit = unit_length(chroma)  # units x parts x 12
    return np.einsum("ipc,jpc->ij", unit, unit) / chroma.shape[1]


def timbre_similarity(timbre: np.ndarray) -> np.ndarray:
    """units x units: exp(-d^2 / 2m), d the distance of standardized timbre vectors, m its median."""
    centred = (timbre - timbre.mean(axis=0)) / np.maximum(timbre.std(axis=0), 1e-6)
    squared = np.sum(centred ** 2, axis=1)
    distance = np.maximum(squared[:, None] + squared[None, :] - 2 * centred @ centred.T, 0.0)
    scale = float(np.median(distance[np.triu_indices(len(distance), 1)])) if len(distance) > 1 else 1.0
    return np.exp(-distance / (2 * max(scale, 1e-6)))


def foote_novelty(similarity: np.ndarray, half: int) -> np.ndarray:
    """Novelty at each unit edge (index i: between unit i-1 and i) from a Gaussian-tapered
    checkerboard kernel of ``half`` units a side; edges near the ends see a clipped kernel."""
    n = len(similarity)
    novelty = np.zeros(n + 1)
    offsets = np.arange(-half, half)
    taper = np.exp(-0.5 * ((offsets + 0.5) / (half / 2)) ** 2)
    sign = np.where(offsets < 0, -1.0, 1.0)
    kernel = np.outer(taper, taper) * np.outer(sign, sign)
    for i in range(1, n):
        rows = np.arange(i - half, i + half)
        inside = (rows >= 0) & (rows < n)
        if inside.sum() < 2:
            continue
        block = similarity[np.ix_(rows[inside], rows[inside])]
        k = kernel[np.ix_(inside, inside)]
        novelty[i] = max(0.0, float(np.sum(block * k)) / float(np.sum(np.abs(k))))
    return novelty


def set_novelty(similarity: np.ndarray, half: int) -> np.ndarray:
    """At each unit edge: 1 - how well each unit of the ``half`` before it finds a match among
    the ``half`` after it (and vice versa). A loop of chords is one set on both sides."""
    n = len(similarity)
    novelty = np.zeros(n + 1)
    for i in range(1, n):
        left, right = np.arange(max(0, i - half), i), np.arange(i, min(n, i + half))
        if len(left) < max(1, half // 2) or len(right) < max(1, half // 2):
            continue
        block = similarity[np.ix_(left, right)]
        novelty[i] = 1.0 - 0.5 * (block.max(axis=1).mean() + block.max(axis=0).mean())
    return novelty


def repetition_novelty(similarity: np.ndarray, embed: int, smooth: float) -> np.ndarray:
    """Serrà et al.'s structure features: a k-nearest-neighbour recurrence matrix of
    delay-embedded units, turned into circular time-lag form and smoothed along time; the
    novelty at an edge is the change of that row from the unit before it to the unit after."""
    n = len(similarity)
    if n < 4:
        return np.zeros(n + 1)
    embedded = np.zeros_like(similarity)
    for shift in range(embed):  # the similarity of the next `embed` units, averaged
        embedded[: n - shift, : n - shift] += similarity[shift:, shift:]
    embedded /= embed
    k = max(2, int(round(0.1 * n)))
    threshold = -np.sort(-embedded, axis=1)[:, min(k, n - 1)][:, None]
    recurrence = (embedded > threshold) & (embedded > threshold.T)
    np.fill_diagonal(recurrence, False)
    lag = np.zeros((n, n))
    index = np.arange(n)
    for i in range(n):
        lag[i] = recurrence[i, (i + index) % n]
    from scipy.ndimage import gaussian_filter1d

    lag = gaussian_filter1d(lag, sigma=smooth, axis=0, mode="nearest")
    change = np.sum(np.diff(lag, axis=0) ** 2, axis=1)
    novelty = np.zeros(n + 1)
    novelty[1:n] = change
    return novelty


def scaled(curve: np.ndarray) -> np.ndarray:
    top = float(curve.max()) if len(curve) else 0.0
    return curve / top if top > 1e-9 else np.zeros_like(curve)


def pick_boundaries(novelty: np.ndarray, min_units: int, threshold: float, end_units: int | None = None) -> list[int]:
    """Edge indices (1 .. units-1) at local maxima of ``novelty`` above ``threshold``, taken in
    order of strength, none closer than ``min_units`` to another or ``end_units`` (default:
    ``min_units``) to either end: an intro or outro may be shorter than the body's sections."""
    n = len(novelty) - 1
    end_units = min_units if end_units is None else end_units
    chosen: list[int] = []
    for i in np.argsort(-novelty[1:n], kind="stable") + 1:
        if novelty[i] < threshold:
            break
        if i < end_units or n - i < end_units:
            continue
        low, high = max(1, i - min_units // 2), min(n, i + min_units // 2 + 1)
        if novelty[i] < novelty[low:high].max():
            continue
        if all(abs(i - j) >= min_units for j in chosen):
            chosen.append(int(i))
    return sorted(chosen)


def diagonal_sums(similarity: np.ndarray) -> np.ndarray:
    """(n+1) x (n+1): ``sums[i, j]`` is the sum of ``similarity`` along the diagonal that ends
    just before (i, j), so any diagonal stretch sums in O(1) (n row operations to build)."""
    n = len(similarity)
    sums = np.zeros((n + 1, n + 1))
    for i in range(n):
        sums[i + 1, 1:] = sums[i, :-1] + similarity[i]
    return sums


def aligned_similarity(sums: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """The mean of the similarity along the diagonal of the two segments' block, the shorter
    slid along the longer and the best placement kept (the same material in the same order).
    ``sums`` comes from :func:`diagonal_sums`."""
    (a0, a1), (b0, b1) = a, b
    if a1 - a0 > b1 - b0:
        (a0, a1), (b0, b1) = (b0, b1), (a0, a1)
    length = a1 - a0
    placements = (b1 - b0) - length + 1
    # Slices, not an index array: a 60-minute song's merge asks this ~150,000 times.
    totals = sums[a0 + length, b0 + length:b0 + length + placements] - sums[a0, b0:b0 + placements]
    return float(totals.max() / length)


def letter(index: int) -> str:
    """0 -> A ... 25 -> Z, 26 -> AA: enough letters for any song."""
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(65 + rest) + text
    return text
