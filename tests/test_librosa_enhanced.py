"""librosa_enhanced: keys and key changes, tempo, curves, and features computed once per chunk."""

from __future__ import annotations


import numpy as np
import pytest

from mirflow import features
from mirflow.plugins.librosa_enhanced import chroma_cqt
from mirflow.dsp.features import chroma_stft
from mirflow.synth import key_progression, make_song
from songs import run_songs

STEPS = "[librosa_enhanced.key, librosa_enhanced.tempo, librosa_enhanced.features, chords.templates]"


def run(tmp_path, songs: dict, steps: str = STEPS, chunking: str = "off", **options) -> dict:
    return run_songs(tmp_path, songs, steps, chunking, **options)


def test_songs_in_known_keys_major_and_minor(tmp_path):
    keys = ["A minor", "Eb major", "F# minor", "B major", "C# minor", "G major"]
    songs = {f"song{n}": make_song(key_progression(key), bpm=90 + 12 * n, duration=20.0, key=key, seed=n)
             for n, key in enumerate(keys)}
    results = run(tmp_path, songs, steps="[librosa_enhanced.key]")
    assert [results[f"song{n}"]["summary"]["key"]["label"] for n in range(len(keys))] == keys
    for result in results.values():
        (segment,) = result["timeline"]["keys"]  # one key throughout: no flicker
        assert segment["start"] == 0.0 and segment["end"] == pytest.approx(20.0)


def test_noise_and_a_click_have_no_key(tmp_path):
    rng = np.random.default_rng(3)
    white = (0.1 * rng.standard_normal(44100 * 20)).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(44100 * 20))
    brown = (0.3 * (brown - np.convolve(brown, np.ones(2000) / 2000, "same")) / 200).astype(np.float32)
    click = np.zeros(22050, dtype=np.float32)
    click[200:220] = 1.0
    song = make_song(key_progression("E major"), bpm=100, duration=20.0, key="E major", seed=4)
    results = run(tmp_path, {"white": white, "brown": brown, "click": click, "song": song},
                  steps="[librosa_enhanced.key]")
    for name in ("white", "brown", "click"):
        assert "key" not in results[name]["summary"], name
        assert results[name]["timeline"]["keys"] == []
    assert results["song"]["summary"]["key"]["label"] == "E major"


def test_a_modulation_gives_two_key_segments_at_about_the_right_time(tmp_path):
    song = make_song(key_progression("A minor"), bpm=124, duration=100.0, key="A minor", seed=9,
                     modulation=(50.0, key_progression("C major"), "C major"))
    chunked = run(tmp_path / "a", {"mod": song}, steps="[librosa_enhanced.key]",
                  chunking="{min_duration: 30, length: 40, overlap: 10}")["mod"]
    assert len(chunked["chunks"]) == 3
    first, second = chunked["timeline"]["keys"]
    switch = song.extra["keys"][1][0]
    assert (first["label"], second["label"]) == ("A minor", "C major")
    assert abs(first["end"] - switch) <= 8.0 and first["end"] == second["start"]


def test_tempo_of_a_drum_pattern_within_two_percent_with_its_octave_alternative(tmp_path):
    songs = {f"t{bpm}": make_song(["C:maj"], bpm=bpm, duration=30.0, seed=bpm) for bpm in (92, 118, 135)}
    results = run(tmp_path, songs, steps="[librosa_enhanced.tempo]")
    for bpm in (92, 118, 135):
        tempo = results[f"t{bpm}"]["summary"]["tempo"]
        assert tempo["bpm"] == pytest.approx(bpm, rel=0.02)
        assert tempo["alternative"] == pytest.approx(bpm * 2, rel=0.03) or tempo["alternative"] == pytest.approx(
            bpm / 2, rel=0.03)
        curve = results[f"t{bpm}"]["timeline"]["tempo"]
        assert curve and all(abs(point["bpm"] / bpm - 1) < 0.03 for point in curve)


def test_each_feature_is_computed_once_per_chunk_for_all_analyzers(tmp_path):
    """Key, tempo, features and template chords share chroma, onset envelope and STFT."""
    features.COMPUTED.clear()
    song = make_song(key_progression("D major"), bpm=100, duration=70.0, key="D major", seed=2)
    result = run(tmp_path, {"song": song}, chunking="{min_duration: 30, length: 30, overlap: 5}")["song"]
    chunks = len(result["chunks"])
    assert chunks == 3
    assert dict(features.COMPUTED) == {"chroma_stft-2048": chunks, "onset-512": chunks, "timbre-2048": chunks}
    assert all(step["status"] == "ok" for step in result["steps"].values())
    assert not list(tmp_path.glob("**/*.npy"))  # shared features leave with the audio


def test_silence_and_very_short_inputs_give_empty_answers_not_errors(tmp_path):
    song = make_song(["C:maj"], bpm=120, duration=5.0)
    results = run(tmp_path, {"silence": np.zeros(10 * 44100, dtype=np.float32),
                             "short": song.samples[:int(0.2 * 44100)]})
    for result in results.values():
        assert result["errors"] == []
        assert "key" not in result["summary"] and "tempo" not in result["summary"]
        assert result["timeline"]["keys"] == []
    assert results["silence"]["summary"]["loudness_mean"]["value"] is None


