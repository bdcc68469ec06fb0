"""mirflow.evaluate: references read from every supported format, scores that move as expected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mirflow.evaluate import ReferenceError, Reference, load_reference, score, table, tempo_accuracy
from mirflow.synth import make_song, write_annotations


@pytest.fixture(scope="module")
def song():
    return make_song(["A:min", "F:maj", "C:maj", "G:7"], bpm=120, duration=20.0, key="A minor")


def as_estimate(song, shift: float = 0.0) -> Reference:
    beats = np.array([t for t, _ in song.beats]) + shift
    return Reference(beats=beats, downbeats=np.array(song.downbeats) + shift, tempo=song.bpm, key=song.key,
                     chords=[(s + shift, e + shift, label) for s, e, label in song.chords],
                     keys=[(s + shift, e + shift, key) for s, e, key in song.extra["keys"]])


def test_a_perfect_estimate_scores_one_on_every_measure(song, tmp_path):
    reference = load_reference(write_annotations(song, tmp_path / "song"))
    scores = score(as_estimate(song), reference)
    assert set(scores) == {"beat_f", "downbeat_f", "tempo_acc1", "tempo_acc2", "key", "chords_majmin",
                           "chords_sevenths", "key_timeline"}
    assert all(value == pytest.approx(1.0) for value in scores.values())


def test_shifted_and_wrong_estimates_score_lower_by_the_expected_amount(song, tmp_path):
    reference = load_reference(write_annotations(song, tmp_path / "song"))
    late = score(as_estimate(song, shift=0.1), reference)  # 100 ms: outside the 70 ms window
    assert late["beat_f"] == 0.0 and late["downbeat_f"] == 0.0
    # Every chord 0.1 s late: 0.1 s wrong at each of its changes, of 20 s (the first N is 0.5 s).
    changes = len(song.chords) - 1
    assert late["chords_majmin"] == pytest.approx(1 - 0.1 * changes / 20.0, abs=1e-6)
    half = as_estimate(song)
    half.beats, half.tempo, half.key = half.beats[::2], song.bpm / 2, "C major"
    scores = score(half, reference)
    assert scores["beat_f"] == pytest.approx(2 * 0.5 / 1.5, abs=0.02)  # precision 1, recall 1/2
    assert (scores["tempo_acc1"], scores["tempo_acc2"]) == (0.0, 1.0)
    assert scores["key"] == pytest.approx(0.3)  # relative major: MIREX weighting


def test_jams_references_and_the_tempo_of_the_most_confident_annotator(tmp_path):
    path = tmp_path / "piece.jams"
    path.write_text(json.dumps({"annotations": [
        {"namespace": "tempo", "data": [{"time": 0, "duration": 9, "value": 77, "confidence": 0.3},
                                        {"time": 0, "duration": 9, "value": 139, "confidence": 0.7}]},
        {"namespace": "beat", "data": [{"time": 0.5, "duration": 0, "value": 1}, {"time": 1.0, "duration": 0, "value": 2}]},
        {"namespace": "key_mode", "data": [{"time": 0, "duration": 9, "value": "F#:minor"}]},
        {"namespace": "chord", "data": [{"time": 0, "duration": 4.5, "value": "C:maj"}]},
    ]}))
    reference = load_reference([path])
    assert reference.tempo == 139 and reference.key == "F# minor" and reference.chords == [(0, 4.5, "C:maj")]
    assert list(reference.beats) == [0.5, 1.0] and list(reference.downbeats) == [0.5]


def test_unreadable_references_name_the_file_and_line(tmp_path):
    bad = tmp_path / "song.beats"
    bad.write_text("# comment\n0.5 1\nhello\n")
    with pytest.raises(ReferenceError, match=r"song\.beats:3: expected numbers, got 'hello'"):
        load_reference([bad])
    with pytest.raises(ReferenceError, match=r"song\.mid: unknown annotation format"):
        load_reference([tmp_path / "song.mid"])


def test_tempo_accuracy_and_the_table():
    assert tempo_accuracy(123.0, 120.0) == (1.0, 1.0)
    assert tempo_accuracy(40.0, 120.0) == (0.0, 1.0)
    assert tempo_accuracy(None, 120.0) == (0.0, 0.0)
    text = table([("a", {"beat_f": 1.0}), ("b", {"beat_f": 0.5, "key": 0.3})])
    assert text.splitlines()[-1] == "| **mean** | **0.750** | **0.300** |"


def test_mirflow_evaluate_scores_a_run_results_on_disk_and_the_seams(tmp_path):
    """The command end to end: a real run scored against exact annotations, a perfect result
    file scoring 1.0 via --results, and the chunked-vs-whole seam report."""
    import subprocess
    import sys
    from pathlib import Path

    import soundfile

    mirflow = str(Path(sys.executable).with_name("mirflow"))
    song = make_song(["D:maj", "A:maj", "B:min", "G:maj"], bpm=115, duration=40.0, key="D major", seed=8)
    audio, truth = tmp_path / "song.flac", tmp_path / "truth"
    truth.mkdir()
    soundfile.write(audio, song.samples, song.sample_rate)
    write_annotations(song, truth / "song")
    pipeline = tmp_path / "beats-chords.yaml"
    pipeline.write_text("steps: [{analyzer: madmom_fast.downbeats, id: beats}, madmom_fast.tempo, chords.cnn_crf]\n")
    done = subprocess.run([mirflow, "evaluate", str(pipeline), str(audio), "--truth", str(truth), "--seams", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    scores, seams = report["files"]["song.flac"], report["seams"]["song.flac"]
    assert scores["beat_f"] >= 0.95 and scores["downbeat_f"] >= 0.95 and scores["tempo_acc1"] == 1.0
    assert scores["chords_majmin"] >= 0.9 and "key" in scores and scores["key"] == 0.0  # no key step: scored 0
    assert seams["chunks"] == 2 and seams["beats_agree"] >= 0.98 and seams["chords_agree"] >= 0.98

    results = tmp_path / "results"
    results.mkdir()
    perfect = {"summary": {"tempo": {"bpm": 115.0}, "key": {"label": "D major"}},
               "timeline": {"beats": [{"time": t} for t, _ in song.beats], "downbeats": song.downbeats,
                            "chords": [{"start": s, "end": e, "label": label} for s, e, label in song.chords],
                            "keys": [{"start": 0.0, "end": 40.0, "label": "D major"}]}}
    (results / "song.json").write_text(json.dumps(perfect))
    done = subprocess.run([mirflow, "evaluate", str(pipeline), str(audio), "--truth", str(truth), "--results",
                           str(results)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "| **mean** | " + " | ".join(["**1.000**"] * 7) + " |"


def test_mirflow_evaluate_names_a_file_without_annotations(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import soundfile

    mirflow = str(Path(sys.executable).with_name("mirflow"))
    soundfile.write(tmp_path / "lonely.wav", np.zeros(22050, dtype=np.float32), 22050)
    (tmp_path / "truth").mkdir()
    done = subprocess.run([mirflow, "evaluate", "default", str(tmp_path / "lonely.wav"), "--truth",
                           str(tmp_path / "truth")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"mirflow: {tmp_path / 'lonely.wav'}: no annotation in {tmp_path / 'truth'} " \
                                  "(expected lonely.jams, .beats, .lab, ...)"


def test_a_key_change_found_late_costs_the_time_between(tmp_path):
    song = make_song(["C:maj", "G:maj"], bpm=120, duration=40.0, key="C major",
                     modulation=(20.0, ["D:maj", "A:maj"], "D major"))
    (first, switch, _), (_, _, second) = song.extra["keys"]
    assert (first, second) == (0.0, "D major") and switch == pytest.approx(20.5)  # the first bar from 20 s
    reference = load_reference(write_annotations(song, tmp_path / "mod"))
    assert reference.key is None and len(reference.keys) == 2  # no one key to score: the timeline is
    late = Reference(keys=[(0.0, switch + 4.0, "C major"), (switch + 4.0, 40.0, "D major")])
    assert score(late, reference)["key_timeline"] == pytest.approx(1 - 4.0 / 40.0 * (1 - 0.0))
