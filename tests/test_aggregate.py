"""Default merge rules: each rule by example, and chunked == whole-file as a property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirflow.aggregate import (Part, default_aggregate, merge_curve, merge_events, merge_label,
                               merge_scalar, merge_segments, vote_labels)
from mirflow.contract import normalize
from mirflow.analyzer import CURVE, EVENTS, LABEL, SCALAR, SEGMENTS
from mirflow.audio import plan_chunks


def parts_for(spans, name, values):
    return [Part(span, {name: value}, last=i == len(spans) - 1) for i, (span, value) in enumerate(zip(spans, values))]


SPANS = plan_chunks(300, length=120, overlap=10)  # starts 0, 110, 220


def test_scalar_is_weighted_by_core_duration_and_confidence():
    values = [{"value": 100.0, "confidence": 1.0}, {"value": 200.0, "confidence": 0.0}, {"value": 130.0, "confidence": 0.5}]
    merged = merge_scalar(parts_for(SPANS, "x", values), "x")
    cores = [s.core_end - s.core_start for s in SPANS]
    expected = (100 * cores[0] + 130 * 0.5 * cores[2]) / (cores[0] + 0.5 * cores[2])
    assert merged["value"] == pytest.approx(expected)
    assert merged["confidence"] == pytest.approx((cores[0] + 0.5 * cores[2]) / sum(cores))


def test_scalar_keeps_other_fields_from_the_weightiest_part():
    values = [{"value": 100.0, "confidence": 0.2, "alternative": 50.0}, {"value": 100.0, "confidence": 0.9, "alternative": 200.0},
              {"value": None, "confidence": 1.0}]
    assert merge_scalar(parts_for(SPANS, "x", values), "x")["alternative"] == 200.0


def test_scalar_ignores_parts_without_a_value():
    values = [{"value": None, "confidence": 1.0}] * 3
    assert merge_scalar(parts_for(SPANS, "x", values), "x")["value"] is None


def test_label_vote_uses_duration_times_confidence_and_keeps_a_timeline():
    values = [{"label": "A minor", "confidence": 0.9}, {"label": "C major", "confidence": 0.3},
              {"label": "C major", "confidence": 0.3}]
    merged = merge_label(parts_for(SPANS, "k", values), "k")
    assert merged["label"] == "A minor"  # 115 s x 0.9 beats 185 s x 0.3
    assert [(t["start"], t["end"], t["label"]) for t in merged["timeline"]] == [
        (0.0, 115.0, "A minor"), (115.0, 300.0, "C major")]


def test_events_are_kept_from_the_chunk_that_owns_them_only():
    # Each chunk reports every event it sees in its whole window, overlaps included.
    truth = [5.0, 112.0, 114.9, 115.0, 116.0, 224.0, 299.0]
    values = [[{"time": t} for t in truth if s.start <= t <= s.end] for s in SPANS]
    merged = merge_events(parts_for(SPANS, "e", values), "e")
    assert [e["time"] for e in merged] == truth


def test_segments_are_clipped_to_cores_and_joined_at_seams():
    values = [
        [{"start": 0.0, "end": 50.0, "label": "A"}, {"start": 50.0, "end": 120.0, "label": "B", "confidence": 1.0}],
        [{"start": 110.0, "end": 200.0, "label": "B", "confidence": 0.5}, {"start": 200.0, "end": 230.0, "label": "C"}],
        [{"start": 220.0, "end": 300.0, "label": "C"}],
    ]
    values = [[{"confidence": 1.0, **s} for s in chunk] for chunk in values]
    merged = merge_segments(parts_for(SPANS, "s", values), "s")
    assert [(s["start"], s["end"], s["label"]) for s in merged] == [(0, 50, "A"), (50, 200, "B"), (200, 300, "C")]
    b = merged[1]
    assert b["confidence"] == pytest.approx((65 * 1.0 + 85 * 0.5) / 150)


def test_curves_crossfade_over_the_overlap():
    spans = plan_chunks(30, min_duration=0, length=20, overlap=10)  # [0, 20] and [10, 30]
    first = {"times": np.arange(0, 20.01, 1.0), "values": np.zeros(21)}
    second = {"times": np.arange(10, 30.01, 1.0), "values": np.ones(21)}
    merged = merge_curve(parts_for(spans, "c", [first, second]), "c")
    assert list(merged["times"]) == list(np.arange(0, 30.01, 1.0))
    assert merged["values"][10] == 0.0 and merged["values"][20] == 1.0
    assert merged["values"][15] == pytest.approx(0.5)  # halfway through the overlap


def test_normalize_shifts_chunk_times_to_track_time():
    assert normalize(EVENTS, [1.0, {"time": 2.0, "position": 3}], 110.0) == [
        {"time": 111.0}, {"time": 112.0, "position": 3}]
    assert normalize(SEGMENTS, [{"start": 0, "end": 1, "label": "N"}], 10)[0]["start"] == 10
    assert normalize(SCALAR, 5, 0) == {"value": 5.0, "confidence": 1.0}
    assert normalize(LABEL, "A minor", 0) == {"label": "A minor", "confidence": 1.0}
    with pytest.raises(ValueError):
        normalize(CURVE, {"times": [0, 1], "values": [1]}, 0)


def test_vote_labels_combines_steps_by_confidence():
    voted = vote_labels([{"label": "A minor", "confidence": 0.4}, {"label": "C major", "confidence": 0.3},
                         {"label": "C major", "confidence": 0.3}])
    assert voted["label"] == "C major" and voted["confidence"] == pytest.approx(0.6)


# --- the property: a deterministic analyzer gives the same answer chunked and whole ---

HOP = 0.05  # curve grid, seconds (chunk starts fall on it when they are whole seconds)


def fake_analyzer(window_start, window_end, events, boundaries, labels):
    """What a deterministic analyzer reports for the audio between the two times
    (chunk-relative times, as a real analyzer gives them)."""
    seen = [{"time": t - window_start} for t in events if window_start <= t <= window_end]
    segments = []
    for (start, end), label in zip(zip(boundaries[:-1], boundaries[1:]), labels):
        start, end = max(start, window_start), min(end, window_end)
        if end > start:
            segments.append({"start": start - window_start, "end": end - window_start, "label": label})
    grid = np.arange(np.ceil(window_start / HOP - 1e-9), np.floor(window_end / HOP + 1e-9) + 1) * HOP
    curve = {"times": grid - window_start, "values": np.sin(grid) + grid / 100}
    return {"e": seen, "s": segments, "c": curve, "x": {"value": 3.0, "confidence": 0.7}, "l": "A minor"}


KINDS = {"e": EVENTS, "s": SEGMENTS, "c": CURVE, "x": SCALAR, "l": LABEL}


def run_fake(duration, spans, events, boundaries, labels):
    parts = []
    for i, span in enumerate(spans):
        raw = fake_analyzer(span.start, span.end, events, boundaries, labels)
        parts.append(Part(span, {k: normalize(KINDS[k], v, span.start) for k, v in raw.items()}, last=i == len(spans) - 1))
    return default_aggregate(KINDS, parts)


@settings(max_examples=60, deadline=None)
@given(
    duration=st.integers(min_value=61, max_value=700),
    length=st.integers(min_value=20, max_value=150),
    overlap_share=st.floats(min_value=0.0, max_value=0.45),
    data=st.data(),
)
def test_chunked_equals_whole_file(duration, length, overlap_share, data):
    overlap = float(int(length * overlap_share))
    events = sorted(set(data.draw(st.lists(st.floats(min_value=0, max_value=duration, allow_nan=False), max_size=40))))
    cuts = sorted(set(data.draw(st.lists(st.integers(min_value=1, max_value=duration - 1), max_size=15))))
    boundaries = [0.0] + [float(c) for c in cuts] + [float(duration)]
    labels = data.draw(st.lists(st.sampled_from(["A:min", "C:maj", "N"]), min_size=len(boundaries) - 1,
                                max_size=len(boundaries) - 1))
    boundaries, labels = _distinct_neighbours(boundaries, labels)
    whole = run_fake(duration, plan_chunks(duration, enabled=False), events, boundaries, labels)
    spans = plan_chunks(duration, min_duration=0, length=length, overlap=overlap)
    chunked = run_fake(duration, spans, events, boundaries, labels)

    assert [e["time"] for e in chunked["e"]] == pytest.approx([e["time"] for e in whole["e"]], abs=1e-9)

    def shape(segments):
        return [(round(s["start"], 9), round(s["end"], 9), s["label"]) for s in segments]

    assert shape(chunked["s"]) == shape(whole["s"])  # a seam neither splits nor adds a segment
    np.testing.assert_allclose(chunked["c"]["times"], whole["c"]["times"], atol=1e-9)
    np.testing.assert_allclose(chunked["c"]["values"], whole["c"]["values"], atol=1e-9)
    assert chunked["x"]["value"] == pytest.approx(whole["x"]["value"])
    assert chunked["l"]["label"] == whole["l"]["label"]
    # Core regions tile the track: no gap, no overlap.
    assert spans[0].core_start == 0 and spans[-1].core_end == duration
    assert all(a.core_end == b.core_start for a, b in zip(spans, spans[1:]))


def _distinct_neighbours(boundaries, labels):
    """Truth without two equal labels side by side (they would be one segment)."""
    kept_bounds, kept_labels = [boundaries[0]], []
    for end, label in zip(boundaries[1:], labels):
        if kept_labels and kept_labels[-1] == label:
            kept_bounds[-1] = end
        else:
            kept_labels.append(label)
            kept_bounds.append(end)
    return kept_bounds, kept_labels


def test_an_analyzer_owns_its_merge_and_another_plugins_hook_can_take_it_over(pm, add_analyzers, write_pipeline,
                                                                                write_clicks, tmp_path):
    """Analyzer.merge is asked after the aggregate hook and before the default rules: the
    analyzer merges its own chunks, a plugin's hook overrides it, and without either the
    default rule of the output kind (a duration-weighted mean for scalars) applies."""
    import json

    import mirflow
    from mirflow.pipeline import load_pipeline
    from mirflow.scheduler import run_pipeline

    class Chunks(mirflow.Analyzer):
        name = "owner.chunks"
        sample_rate = 22050
        outputs = {"count": SCALAR}

        def analyze(self, chunk, inputs):
            return {"count": 1.0}

    class Counted(Chunks):
        name = "owner.counted"

        def merge(self, parts, track):  # its own rule: how many chunks there were
            return {"count": {"value": float(len(parts)), "confidence": 1.0}}

    class Overridden(Counted):
        name = "owner.overridden"

    class Override:
        @mirflow.hookimpl
        def aggregate(self, analyzer, parts, track):
            return {"count": {"value": -1.0, "confidence": 1.0}} if isinstance(analyzer, Overridden) else None

    registry = add_analyzers(Chunks, Counted, Overridden, name="owner")
    pm.register(Override(), name="override")
    audio, _ = write_clicks(50.0)
    pipeline = load_pipeline(write_pipeline("chunking: {min_duration: 0, length: 20, overlap: 4}\n"
                                            "steps: [owner.chunks, owner.counted, owner.overridden]\n"), registry)
    (outcome,), _ = run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, output_dir=tmp_path / "out")
    assert outcome.ok, outcome
    steps = json.loads((tmp_path / "out" / "clicks.json").read_text())["steps"]
    chunks = len(plan_chunks(50.0, min_duration=0, length=20, overlap=4))
    assert chunks == 3
    assert steps["chunks"]["outputs"]["count"]["value"] == 1.0  # the default rule: a weighted mean of ones
    assert steps["counted"]["outputs"]["count"]["value"] == chunks  # the analyzer's own merge
    assert steps["overridden"]["outputs"]["count"]["value"] == -1.0  # the hook asked first
