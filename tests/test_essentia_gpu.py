"""essentia_gpu: Essentia's classical descriptors on synthesized audio with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.plugins.essentia_gpu.classical import integrated_loudness
from mirflow.scheduler import run_pipeline
from mirflow.synth import key_progression, make_song

STEPS = "[essentia_gpu.key, essentia_gpu.rhythm, essentia_gpu.danceability, essentia_gpu.loudness]"


def analyze(tmp_path, name: str, samples: np.ndarray, rate: int = 44100, chunking: str = "off") -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.wav"
    soundfile.write(path, samples, rate)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"chunking: {chunking}\nsteps: {STEPS}\n")
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    (outcome,), _ = run_pipeline(load_pipeline(pipeline, registry), registry, pm, [str(path)], inline=True,
                                 output_dir=tmp_path / "out", formats=["json"])
    assert outcome.ok, outcome
    return json.loads((tmp_path / "out" / f"{name}.json").read_text())


@pytest.mark.parametrize("key, bpm", [("B minor", 96), ("Eb major", 128)])
def test_key_tempo_and_beats_of_a_synthesized_song(tmp_path, key, bpm):
    song = make_song(key_progression(key), bpm=bpm, duration=30.0, key=key, seed=bpm)
    result = analyze(tmp_path, "song", song.samples)
    assert result["summary"]["key"]["label"] == key
    assert result["summary"]["tempo"]["bpm"] == pytest.approx(bpm, rel=0.02)
    import mir_eval

    beats = np.array([b["time"] for b in result["timeline"]["beats"]])
    assert mir_eval.beat.f_measure(np.array([t for t, _ in song.beats]), beats) >= 0.9
    assert 0.5 < result["summary"]["danceability"]["value"] < 3.5
    for step in result["steps"].values():
        assert step["status"] == "ok" and step["device"] == "cpu"


def test_loudness_follows_the_level_and_does_not_depend_on_chunking(tmp_path):
    song = make_song(key_progression("A minor"), bpm=110, duration=70.0, seed=1)
    loud = analyze(tmp_path / "a", "loud", song.samples)
    quiet = analyze(tmp_path / "b", "quiet", song.samples * 0.1)  # -20 dB
    chunked = analyze(tmp_path / "c", "loud", song.samples, chunking="{min_duration: 20, length: 30, overlap: 6}")
    level = loud["summary"]["loudness"]["value"]
    assert -30 < level < -5
    assert quiet["summary"]["loudness"]["value"] == pytest.approx(level - 20, abs=0.1)
    assert len(chunked["chunks"]) == 3
    assert chunked["summary"]["loudness"]["value"] == pytest.approx(level, abs=0.2)


def test_a_6_channel_file_and_silence(tmp_path):
    song = make_song(["C:maj", "G:maj"], bpm=120, duration=12.0)
    six = np.repeat(song.samples[:, None], 6, axis=1) * 0.5
    result = analyze(tmp_path / "six", "six", six)
    assert result["errors"] == [] and result["summary"]["loudness"]["value"] is not None
    silent = analyze(tmp_path / "silence", "silence", np.zeros(10 * 44100, dtype=np.float32))
    assert silent["errors"] == [] and silent["timeline"]["beats"] == []
    assert "key" not in silent["summary"] and "tempo" not in silent["summary"]
    assert silent["summary"]["loudness"]["value"] is None


def test_integrated_loudness_gates_like_ebu_r128():
    assert integrated_loudness(np.full(100, -23.0)) == pytest.approx(-23.0)
    # Quiet passages 10 LU below the mean are left out by the relative gate.
    assert integrated_loudness(np.r_[np.full(100, -20.0), np.full(100, -40.0)]) == pytest.approx(-20.0)
    assert integrated_loudness(np.full(10, -80.0)) is None
