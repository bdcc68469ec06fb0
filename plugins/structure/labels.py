"""Letters: the same letter wherever the music repeats.

Two segments are the same material when their chords line up bar by bar (the shorter slid
along the longer, the best placement kept) and, as a tie-breaker, their arrangement is alike,
also compared bar by bar at its best placement: ``weight`` harmony, the rest timbre. (The mean
timbre similarity over all pairs of bars sits at the song's baseline for any two stretches of
one loop, whose chords colour the MFCCs bar by bar: the bundled example came out as four
"different" sections.) The chord alignment is transposition-invariant: when
the segments' mean chroma agree best under a shift (a last chorus a tone up, a medley's
chorus in another key), the alignment is also tried with the second segment's chroma shifted
back, at a small cost (``TRANSPOSED``), so a modulated chorus keeps its letter while a
bridge on other chords does not take one.

Segments are clustered by average linkage. Neighbours with the same letter are joined; a
joined run that is a whole multiple (2x, 3x) of its letter's shortest inner run is cut back
into that many sections (choruses back to back), at the strongest novelty near each cut,
unless it is the letter's first run (a long first verse); the song's first and last runs
shed a 1- or 2-bar intro or ending the minimum section length kept from being cut
(:func:`split_repeats` says when).
"""

from __future__ import annotations

import numpy as np

TRANSPOSED = 0.04  # similarity given up by a transposed match


def best_shifts(means: np.ndarray) -> np.ndarray:
    """segments x segments: the rotation (semitones) of segment j's mean chroma that best
    matches segment i's (``np.roll(mean_j, shift)`` against ``mean_i``)."""
    rolled = np.stack([np.roll(means, shift, axis=1) for shift in range(12)])  # 12 x n x 12
    return np.argmax(np.einsum("ic,sjc->ijs", means, rolled), axis=2)


def aligned(a: np.ndarray, b: np.ndarray) -> float:
    """The best-aligned mean cosine of two unit-chroma sequences (units x parts x 12)."""
    if len(a) > len(b):
        a, b = b, a
    per_unit = np.einsum("ipc,jpc->ij", a, b) / a.shape[1]  # len(a) x len(b)
    length = len(a)
    totals = [np.trace(per_unit, offset=o) for o in range(len(b) - length + 1)]
    return float(max(totals) / length)


def segment_similarity(segments: list[tuple[int, int]], sums: np.ndarray, chroma: np.ndarray,
                       timbre: np.ndarray, weight: float) -> np.ndarray:
    """segments x segments: ``weight`` aligned harmony (transposition-invariant) + the rest timbre.
    ``sums``: the harmonic matrix's diagonal sums (:func:`.segment.diagonal_sums`)."""
    from .segment import aligned_similarity, diagonal_sums

    n = len(segments)
    timbre_sums = diagonal_sums(timbre)  # the arrangement compared bar by bar, aligned like the chords
    base_h, base_t = baseline(sums[1:, 1:] - sums[:-1, :-1]), baseline(timbre)  # sums: back to the matrix
    shifts = best_shifts(np.array([chroma[a:b].reshape(-1, 12).mean(axis=0) for a, b in segments]))
    similar = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            h = aligned_similarity(sums, segments[i], segments[j])
            (a0, a1), (b0, b1) = segments[i], segments[j]
            shift = int(shifts[i, j])
            if shift:
                h = max(h, aligned(chroma[a0:a1], np.roll(chroma[b0:b1], shift, axis=-1)) - TRANSPOSED)
            t = aligned_similarity(timbre_sums, segments[i], segments[j])
            similar[i, j] = similar[j, i] = weight * contrast(h, base_h) + (1 - weight) * contrast(t, base_t)
    return similar


def baseline(matrix: np.ndarray) -> float:
    """The similarity of two units of one song picked at random: the median off the diagonal."""
    n = len(matrix)
    return float(np.median(matrix[~np.eye(n, dtype=bool)])) if n > 1 else 0.0


