"""``mirflow sonify``: clicks where the beats are, chord tones without clicks, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mirflow.synth import make_song

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A 20 s song analysed with madmom's downbeats, template chords and sections: (result path, song path)."""
    from songs import run_songs

    folder = tmp_path_factory.mktemp("sonify")
    song = make_song(["A:min", "F:maj", "C:maj", "G:maj"], bpm=112, duration=20.0, seed=3)
    run_songs(folder, {"song": song}, "[{analyzer: madmom_fast.downbeats, id: beats}, chords.templates, "
                                      "structure.sections]")
    return folder / "out" / "song.json", folder / "song.flac"


def sonify(*args) -> subprocess.CompletedProcess:
    return subprocess.run([MIRFLOW, "sonify", *map(str, args)], capture_output=True, text=True)


def click_onsets(signal: np.ndarray, rate: int) -> np.ndarray:
    """Seconds where energy above 700 Hz (the clicks: 1000 and 1600 Hz; chord tones stay under
    500 Hz) rises past a fifth of its peak after at least 50 ms below it."""
    spectrum = np.fft.rfft(signal)
    spectrum[np.fft.rfftfreq(len(signal), 1 / rate) < 700] = 0
    envelope = np.abs(np.fft.irfft(spectrum, len(signal)))
    if envelope.max() < 1e-3:
        return np.zeros(0)
    above = np.nonzero(envelope > 0.2 * envelope.max())[0]
    gaps = np.diff(above, prepend=-rate)
    return above[gaps > 0.05 * rate] / rate


def test_clicks_sound_on_the_beats_and_the_file_keeps_the_songs_length_and_rate(analysed, tmp_path):
    result_path, song_path = analysed
    result = json.loads(result_path.read_text())
    done = sonify(result_path, "-o", tmp_path / "clicks.wav", "--mix", "0.5")
    assert done.returncode == 0, done.stderr
    written, rate = soundfile.read(tmp_path / "clicks.wav", dtype="float64")
    music, source_rate = soundfile.read(song_path, dtype="float64")
    assert rate == source_rate and len(written) == len(music)
    overlay = (written.mean(axis=1) if written.ndim > 1 else written) - 0.5 * music  # what was mixed in
    onsets = click_onsets(overlay, rate)
    beats = np.array([b["time"] for b in result["timeline"]["beats"]])
    assert len(beats) >= 30 and len(onsets) == len(beats)
    assert np.abs(onsets - beats).max() <= 0.005
    # Downbeats get the higher click: its energy is centred at 1600 Hz, not 1000.
    downbeat = int(result["timeline"]["downbeats"][1] * rate)
    piece = overlay[downbeat:downbeat + int(0.03 * rate)]
    spectrum = np.abs(np.fft.rfft(piece, 8192))
    assert abs(np.fft.rfftfreq(8192, 1 / rate)[np.argmax(spectrum)] - 1600) < 20


def test_chord_tones_alone_have_no_clicks(analysed, tmp_path):
    result_path, song_path = analysed
    done = sonify(result_path, "-o", tmp_path / "chords.flac", "--no-beats", "--no-downbeats", "--chords",
                  "--mix", "1")
    assert done.returncode == 0, done.stderr
    written, rate = soundfile.read(tmp_path / "chords.flac", dtype="float64")
    mono = written.mean(axis=1) if written.ndim > 1 else written
    assert len(click_onsets(mono, rate)) == 0
    # The first chord's triad (A minor: A3 C4 E4) sounds in its first second.
    result = json.loads(result_path.read_text())
    first = next(c for c in result["timeline"]["chords"] if c["label"] != "N")
    start = int((first["start"] + 0.1) * rate)
    piece = mono[start:start + rate // 2]
    spectrum, freqs = np.abs(np.fft.rfft(piece)), np.fft.rfftfreq(len(piece), 1 / rate)
    strongest = sorted(freqs[np.argsort(spectrum)[-3:]])
    assert first["label"].startswith("A:min")
    assert strongest == pytest.approx([220.0, 261.6, 329.6], abs=2.5)


def test_a_span_of_the_song_and_section_cues(analysed, tmp_path):
    result_path, _ = analysed
    done = sonify(result_path, "-o", tmp_path / "span.ogg", "--start", "5", "--end", "12.5", "--sections")
    assert done.returncode == 0, done.stderr
    info = soundfile.info(tmp_path / "span.ogg")
    assert info.duration == pytest.approx(7.5, abs=0.01)


def test_a_moved_or_changed_song_is_a_one_line_error_and_nothing_is_written(analysed, tmp_path):
    result_path, song_path = analysed
    moved = tmp_path / "moved.json"
    result = json.loads(result_path.read_text())
    result["source"]["path"] = str(tmp_path / "gone.flac")
    moved.write_text(json.dumps(result))
    done = sonify(moved, "-o", tmp_path / "out.wav")
    assert done.returncode != 0 and not (tmp_path / "out.wav").exists()
    assert done.stderr.strip().count("\n") == 0 and "--audio" in done.stderr and "gone.flac" in done.stderr
    copy = tmp_path / "copy.flac"
    shutil.copy(song_path, copy)
    assert sonify(moved, "-o", tmp_path / "out.wav", "--audio", copy).returncode == 0  # found with --audio
    other = tmp_path / "other.flac"
    soundfile.write(other, make_song(["C:maj"], duration=3.0).samples, 44100)
    done = sonify(moved, "-o", tmp_path / "other.wav", "--audio", other)
    assert done.returncode != 0 and "sha256" in done.stderr and not (tmp_path / "other.wav").exists()
    assert list(tmp_path.glob(".*")) == []  # no temporary file left behind
    done = sonify(result_path, "-o", tmp_path / "late.wav", "--start", "25")  # the song is 20 s long
    assert done.returncode != 0 and "--start (25 s) is after the song's end" in done.stderr
    assert not (tmp_path / "late.wav").exists()
    done = sonify(result_path, "-o", tmp_path / "song.mp4")
    assert done.returncode != 0 and ".wav, .flac or .ogg" in done.stderr
