"""The default pipeline on real recordings annotated by people (../shared/realdata).

The excerpts are read in place (their licences forbid copying them here). Floors sit a
little under what was measured (benchmarks/README.md), so that a regression fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mirflow.evaluate import load_reference, predicted, score
from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus import REALDATA, realdata  # noqa: E402

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"no real annotated audio at {REALDATA}")


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    """Each piece's scores, from one scheduler run (two workers) of the default pipeline."""
    temp = tmp_path_factory.mktemp("real")
    pieces = realdata(temp)
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    pipeline = load_pipeline(ROOT / "pipelines" / "default.yaml", registry)
    outcomes, _ = run_pipeline(pipeline, registry, pm, [str(p.audio) for p in pieces], jobs=2,
                               output_dir=temp / "out", formats=["json"])
    assert all(outcome.ok for outcome in outcomes), outcomes
    import json

    return {p.name: score(predicted(json.loads((temp / "out" / f"{p.audio.stem}.json").read_text())),
                          load_reference(p.truth)) for p in pieces}


def test_beats_and_downbeats_of_real_recordings(scores):
    waltz, country = scores["ballroom waltz (3/4)"], scores["gtzan country"]
    assert waltz["beat_f"] >= 0.9 and waltz["downbeat_f"] >= 0.9  # a real 3/4 at its own tempo
    assert country["beat_f"] >= 0.75 and country["downbeat_f"] >= 0.75
    assert scores["madmom sample (4/4)"]["beat_f"] >= 0.6  # 2.8 s: 5 annotated beats
    assert scores["jtd jazz trio (~290 BPM)"]["beat_f"] >= 0.6  # tracked at half tempo (145 BPM)


def test_tempo_of_real_recordings_up_to_the_metrical_level(scores):
    tempo_pieces = {name: s for name, s in scores.items() if "tempo_acc2" in s}
    assert len(tempo_pieces) == 7
    right = [name for name, s in tempo_pieces.items() if s["tempo_acc2"] == 1.0]
    assert len(right) >= 6, tempo_pieces  # all but the 2 s GiantSteps excerpt


def test_the_key_of_a_real_recording(scores):
    assert scores["beatport key"]["key"] == 1.0  # D minor, from 2 seconds of EDM
