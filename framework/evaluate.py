"""Score mirflow results against reference annotations with mir_eval.

One place that knows which mir_eval measure answers which question (the references are
read and checked in mirflow.references), so that the benchmarks, the tests and ``mirflow
evaluate`` give the same numbers. mir_eval is imported only when a score is computed.
"""

from __future__ import annotations

import math

import numpy as np

from .references import READERS, Reference, ReferenceError, load_reference, normalize_key, references_for  # noqa: F401

# Measure name -> what it means; the order is the order of table columns.
MEASURES = {
    "beat_f": "beat F-measure (70 ms window)",
    "downbeat_f": "downbeat F-measure (70 ms window)",
    "tempo_acc1": "tempo within 4 %",
    "tempo_acc2": "tempo within 4 %, allowing x2, x3, /2, /3",
    "key": "key, MIREX weighted score",
    "key_timeline": "key over time, MIREX weighted score weighted by duration",
    "chords_majmin": "chords, major/minor weighted symbol recall",
    "chords_sevenths": "chords, sevenths weighted symbol recall",
    "sections_f05": "section boundaries, hit-rate F-measure (0.5 s window)",
    "sections_f3": "section boundaries, hit-rate F-measure (3 s window)",
    "sections_pairwise": "section labels, pairwise frame-clustering F-measure",
    "sections_nce": "section labels, normalized conditional entropy F-measure",
}


def predicted(result: dict) -> Reference:
    """The same fields, read from a mirflow result document."""
    timeline, summary = result.get("timeline", {}), result.get("summary", {})
    beats = timeline.get("beats")
    tempo = (summary.get("tempo") or {}).get("bpm")
    key = (summary.get("key") or {}).get("label")
    chords = timeline.get("chords")
    keys = timeline.get("keys")
    sections = timeline.get("sections")
    return Reference(
        sections=[(s["start"], s["end"], s["label"]) for s in sections] if sections else None,
        keys=[(k["start"], k["end"], k["label"]) for k in keys] if keys else None,
        beats=np.array([b["time"] for b in beats]) if beats is not None else None,
        # Beats without bar positions (a beat tracker, not a downbeat tracker) give no downbeats.
        downbeats=np.array(timeline["downbeats"]) if timeline.get("downbeats") or any(
            b.get("position") for b in beats or []) else None,
        tempo=tempo,
        key=key,
        chords=[(c["start"], c["end"], c["label"]) for c in chords] if chords is not None else None,
    )


def score(estimate: Reference, reference: Reference) -> dict[str, float]:
    """Every measure both sides allow (a field the reference lacks is not scored; one the
    estimate lacks scores 0, since the pipeline should have given it; downbeats from a
    pipeline whose beats carry no bar positions are not scored)."""
    import mir_eval

    scores: dict[str, float] = {}
    if reference.beats is not None and len(reference.beats):
        scores["beat_f"] = _f_measure(reference.beats, estimate.beats)
    if reference.downbeats is not None and len(reference.downbeats) and estimate.downbeats is not None:
        scores["downbeat_f"] = _f_measure(reference.downbeats, estimate.downbeats)
    if reference.tempo:
        acc1, acc2 = tempo_accuracy(estimate.tempo, reference.tempo)
        scores["tempo_acc1"], scores["tempo_acc2"] = acc1, acc2
    if reference.key:
        scores["key"] = mir_eval.key.weighted_score(reference.key, estimate.key) if estimate.key else 0.0
    if reference.chords:
        scores.update(chord_scores(estimate.chords or [], reference.chords))
    if reference.keys:
        scores["key_timeline"] = key_timeline_score(estimate.keys or [], reference.keys)
    if reference.sections:
        scores.update(section_scores(estimate.sections or [], reference.sections))
    return scores


def section_scores(estimate: list, reference: list) -> dict[str, float]:
    """mir_eval.segment on the reference's time span: boundary hit rates (F at 0.5 s and 3 s,
    the track's start and end not counted), pairwise and conditional-entropy label F-measures.
    No estimate (no sections found) counts as one section over the whole span."""
    import mir_eval

    ref_intervals = np.array([[s, e] for s, e, _ in reference], dtype=float)
    ref_labels = [label for _, _, label in reference]
    start, end = float(ref_intervals.min()), float(ref_intervals.max())
    if not estimate:
        estimate = [(start, end, "A")]
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        np.array([[s, e] for s, e, _ in estimate], dtype=float), [label for _, _, label in estimate],
        t_min=start, t_max=end)
    f05 = mir_eval.segment.detection(ref_intervals, est_intervals, window=0.5, trim=True)[2]
    f3 = mir_eval.segment.detection(ref_intervals, est_intervals, window=3.0, trim=True)[2]
    pairwise = mir_eval.segment.pairwise(ref_intervals, ref_labels, est_intervals, est_labels)[2]
    nce = mir_eval.segment.nce(ref_intervals, ref_labels, est_intervals, est_labels)[2]
    return {"sections_f05": float(f05), "sections_f3": float(f3), "sections_pairwise": float(pairwise),
            "sections_nce": float(nce)}