def contrast(value: float, base: float) -> float:
    """``value`` on a scale where the song's baseline is 0 and identity is 1: triads of one key
    share notes, so raw chroma cosines of unrelated bars are far from 0. (Python floats: a
    60-minute song's merge asks this ~75,000 times, and ``np.clip`` on one number cost ~10 µs.)"""
    scaled = (float(value) - float(base)) / max(1.0 - float(base), 1e-6)
    return 0.0 if scaled < 0.0 else 1.0 if scaled > 1.0 else scaled


def cluster(similar: np.ndarray, threshold: float) -> list[int]:
    """Average-linkage clusters merged while their mean similarity is at least ``threshold``;
    a cluster index per segment (first seen = 0).

    SciPy's ``fcluster(linkage(..., "average"), 1 - threshold, "distance")``, computed here:
    importing ``scipy.cluster`` took ~0.13 s at the very end of every run with sections (the
    merge that waits for the beats), for a few dozen segments. The same algorithm as SciPy's
    (its nearest-neighbour chain, with its order among equal distances, and Lance-Williams'
    update of the mean distance), so the same clusters, ties included (the tests compare them
    with SciPy's); the clusters are what the merges no higher than the cut join."""
    n = len(similar)
    if n < 2:
        return [0] * n
    upper = np.triu(np.clip(1.0 - np.asarray(similar, dtype=np.float64), 0.0, None), 1)
    distance = upper + upper.T  # the upper triangle, as SciPy's squareform reads it
    cut = 1.0 - threshold
    owner = list(range(n))  # union-find over the segments

    def root(i: int) -> int:
        while owner[i] != i:
            owner[i] = owner[owner[i]]
            i = owner[i]
        return i

    for x, y, height in nearest_neighbour_chain(distance):
        if height <= cut:
            owner[root(y)] = root(x)
    order: dict[int, int] = {}
    return [order.setdefault(root(i), len(order)) for i in range(n)]


def nearest_neighbour_chain(distance: np.ndarray) -> list[tuple[int, int, float]]:
    """Average linkage of a full distance matrix as SciPy's ``nn_chain`` computes it: the merges
    (x, y, height) in the order it makes them, each joining the cluster that holds segment x
    with the one that holds segment y (a live cluster always holds the segment whose slot it
    occupies). SciPy then sorts them by height; a flat cut needs no order: average linkage
    never merges lower than the merges that made its two clusters."""
    n = len(distance)
    distance = distance.copy()
    size = np.ones(n)
    chain: list[int] = []
    found = []
    for _ in range(n - 1):
        if not chain:
            chain.append(int(np.flatnonzero(size > 0)[0]))
        while True:
            x = chain[-1]
            if len(chain) > 1:
                y, best = chain[-2], distance[x, chain[-2]]
            else:
                y, best = -1, np.inf
            row = np.where(size > 0, distance[x], np.inf)
            row[x] = np.inf
            nearest = int(np.argmin(row))  # the first of the nearest, as SciPy's loop finds it
            if row[nearest] < best:
                best, y = row[nearest], nearest
            if len(chain) > 1 and y == chain[-2]:
                break
            chain.append(y)
        chain.pop()
        chain.pop()
        x, y = min(x, y), max(x, y)
        nx, ny = size[x], size[y]
        found.append((x, y, float(best)))
        size[x], size[y] = 0, nx + ny
        others = size > 0
        others[y] = False
        distance[others, y] = distance[y, others] = (nx * distance[others, x] + ny * distance[others, y]) / (nx + ny)
    return found


