"""The default pipeline's built-in analyzers on synthesized songs with exact answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile

from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import run_pipeline
from mirflow.synth import make_song
from songs import with_chunking

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def builtins():
    pm = make_plugin_manager()
    return pm, collect_analyzers(pm)


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """100 s at 128 BPM in E minor: long enough for three 40 s chunks."""
    song = make_song(["E:min", "C:maj", "A:min", "B:maj"], bpm=128, duration=100.0, key="E minor", seed=3)
    path = tmp_path_factory.mktemp("song") / "song.flac"
    soundfile.write(path, song.samples, song.sample_rate)
    return song, path


def analyze(builtins, path, out, chunking):
    pm, registry = builtins
    text = (ROOT / "pipelines" / "default.yaml").read_text()
    pipeline_path = out / "pipeline.yaml"
    out.mkdir(parents=True, exist_ok=True)
    pipeline_path.write_text(with_chunking(text, chunking))
    pipeline = load_pipeline(pipeline_path, registry)
    (outcome,) = run_pipeline(pipeline, registry, pm, [str(path)], inline=True, output_dir=out)[0]
    assert outcome.ok, outcome
    return json.loads((out / f"{Path(path).stem}.json").read_text())


@pytest.fixture(scope="module")
def chunked(builtins, song, tmp_path_factory):
    _, path = song
    return analyze(builtins, path, tmp_path_factory.mktemp("chunked"), "{min_duration: 30, length: 40, overlap: 10}")


def test_beats_tempo_chords_and_key_match_the_truth(song, chunked):
    truth, _ = song
    assert len(chunked["chunks"]) == 3
    estimated = np.array([b["time"] for b in chunked["timeline"]["beats"]])
    reference = np.array([t for t, _ in truth.beats])
    assert mir_eval.beat.f_measure(reference, estimated) >= 0.95
    assert mir_eval.beat.f_measure(np.array(truth.downbeats), np.array(chunked["timeline"]["downbeats"])) >= 0.95
    assert {b["position"] for b in chunked["timeline"]["beats"]} == {1, 2, 3, 4}
    assert chunked["summary"]["time_signature"]["label"] == "4/4"
    assert chunked["summary"]["tempo"]["bpm"] == pytest.approx(128, rel=0.02)
    assert chunked["summary"]["tempo"]["alternative"] == pytest.approx(64, rel=0.02)  # the half-tempo reading
    assert [p["bpm"] for p in chunked["timeline"]["tempo"]] == pytest.approx([128] * (len(estimated) - 1), rel=0.03)
    assert chunked["summary"]["key"]["label"] == "E minor"
    ref_intervals = np.array([[s, e] for s, e, _ in truth.chords])
    est = chunked["timeline"]["chords"]
    est_intervals = np.array([[c["start"], c["end"]] for c in est])
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        est_intervals, [c["label"] for c in est], ref_intervals.min(), ref_intervals.max(), "N", "N")
    merged = mir_eval.util.merge_labeled_intervals(ref_intervals, [c for _, _, c in truth.chords], est_intervals, est_labels)
    intervals, ref_labels, est_labels = merged
    scores = mir_eval.chord.majmin(ref_labels, est_labels)
    assert mir_eval.chord.weighted_accuracy(scores, mir_eval.util.intervals_to_durations(intervals)) >= 0.85
    beat_times = set(estimated)
    assert all(c["start"] in beat_times and c["start_beat"] is not None for c in est[1:])  # snapped to beats
    assert chunked["summary"]["progression"]["label"] == "E:min C:maj A:min B:maj"
    for step in chunked["steps"].values():
        assert step["status"] == "ok" and step["device"] == "cpu"


def test_chunked_and_whole_file_timelines_agree(analyzed_song):
    """The shared structured song (four seams) analyzed whole and in 30 s chunks."""
    chunked, whole = analyzed_song.chunked, analyzed_song.whole
    assert len(chunked["chunks"]) == 4 and len(whole["chunks"]) == 1
    a = np.array([b["time"] for b in chunked["timeline"]["beats"]])
    b = np.array([b["time"] for b in whole["timeline"]["beats"]])
    assert len(a) == len(b) and np.max(np.abs(a - b)) <= 0.010 + 1e-9  # same beats within 10 ms (one frame)
    assert [x["position"] for x in chunked["timeline"]["beats"]] == [x["position"] for x in whole["timeline"]["beats"]]
    labels_a = [c["label"] for c in chunked["timeline"]["chords"]]
    labels_b = [c["label"] for c in whole["timeline"]["chords"]]
    assert labels_a == labels_b  # no extra segment at a seam


def test_silence_gives_no_beats_no_key_and_no_chord(builtins, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(10 * 44100, dtype=np.float32), 44100)
    result = analyze(builtins, path, tmp_path / "out", "off")
    assert result["timeline"]["beats"] == [] and "tempo" not in result["summary"] and "key" not in result["summary"]
    assert [c["label"] for c in result["timeline"]["chords"]] == ["N"]
    assert result["errors"] == []


def test_the_readme_example_runs_and_prints_a_summary(tmp_path):
    mirflow = str(Path(sys.executable).with_name("mirflow"))
    done = subprocess.run([mirflow, "run", "default", str(ROOT / "examples" / "example.ogg"), "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "A minor" in done.stdout and "100.0 BPM" in done.stdout
    assert (tmp_path / "example.json").exists() and (tmp_path / "example.jams").exists()
    # One loop in one arrangement for a minute is one section (structure.sections v2 first cut
    # it into four "different" ones: its bars' timbre was compared as a mean over all pairs).
    sections = json.loads((tmp_path / "example.json").read_text())["timeline"]["sections"]
    assert [s["label"] for s in sections] == ["A"] and "  sections   A\n" in done.stdout


def test_a_quieter_copy_gives_the_same_beats_and_chords(tmp_path):
    """madmom's networks read log(1 + x) spectrograms, which change with the gain: their
    analyzers get the track at one normalized level, so 12 dB less changes nothing."""
    from songs import run_songs

    song = make_song(["A:min", "F:maj", "C:maj", "G:maj"], bpm=112, duration=20.0, seed=5)
    quiet = (song.samples * 10 ** (-12 / 20)).astype(np.float32)
    results = run_songs(tmp_path, {"loud": song, "quiet": quiet}, "[madmom_fast.downbeats, chords.cnn_crf]")
    loud, soft = (results[name]["timeline"] for name in ("loud", "quiet"))
    # To the sample: beats lie between frames, where the gain's float rounding moves them ~10 microseconds.
    assert [b["time"] for b in soft["beats"]] == pytest.approx([b["time"] for b in loud["beats"]], abs=1 / 44100)
    assert [(c["label"], round(c["start"], 3)) for c in soft["chords"]] == [
        (c["label"], round(c["start"], 3)) for c in loud["chords"]]
