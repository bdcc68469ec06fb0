"""mirflow.analyze: one call, results as values, nothing written unless asked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile

import mirflow
from mirflow.synth import key_progression, make_song


@pytest.fixture(scope="module")
def song_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    song = make_song(key_progression("A minor"), bpm=120, duration=20.0, key="A minor", seed=2)
    path = folder / "song.flac"
    soundfile.write(path, song.samples, song.sample_rate)
    return path


def test_analyze_one_file_returns_its_timeline_and_writes_nothing(song_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = mirflow.analyze(song_file, jobs=1)
    assert isinstance(song, mirflow.Result) and song.ok
    assert song.tempo == pytest.approx(120, abs=1) and song.key == "A minor"
    assert len(song.beats) == pytest.approx(40, abs=2) and song.downbeats[0] in song.beats
    assert song.chords and {"start", "end", "label"} <= set(song.chords[0]) and song.sections
    assert json.loads(song.to_json()) == song.data
    assert {a["namespace"] for a in song.to_jams()["annotations"]} >= {"beat", "chord", "key_mode", "tempo"}
    assert "A minor" in repr(song) and "120.0 BPM" in repr(song)
    assert list(tmp_path.iterdir()) == []  # no results folder, no claims
    written = song.save(tmp_path / "out", formats=("json", "lab"))
    assert json.loads((tmp_path / "out" / "song.json").read_text()) == song.data and len(written) >= 2


def test_analyze_a_list_gives_a_result_per_file_and_a_bad_file_fails_alone(song_file, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio" * 50)
    good, broken = mirflow.analyze([song_file, bad], pipeline="fast", jobs=1)
    assert good.ok and good.tempo == pytest.approx(120, abs=1)
    assert not broken.ok and broken.beats == [] and broken.key is None
    assert broken.errors[0]["stage"] == "decode" and str(bad) in broken.errors[0]["message"]
    with pytest.raises(mirflow.AnalysisError, match=r"bad.mp3: cannot decode audio"):
        mirflow.analyze(bad, jobs=1)


def test_a_script_analyzes_with_worker_processes_and_writes_where_asked(song_file, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import sys, mirflow\n"
        "if __name__ == '__main__':\n"
        f"    song = mirflow.analyze({str(song_file)!r}, output_dir=sys.argv[1], jobs=2)\n"
        "    print(song.key, round(song.tempo), len(song.written))\n")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["A", "minor", "120"]
    assert (tmp_path / "out" / "song.json").exists()