def key_timeline_score(estimate: list, reference: list) -> float:
    """The MIREX key score at every moment, weighted by duration (a key change found late
    costs the time between; one not found costs the whole second key's time)."""
    import mir_eval

    total, scored = 0.0, 0.0
    for start, end, key in reference:
        total += end - start
        for e_start, e_end, e_key in estimate:
            overlap = min(end, e_end) - max(start, e_start)
            if overlap > 0 and e_key:
                scored += overlap * mir_eval.key.weighted_score(key, e_key)
    return scored / total if total else 0.0


def _f_measure(reference: np.ndarray, estimate: np.ndarray | None) -> float:
    """mir_eval's F-measure (70 ms) on all events: no 5 s trimming, since excerpts are short
    and our beats near the start matter to users as much as any."""
    import mir_eval

    estimate = np.asarray(estimate if estimate is not None else [], dtype=float)
    return float(mir_eval.beat.f_measure(np.asarray(reference, dtype=float), estimate, f_measure_threshold=0.07))


def event_agreement(estimate: np.ndarray | None, reference: np.ndarray, window: float = 0.01) -> float:
    """F-measure of two event lists with a tight ``window`` (seconds): how far two runs of a
    pipeline (chunked vs. whole file, say) agree, rather than how right either is."""
    import mir_eval

    estimate = np.asarray(estimate if estimate is not None else [], dtype=float)
    return float(mir_eval.beat.f_measure(np.asarray(reference, dtype=float), estimate, f_measure_threshold=window))


def tempo_accuracy(estimate: float | None, reference: float, tolerance: float = 0.04) -> tuple[float, float]:
    """(Acc1, Acc2): within ``tolerance``; and the same allowing the factors 2, 3, 1/2, 1/3."""
    if not estimate:
        return 0.0, 0.0
    factors = (1, 2, 3, 1 / 2, 1 / 3)
    acc1 = abs(estimate / reference - 1) <= tolerance
    acc2 = any(abs(estimate / (reference * f) - 1) <= tolerance for f in factors)
    return float(acc1), float(acc2)


def chord_scores(estimate: list, reference: list) -> dict[str, float]:
    """Weighted symbol recall (major/minor; sevenths where the reference has sevenths)."""
    import mir_eval

    ref_intervals = np.array([[s, e] for s, e, _ in reference])
    ref_labels = [label for _, _, label in reference]
    if not estimate:
        estimate = [(float(ref_intervals.min()), float(ref_intervals.max()), "N")]
    est_intervals = np.array([[s, e] for s, e, _ in estimate])
    est_labels = [label for _, _, label in estimate]
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        est_intervals, est_labels, ref_intervals.min(), ref_intervals.max(), mir_eval.chord.NO_CHORD,
        mir_eval.chord.NO_CHORD)
    intervals, ref_l, est_l = mir_eval.util.merge_labeled_intervals(ref_intervals, ref_labels, est_intervals,
                                                                    est_labels)
    durations = mir_eval.util.intervals_to_durations(intervals)
    scores = {"chords_majmin": float(mir_eval.chord.weighted_accuracy(mir_eval.chord.majmin(ref_l, est_l),
                                                                      durations))}
    if any("7" in label for label in ref_labels):
        scores["chords_sevenths"] = float(mir_eval.chord.weighted_accuracy(mir_eval.chord.sevenths(ref_l, est_l),
                                                                           durations))
    return {name: (0.0 if math.isnan(value) else value) for name, value in scores.items()}


def table(rows: list[tuple[str, dict[str, float]]], measures=None) -> str:
    """A markdown table: one row per piece, a column per measure, a final mean row."""
    present = list(dict.fromkeys(m for _, scores in rows for m in scores))
    measures = measures or [m for m in MEASURES if m in present] + [m for m in present if m not in MEASURES]
    lines = ["| piece | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for name, scores in rows:
        cells = [f"{scores[m]:.3f}" if m in scores else "-" for m in measures]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [np.mean([s[m] for _, s in rows if m in s]) if any(m in s for _, s in rows) else None for m in measures]
    lines.append("| **mean** | " + " | ".join(f"**{v:.3f}**" if v is not None else "-" for v in means) + " |")
    return "\n".join(lines)