def test_curves_are_on_the_timeline_frame_times(tmp_path):
    """Music starts at 6 s: the loudness and onset curves change there, within a frame."""
    song = make_song(key_progression("E minor"), bpm=110, duration=20.0, key="E minor", seed=5)
    samples = np.concatenate([np.zeros(6 * 44100, dtype=np.float32), song.samples])
    result = run(tmp_path, {"late": samples}, steps="[librosa_enhanced.features]",
                 chunking="{min_duration: 10, length: 12, overlap: 4}")["late"]
    outputs = result["steps"]["features"]["outputs"]
    times = np.array(outputs["loudness"]["times"])
    assert np.allclose(np.diff(times), 2048 / 22050, atol=1e-4)  # the documented frame rate, across seams
    loud = np.array(outputs["loudness"]["values"])
    onset_at = times[np.argmax(loud > -40)]
    assert 6.0 + 0.5 - 0.2 <= onset_at <= 6.5 + 0.1  # the first beat is 0.5 s into the song
    density = np.array(outputs["onset_density"]["values"])
    assert density[times < 4.5].max() == 0 and density[(times > 8) & (times < 20)].min() > 0
    assert result["summary"]["loudness_range"]["value"] > 0


def test_blockwise_cqt_chroma_matches_a_single_pass():
    import librosa
    import soxr

    song = make_song(["D:min", "A:maj", "G:min", "C:maj"], bpm=110, duration=130.0, seed=4)  # 2 blocks + a remainder
    samples = soxr.resample(song.samples, song.sample_rate, 22050).astype(np.float32)
    whole = librosa.feature.chroma_cqt(y=samples, sr=22050, hop_length=2048)
    blocked = chroma_cqt(samples, 22050)
    assert blocked.shape == whole.shape
    assert np.abs(blocked - whole).max() < 0.05  # block edges: context covers the filters
    np.testing.assert_allclose(blocked.mean(axis=1), whole.mean(axis=1), atol=2e-3)


def test_blockwise_stft_chroma_equals_a_single_pass_with_the_same_tuning():
    import librosa
    import soxr

    song = make_song(["E:min", "C:maj", "G:maj", "D:maj"], bpm=96, duration=130.0, seed=6)
    samples = soxr.resample(song.samples, song.sample_rate, 22050).astype(np.float32)
    middle = len(samples) // 2
    tuning = librosa.estimate_tuning(y=samples[middle - 22050 * 15:middle + 22050 * 15], sr=22050)
    whole = librosa.feature.chroma_stft(y=samples, sr=22050, n_fft=8192, hop_length=2048, tuning=tuning)
    blocked = chroma_stft(samples, 22050)
    assert blocked.shape == whole.shape
    np.testing.assert_allclose(blocked, whole, atol=1e-5)


def test_a_shared_feature_whose_computer_died_is_computed_by_the_next_asker_at_once(tmp_path):
    """The lock is an flock: the kernel drops it with the process that held it."""
    import subprocess
    import sys
    import time
    from types import SimpleNamespace

    chunk = SimpleNamespace(cache_prefix=str(tmp_path / "song"), index=0)
    lock = tmp_path / "song.0.thing.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, time
handle = open({str(lock)!r}, "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    began = time.monotonic()
    value = features.shared(chunk, "thing", lambda: np.arange(3.0))
    assert time.monotonic() - began < 5 and value.tolist() == [0.0, 1.0, 2.0]
    assert (tmp_path / "song.0.thing.npy").exists() and lock.exists()  # left for Audio.remove()


def test_beats_without_a_model_follow_a_drum_pattern_across_chunks(tmp_path):
    import mir_eval

    song = make_song(key_progression("E minor"), bpm=112, duration=75.0, key="E minor", seed=9)
    result = run(tmp_path, {"song": song}, steps="[librosa_enhanced.beats]",
                 chunking="{min_duration: 30, length: 30, overlap: 5}")["song"]
    assert len(result["chunks"]) == 3
    beats = np.array([b["time"] for b in result["timeline"]["beats"]])
    truth = np.array([t for t, _ in song.beats])
    assert mir_eval.beat.f_measure(truth, beats, f_measure_threshold=0.07) >= 0.9
    assert result["summary"]["tempo"]["bpm"] == pytest.approx(112, rel=0.02)
    assert all(b["position"] is None for b in result["timeline"]["beats"]) and result["timeline"]["downbeats"] == []


def test_chord_evidence_favours_the_tonic_over_the_dominant_and_the_relative_key():
    from mirflow.plugins.librosa_enhanced.key import chord_evidence, key_label

    loop = ["C:maj", "G:maj", "A:min", "F:maj"] * 4  # I V vi IV
    chords = [{"start": 2.0 * n, "end": 2.0 * (n + 1), "label": label} for n, label in enumerate(loop)]
    evidence = chord_evidence(chords, np.arange(0.0, 32.0), 16.0).mean(axis=0)
    ranked = [key_label(i) for i in np.argsort(-evidence)]
    assert ranked[0] == "C major"
    assert evidence[0] > evidence[7] and evidence[0] > evidence[12 + 9]  # C major over G major and A minor
    minor = [{"start": 2.0 * n, "end": 2.0 * (n + 1), "label": label}
             for n, label in enumerate(["A:min", "D:min", "E:maj", "A:min"] * 4)]  # i iv V i
    assert key_label(int(np.argmax(chord_evidence(minor, np.arange(0.0, 32.0), 16.0).mean(axis=0)))) == "A minor"
    assert not chord_evidence([{"start": 0.0, "end": 4.0, "label": "N"}], np.arange(0.0, 4.0), 16.0).any()