def split_repeats(segments: list[tuple[int, int]], labels: list[int], novelty: np.ndarray,
                  shortest: int, reach: int, evidence: float = 0.0, end_units: int = 0,
                  end_evidence: float = 0.0, sounding: np.ndarray | None = None
                  ) -> tuple[list[tuple[int, int]], list[int]]:
    """Join neighbours with the same letter, then cut a run that is k times (k >= 2) its letter's
    length into k, each cut at the novelty maximum within ``reach`` units of the even cut where
    that maximum reaches ``evidence``. A letter's length is the *shortest* of its runs that is
    a section at all (``shortest`` units or more), not their median: with two runs, a chorus
    and three choruses back to back, the median is neither. The default evidence takes the
    maximum whatever its height: on the dev split, asking for the boundary threshold there lost
    more choruses back to back than it kept verses played twice in one go.

    The song's first and last runs may also be a whole multiple plus a few units (at most
    ``end_units``) at the song's start or end: a 1- or 2-bar intro or ending that the minimum
    section length kept from being cut, so it was joined to the verse or the last chorus. Those
    units become a section of their own, with a letter of their own, when the novelty at their
    edge reaches ``end_evidence`` (the music there is clearly different: a stop and its release,
    a groove without bass) and every unit of them holds sound (``sounding``, a bool per unit: the
    silence after a song's last bar, where the beat tracker may still place a downbeat, is no
    ending). Letters renumbered in order of first appearance."""
    joined, kept = [segments[0]], [labels[0]]
    for segment, label in zip(segments[1:], labels[1:]):
        if label == kept[-1]:
            joined[-1] = (joined[-1][0], segment[1])
        else:
            joined.append(segment)
            kept.append(label)
    runs: dict[int, list[int]] = {}
    inner: dict[int, list[int]] = {}  # runs not at the song's ends, where intros and endings join
    for n, ((a, b), label) in enumerate(zip(joined, kept)):
        runs.setdefault(label, []).append(b - a)
        if 0 < n < len(joined) - 1 and b - a >= shortest:
            inner.setdefault(label, []).append(b - a)
    length = {label: min(inner.get(label) or [r for r in found if r >= shortest] or found)
              for label, found in runs.items()}
    # a letter heard only at one end (a drumless first verse, the last choruses) is measured
    # against the song's section length for its intro or ending: the median inner run
    phrase = int(round(np.median([r for found in inner.values() for r in found]))) if inner else 0
    fresh = max(labels) + 1
    out, out_labels, seen = [], [], set()
    for n, ((a, b), label) in enumerate(zip(joined, kept)):
        unit = length[label]
        first, _ = label not in seen, seen.add(label)
        head = tail = 0
        whole = unit if label in inner else phrase
        if whole >= shortest and end_units and (n == 0 or n == len(joined) - 1):
            spare = (b - a) % whole
            if 1 <= spare <= end_units and (b - a) >= whole + spare:
                edge = a + spare if n == 0 else b - spare
                span = slice(a, edge) if n == 0 else slice(edge, b)
                if novelty[edge] >= end_evidence and (sounding is None or bool(np.all(sounding[span]))):
                    head, tail = (spare, 0) if n == 0 else (0, spare)
        if head:
            out.append((a, a + head))
            out_labels.append(fresh)
            fresh += 1
        a, b = a + head, b - tail
        k = int(round((b - a) / unit)) if unit >= shortest and not first else 1
        if k >= 2 and abs((b - a) - k * unit) <= max(1, 0.1 * (b - a)):
            cuts = [a]
            for m in range(1, k):
                even = a + round(m * (b - a) / k)
                low, high = max(cuts[-1] + shortest, even - reach), min(b - shortest, even + reach)
                if low <= high:
                    best = low + int(np.argmax(novelty[low:high + 1]))
                    if novelty[best] >= evidence:
                        cuts.append(best)
            out += list(zip(cuts, cuts[1:] + [b]))
            out_labels += [label] * len(cuts)
        else:
            out.append((a, b))
            out_labels.append(label)
        if tail:
            out.append((b, b + tail))
            out_labels.append(fresh)
            fresh += 1
    order: dict[int, int] = {}
    return out, [order.setdefault(label, len(order)) for label in out_labels]
