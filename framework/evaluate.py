"""Score mirflow results against reference annotations with mir_eval.

One place that knows how to read references (JAMS, plain ``.beats``/``.txt`` beat lists,
``.lab`` chords, ``.bpm``/``.tempo`` and one-line ``.key`` files) and which mir_eval
measure answers which question, so that the benchmarks, the tests and ``mirflow
evaluate`` give the same numbers. mir_eval is imported only when a score is computed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


@dataclass
class Reference:
    """What is known about one piece; ``None`` (or empty) where there is no annotation."""

    beats: np.ndarray | None = None  # seconds
    downbeats: np.ndarray | None = None
    tempo: float | None = None  # BPM
    key: str | None = None  # "A minor"
    chords: list[tuple[float, float, str]] | None = None  # (start, end, Harte label)
    keys: list[tuple[float, float, str]] | None = None  # (start, end, "A minor"): key changes
    sections: list[tuple[float, float, str]] | None = None  # (start, end, label): the song's form
    sources: list[str] = field(default_factory=list)

    def merge(self, other: Reference) -> None:
        for name in ("beats", "downbeats", "tempo", "key", "chords", "keys", "sections"):
            if getattr(self, name) is None and getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
        self.sources += other.sources


class ReferenceError(ValueError):
    """An annotation file that cannot be read; the message names the file and the problem."""


def load_reference(paths) -> Reference:
    """A reference from every annotation file in ``paths`` (the first file to give a field wins)."""
    reference = Reference()
    for path in map(Path, paths):
        reference.merge(_read_one(path))
    return reference


def references_for(audio: str | Path, truth_dir: str | Path) -> list[Path]:
    """The annotation files in ``truth_dir`` that belong to ``audio`` (same stem, any suffix)."""
    stem = Path(audio).stem
    return sorted(p for p in Path(truth_dir).iterdir()
                  if p.is_file() and (p.name.startswith(stem + ".") or p.stem == stem) and p.suffix in READERS)


def _numbers(path: Path) -> list[list[float]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rows.append([float(x) for x in re.split(r"[\s,]+", line)])
        except ValueError:
            raise ReferenceError(f"{path}:{n}: expected numbers, got {line!r}") from None
    return rows


def _read_beats(path: Path) -> Reference:
    rows = _numbers(path)
    beats = np.array([row[0] for row in rows])
    downbeats = np.array([row[0] for row in rows if len(row) > 1 and row[1] == 1]) if rows and len(rows[0]) > 1 else None
    return Reference(beats=beats, downbeats=downbeats, sources=[str(path)])


def _read_tempo(path: Path) -> Reference:
    rows = _numbers(path)
    if not rows:
        raise ReferenceError(f"{path}: no tempo in the file")
    return Reference(tempo=rows[0][0], sources=[str(path)])


def _read_key(path: Path) -> Reference:
    text = " ".join(path.read_text().split())
    return Reference(key=normalize_key(text, path), sources=[str(path)])


def _read_lab(path: Path) -> Reference:
    chords = _read_segments(path, "start end label", lambda rest, where: rest[0])
    return Reference(chords=chords, sources=[str(path)])


def _read_sections(path: Path) -> Reference:
    return Reference(sections=_read_segments(path, "start end label", lambda rest, where: " ".join(rest)),
                     sources=[str(path)])


def _read_keys(path: Path) -> Reference:
    keys = _read_segments(path, "start end tonic mode", lambda rest, where: normalize_key(" ".join(rest), where))
    return Reference(keys=keys, sources=[str(path)])


def _read_segments(path: Path, expected: str, label) -> list[tuple[float, float, str]]:
    """(start, end, label) per non-empty line; ``label(rest_of_line, "file:line")`` reads the label."""
    segments = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            segments.append((float(parts[0]), float(parts[1]), label(parts[2:], f"{path}:{n}")))
        except (ValueError, IndexError):
            raise ReferenceError(f"{path}:{n}: expected '{expected}', got {line!r}") from None
    return segments


def _read_jams(path: Path) -> Reference:
    """The first annotation of each namespace we score (beat, tempo, key_mode, chord)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReferenceError(f"{path}: not a JAMS file ({error})") from None
    reference = Reference(sources=[str(path)])
    for annotation in document.get("annotations", []):
        namespace, data = annotation.get("namespace"), annotation.get("data", [])
        if namespace == "beat" and reference.beats is None:
            reference.beats = np.array([row["time"] for row in data])
            if data and all(isinstance(row.get("value"), (int, float)) for row in data):
                reference.downbeats = np.array([row["time"] for row in data if row["value"] == 1])
        elif namespace == "tempo" and reference.tempo is None and data:
            reference.tempo = float(max(data, key=lambda row: row.get("confidence") or 0)["value"])
        elif namespace == "key_mode" and reference.key is None and data:
            reference.key = normalize_key(str(data[0]["value"]).replace(":", " "), path)
        elif namespace in ("segment_open", "segment_salami_function") and reference.sections is None:
            reference.sections = [(row["time"], row["time"] + row["duration"], str(row["value"])) for row in data]
        elif namespace.startswith("chord") and reference.chords is None:
            reference.chords = [(row["time"], row["time"] + row["duration"], str(row["value"])) for row in data]
    return reference


READERS = {".beats": _read_beats, ".txt": _read_beats, ".bpm": _read_tempo, ".tempo": _read_tempo,
           ".key": _read_key, ".keys": _read_keys, ".lab": _read_lab, ".jams": _read_jams}


def _read_one(path: Path) -> Reference:
    reader = _read_sections if path.name.endswith(".sections.lab") else READERS.get(path.suffix)
    if reader is None:
        raise ReferenceError(f"{path}: unknown annotation format (known: {', '.join(READERS)})")
    try:
        return reader(path)
    except OSError as error:
        raise ReferenceError(f"{path}: {error.strerror or error}") from None


def normalize_key(text: str, path: Path | str = "key") -> str:
    """'D major', 'd:maj', 'F#  minor' -> mir_eval's 'D major' form."""
    parts = text.strip().split()
    if len(parts) != 2:
        raise ReferenceError(f"{path}: expected '<tonic> <mode>', got {text!r}")
    tonic, mode = parts
    mode = {"maj": "major", "min": "minor"}.get(mode.lower(), mode.lower())
    return f"{tonic[0].upper()}{tonic[1:]} {mode}"


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
