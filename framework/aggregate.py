"""Default rules that merge an analyzer's per-chunk parts into one track output.

One rule per output kind, chosen so that a chunked run equals a whole-file run
for an analyzer whose answer depends only on the audio around each moment:

- scalar: mean weighted by core duration x confidence;
- label: vote by core duration x confidence, with the per-chunk labels kept as a timeline;
- events: each event kept from the chunk whose core region contains it;
- segments: clipped to core regions; equal labels meeting at a seam become one segment;
- curve: joined with a linear crossfade over each overlap.

A plugin may take over for its own analyzers through the ``aggregate`` hook and
still call these helpers (e.g. stitch activations with ``merge_curve``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analyzer import CURVE, EVENTS, LABEL, SCALAR, SEGMENTS
from .audio import ChunkSpan
from .contract import normalize

SEAM_TOLERANCE = 1e-6  # seconds: segment edges this close to a seam touch it


@dataclass
class Part:
    """One chunk's outputs (already in track time) and the span it came from."""

    span: ChunkSpan
    outputs: dict[str, Any]
    last: bool


@dataclass
class Track:
    """What an aggregator may need to know about the whole track."""

    path: str
    duration: float
    spans: list[ChunkSpan]
    inputs: dict[str, Any] = field(default_factory=dict)  # the step's at-merge inputs (None if absent)
    folded: Any = None  # mirflow.Folded: what the analyzer's folds left, at the merge (None: not folded)


def chunk_preview(kinds: dict[str, str], outputs: dict[str, Any], offset: float, span: ChunkSpan) -> dict[str, Any]:
    """What a live view can draw of one chunk before the merge: its events and segments in
    track time within the chunk's core region (where the merge takes them from), and its
    labels and scalars. Curves are left out: they are often activations, large and internal."""
    preview: dict[str, Any] = {}
    for name, value in outputs.items():
        kind = kinds.get(name)
        if kind == EVENTS:
            preview[name] = [e for e in normalize(kind, value, offset) if span.core_start <= e["time"] < span.core_end]
        elif kind == SEGMENTS:
            clipped = []
            for segment in normalize(kind, value, offset):
                start, end = max(segment["start"], span.core_start), min(segment["end"], span.core_end)
                if end > start:
                    clipped.append({**segment, "start": start, "end": end})
            preview[name] = clipped
        elif kind in (LABEL, SCALAR):
            preview[name] = normalize(kind, value, offset)
    return preview


# --- the default rules ------------------------------------------------------------


def merge_scalar(parts: list[Part], name: str) -> dict[str, Any]:
    weighted, weights, confidences, durations = 0.0, 0.0, 0.0, 0.0
    for part in parts:
        item = part.outputs[name]
        if item["value"] is None:
            continue
        core = part.span.core_end - part.span.core_start
        weight = core * item["confidence"]
        weighted += weight * item["value"]
        weights += weight
        confidences += core * item["confidence"]
        durations += core
    if durations == 0:
        return {"value": None, "confidence": 0.0}
    # Other fields (a tempo's half/double alternative, say) come from the weightiest part.
    heaviest = max((p for p in parts if p.outputs[name]["value"] is not None),
                   key=lambda p: (p.span.core_end - p.span.core_start) * p.outputs[name]["confidence"])
    extra = {k: v for k, v in heaviest.outputs[name].items() if k not in ("value", "confidence")}
    if weights == 0:  # every part had zero confidence: fall back to duration weights
        values = [p.outputs[name]["value"] for p in parts if p.outputs[name]["value"] is not None]
        return {**extra, "value": float(np.mean(values)), "confidence": 0.0}
    return {**extra, "value": weighted / weights, "confidence": confidences / durations}


def merge_label(parts: list[Part], name: str) -> dict[str, Any]:
    votes: dict[str, float] = {}
    timeline: list[dict[str, Any]] = []
    for part in parts:
        item = part.outputs[name]
        if item["label"] is None:
            continue
        core = part.span.core_end - part.span.core_start
        votes[item["label"]] = votes.get(item["label"], 0.0) + core * item["confidence"]
        entry = {"start": part.span.core_start, "end": part.span.core_end,
                 "label": item["label"], "confidence": item["confidence"]}
        if timeline and timeline[-1]["label"] == entry["label"] and abs(timeline[-1]["end"] - entry["start"]) < SEAM_TOLERANCE:
            _extend(timeline[-1], entry)
        else:
            timeline.append(entry)
    if not votes:
        return {"label": None, "confidence": 0.0, "timeline": []}
    label = max(votes, key=lambda key: (votes[key], key))
    voting_duration = sum(t["end"] - t["start"] for t in timeline)
    # Mean confidence when all chunks agree; lower by the share of time that disagrees.
    return {"label": label, "confidence": votes[label] / voting_duration if voting_duration else 0.0, "timeline": timeline}


