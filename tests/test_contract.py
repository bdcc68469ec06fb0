"""The plugin contract checked at the boundary: shorthands accepted, bad values cleaned by a
documented rule or reported as that step's error, and results always strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mirflow
from mirflow.analyzer import CURVE, EVENTS, LABEL, SCALAR, SEGMENTS
from mirflow.contract import ContractError, check_outputs, normalize
from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import run_pipeline

import fakes

KINDS = {"number": SCALAR, "name": LABEL, "hits": EVENTS, "spans": SEGMENTS, "level": CURVE}


def test_documented_shorthands_are_accepted():
    assert normalize(SCALAR, 5) == {"value": 5.0, "confidence": 1.0}
    assert normalize(SCALAR, np.float32(2.5))["value"] == 2.5
    assert normalize(LABEL, "A minor") == {"label": "A minor", "confidence": 1.0}
    assert normalize(LABEL, None)["label"] is None
    assert normalize(EVENTS, [2.0, {"time": 1.0, "position": 3}], 10.0) == [
        {"position": 3, "time": 11.0}, {"time": 12.0}]
    assert normalize(EVENTS, np.array([0.5, 1.5]))[1]["time"] == 1.5


def test_non_finite_and_out_of_range_values_are_cleaned_and_noted():
    notes: list[str] = []
    assert normalize(SCALAR, float("nan"), notes=notes)["value"] is None
    assert normalize(SCALAR, {"value": float("inf"), "confidence": 1.7}, notes=notes) == {"value": None, "confidence": 1.0}
    events = normalize(EVENTS, [-2.0, 1.0, float("nan"), 618.0, 118.01], bound=118.0, notes=notes)
    assert [e["time"] for e in events] == [1.0, 118.0]  # a hair past the end is clamped, far past dropped
    segments = normalize(SEGMENTS, [{"start": 5, "end": 2, "label": "x"}, {"start": float("nan"), "end": 1, "label": "y"},
                                    {"start": -1, "end": 3, "label": "z"}], bound=10, notes=notes)
    assert segments == [{"start": 0.0, "end": 3.0, "label": "z", "confidence": 1.0}]
    curve = normalize(CURVE, {"times": [-2, 0, 1, 2, 500], "values": [1, 2, float("nan"), 4, 5]}, bound=118, notes=notes)
    assert curve["times"].tolist() == [0, 2] and curve["values"].tolist() == [2, 4]
    assert len(notes) == 6 and any("3 event(s)" in n for n in notes)
    assert normalize(SCALAR, {"value": 1, "range": [float("inf"), 2]}, notes=notes)["range"] == [None, 2]


def test_a_confidence_out_of_range_or_not_finite_is_cleaned_alike_with_a_note():
    """A confidence of 7, of inf or of NaN is no reason to lose the step (issue 33): clipped
    to [0, 1], NaN (no confidence) to 0, each with a note."""
    notes = []
    cleaned = [normalize(SCALAR, {"value": 1, "confidence": c}, notes=notes)["confidence"]
               for c in (7, float("inf"), float("-inf"), float("nan"), 0.5)]
    assert cleaned == [1.0, 1.0, 0.0, 0.0, 0.5]
    assert len(notes) == 4 and "confidence nan taken as 0" in notes
    segments = normalize(SEGMENTS, [{"start": 0, "end": 1, "label": "x", "confidence": float("nan")}], bound=10)
    assert segments[0]["confidence"] == 0.0


@pytest.mark.parametrize("kind, value, says", [
    (SCALAR, "fast", "value must be a number"),
    (SCALAR, True, "value must be a number"),
    (SCALAR, {"value": 1, "confidence": "high"}, "confidence must be a number"),
    (LABEL, 3, "label must be a string"),
    (EVENTS, 3.0, "events must be a list"),
    (EVENTS, [{"at": 1}], "no 'time'"),
    (SEGMENTS, [[0, 1]], "a segment must be a dict"),
    (CURVE, {"times": [0, 1], "values": [1]}, "2 times but 1 values"),
    (CURVE, [1, 2], "a curve must be a dict"),
    (EVENTS, [{"time": 1, "obj": object()}], "not a JSON value"),
])
def test_values_no_rule_can_clean_are_errors(kind, value, says):
    with pytest.raises(ContractError, match=says):
        normalize(kind, value, bound=10)


def test_errors_name_where_and_which_output():
    with pytest.raises(ContractError, match=r"x\.y: aggregate: output 'number' \(scalar\): value must be a number"):
        check_outputs(KINDS, {"number": "many"}, where="x.y: aggregate")
    with pytest.raises(ContractError, match="undeclared output 'other'"):
        check_outputs(KINDS, {"other": 1})
    with pytest.raises(ContractError, match="returned float, expected a dict"):
        check_outputs(KINDS, 1.0)


def test_canonical_values_pass_unchanged():
    """What the checks return passes them again as it is (the merge rules and the hook's
    output are both checked, so canonical forms must be a fixed point)."""
    raw = {"number": {"value": 3.0, "confidence": 0.5, "alternatives": [1.5, 6.0]}, "name": "C major",
           "hits": [0.5, 1.0], "spans": [{"start": 0, "end": 2, "label": "A"}],
           "level": {"times": [0.0, 0.1], "values": [[1, 2], [3, 4]]}}
    once = check_outputs(KINDS, raw, bound=5.0)
    twice = check_outputs(KINDS, once, bound=5.0)
    assert json.dumps(once, default=np.ndarray.tolist) == json.dumps(twice, default=np.ndarray.tolist)


# --- the fuzz test: a plugin that returns anything the type system allows -------------------

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9), st.booleans())
names = st.sampled_from(["time", "start", "end", "label", "confidence", "value", "times", "values", "timeline", "x"])
leaves = st.one_of(st.none(), numbers, st.text(max_size=4), st.just(object()), st.builds(np.float64, numbers))
anything = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(names, st.integers(0, 3)), inner, max_size=5)), max_leaves=16)
shaped = {
    SCALAR: st.one_of(numbers, st.fixed_dictionaries({"value": numbers}, optional={"confidence": numbers, "x": anything})),
    LABEL: st.one_of(st.text(max_size=6), st.fixed_dictionaries({"label": st.one_of(st.text(max_size=6), numbers)},
                                                                optional={"confidence": numbers, "timeline": anything})),
    EVENTS: st.lists(st.one_of(numbers, st.fixed_dictionaries({"time": numbers}, optional={"x": anything})), max_size=6),
    SEGMENTS: st.lists(st.fixed_dictionaries({"start": numbers, "end": numbers},
                                             optional={"label": st.one_of(st.text(max_size=3), numbers),
                                                       "confidence": numbers}), max_size=5),
    CURVE: st.fixed_dictionaries({"times": st.lists(numbers, max_size=6), "values": st.lists(numbers, max_size=6)}),
}
outputs = st.one_of(
    st.fixed_dictionaries({}, optional={name: st.one_of(shaped[kind], anything) for name, kind in KINDS.items()}),
    st.dictionaries(st.sampled_from([*KINDS, "undeclared"]), anything, max_size=3),
    anything)

DRAWN: dict = {}  # what the wild analyzer and hook return in the current example (inline run)


class Wild(mirflow.Analyzer):
    """Returns whatever the fuzz test drew, per chunk."""

    name = "fake.wild"
    sample_rate = 22050
    outputs = KINDS

    def analyze(self, chunk, inputs):
        return DRAWN["analyze"]


class WildMerge:
    """An ``aggregate`` hook that returns whatever the fuzz test drew (or leaves the merge alone)."""

    @mirflow.hookimpl
    def aggregate(self, analyzer, parts, track):
        return DRAWN["aggregate"] if analyzer.name == "fake.wild" else None


@pytest.fixture(scope="module")
def wild_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wild")
    audio = folder / "clicks.wav"
    import soundfile

    from conftest import click_track

    soundfile.write(audio, click_track(3.0, [0.5, 1.5, 2.5]), 22050)
    pipeline_path = folder / "wild.yaml"
    pipeline_path.write_text("name: wild\nsteps:\n  - {id: wild, analyzer: fake.wild}\n"
                             "  - {id: clicks, analyzer: fake.clicks}\n"
                             "timeline:\n  beats: clicks.clicks\n  key: wild.name\n  tempo: wild.number\n")
    import mirflow.plugins.formats

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(fakes.FakePlugin([Wild, fakes.Clicks]), name="fake")
    pm.register(WildMerge(), name="wild-merge")
    pm.register(mirflow.plugins.formats, name="formats")  # jams, lab and csv beside the json
    registry = collect_analyzers(pm)
    pipeline = load_pipeline(pipeline_path, registry)

    def run():
        outcomes, _ = run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, force=True,
                                   output_dir=folder / "out", formats=("json", "jams", "lab", "csv"))
        return outcomes[0]

    return run


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _canonical(kind: str, value, duration: float) -> None:
    if kind == SCALAR:
        assert value["value"] is None or math.isfinite(value["value"])
        assert 0 <= value["confidence"] <= 1
    elif kind == LABEL:
        assert value["label"] is None or isinstance(value["label"], str)
    elif kind == EVENTS:
        assert all(0 <= e["time"] <= duration for e in value)
    elif kind == SEGMENTS:
        assert all(0 <= s["start"] < s["end"] <= duration for s in value)
    elif kind == CURVE:
        assert len(value["times"]) == len(value["values"])
        assert all(0 - 0.05 <= t <= duration + 0.05 for t in value["times"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(from_analyze=outputs, from_aggregate=st.one_of(st.none(), outputs))
def test_whatever_a_plugin_returns_the_run_ends_with_a_strict_json_result(wild_run, from_analyze, from_aggregate):
    DRAWN.update(analyze=from_analyze, aggregate=from_aggregate)
    outcome = wild_run()
    written = {Path(p).suffix: Path(p) for p in outcome.written}
    result = _strict(written[".json"].read_text())
    _strict(written[".jams"].read_text()) if ".jams" in written else None
    clicks = result["steps"]["clicks"]
    assert clicks["status"] == "ok" and [round(e["time"], 2) for e in clicks["outputs"]["clicks"]][:1] == [0.5]
    assert [round(b["time"], 2) for b in result["timeline"]["beats"]][:1] == [0.5]
    wild = result["steps"]["wild"]
    if wild["status"] == "ok":
        for name, value in wild["outputs"].items():
            _canonical(KINDS[name], value, result["source"]["duration"])
        assert not [e for e in result["errors"] if e.get("stage") != "export"]
    else:
        assert wild["status"] == "failed" and "fake.wild" in wild["error"]["message"]
        assert [e["step"] for e in result["errors"]] == ["wild"]