def merge_events(parts: list[Part], name: str) -> list[dict[str, Any]]:
    events = []
    for part in parts:
        events.extend(e for e in part.outputs[name] if part.span.owns(e["time"], part.last))
    events.sort(key=lambda e: e["time"])
    return events


def merge_segments(parts: list[Part], name: str) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for part in parts:
        core_start, core_end = part.span.core_start, part.span.core_end
        for segment in sorted(part.outputs[name], key=lambda s: s["start"]):
            start, end = max(segment["start"], core_start), min(segment["end"], core_end)
            if end - start <= SEAM_TOLERANCE:
                continue
            clipped = {**segment, "start": start, "end": end}
            previous = merged[-1] if merged else None
            at_seam = (
                previous is not None
                and part.span.index > 0
                and abs(start - core_start) < SEAM_TOLERANCE
                and abs(previous["end"] - core_start) < SEAM_TOLERANCE
            )
            if at_seam and previous["label"] == clipped["label"]:
                _extend(previous, clipped)
            else:
                merged.append(clipped)
    return merged


def _extend(segment: dict[str, Any], following: dict[str, Any]) -> None:
    """Grow ``segment`` over ``following``, confidence weighted by duration."""
    first = segment["end"] - segment["start"]
    second = following["end"] - following["start"]
    if first + second > 0:
        segment["confidence"] = (segment["confidence"] * first + following["confidence"] * second) / (first + second)
    segment["end"] = following["end"]


def merge_curve(parts: list[Part], name: str) -> dict[str, Any]:
    """Join curves; inside an overlap the earlier chunk's frames are kept and their
    values cross-faded linearly towards the later chunk's (interpolated) values."""
    times = parts[0].outputs[name]["times"]
    values = parts[0].outputs[name]["values"]
    previous_end = parts[0].span.end
    for part in parts[1:]:
        curve = part.outputs[name]
        start = part.span.start
        if len(curve["times"]) == 0:
            continue
        if previous_end > start and len(times):
            inside = (times >= start) & (times <= previous_end)
            weight = (times[inside] - start) / (previous_end - start)
            later = _interp(times[inside], curve["times"], curve["values"])
            values = values.copy()
            blend = weight.reshape((-1,) + (1,) * (values.ndim - 1))
            values[inside] = (1 - blend) * values[inside] + blend * later
        after = curve["times"] > (times[-1] if len(times) else -np.inf)
        times = np.concatenate([times, curve["times"][after]])
        values = np.concatenate([values, curve["values"][after]]) if len(values) else curve["values"][after]
        previous_end = part.span.end
    return {"times": times, "values": values}


def _interp(at: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    if values.ndim == 1:
        return np.interp(at, times, values)
    return np.stack([np.interp(at, times, values[:, i]) for i in range(values.shape[1])], axis=1)


RULES = {SCALAR: merge_scalar, LABEL: merge_label, EVENTS: merge_events, SEGMENTS: merge_segments, CURVE: merge_curve}


def default_aggregate(outputs: dict[str, str], parts: list[Part]) -> dict[str, Any]:
    """Merge every declared output of ``parts`` with the rule for its kind."""
    return {name: RULES[kind](parts, name) for name, kind in outputs.items() if parts and name in parts[0].outputs}


def vote_labels(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine label outputs of several steps by a confidence-weighted vote."""
    votes: dict[str, float] = {}
    for candidate in candidates:
        if candidate.get("label") is not None:
            votes[candidate["label"]] = votes.get(candidate["label"], 0.0) + candidate.get("confidence", 1.0)
    if not votes:
        return {"label": None, "confidence": 0.0}
    label = max(votes, key=lambda key: (votes[key], key))
    return {"label": label, "confidence": votes[label] / sum(votes.values())}
