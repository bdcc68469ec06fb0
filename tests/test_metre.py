"""The metre stage (plugins/madmom_fast/metre.py): the level a musician writes, decided on
synthetic activations, onsets and pitch classes with the real bar decode, and one end-to-end
run of a synthesized 6/8 song through the pipeline and its JSON, JAMS and csv files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from songs import run_songs

FPS = 100
CHORDS = [(0, 4, 7), (9, 0, 4), (5, 9, 0), (7, 11, 2)]  # C Am F G


def bumps(times, heights, frames):
    """A curve of ``frames`` frames with a narrow peak of each height at each time."""
    curve = np.zeros(frames, dtype=np.float32)
    grid = np.arange(frames)
    for t, h in zip(times, heights):
        curve += h * np.exp(-0.5 * ((grid - t * FPS) / 1.5) ** 2)
    return curve


def chroma_changing_at(changes, duration):
    """Pitch classes at 10 fps: the loop C Am F G, the next chord at each of ``changes``."""
    chroma = np.zeros((int(duration * 10), 12), dtype=np.float32)
    bounds = list(np.round(np.asarray(changes) * 10).astype(int)) + [len(chroma)]
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        chroma[a:b, list(CHORDS[n % 4])] = 1.0
    return chroma + 0.05


def song(pulse_bpm: float, pulses_per_beat: int, beats_per_bar: int, duration: float = 30.0):
    """(activation, onsets, times of the beats, of the bars): the network hearing every pulse as
    a beat (as it does with the eighths of 12/8) and a downbeat on every ``pulses_per_beat``-th
    for a 12/8 pattern, or on every bar otherwise; onsets on every pulse, the beats' stronger."""
    pulse = 60.0 / pulse_bpm
    pulses = np.arange(0.2, duration - 0.5, pulse)
    index = np.arange(len(pulses))
    on_beat = index % pulses_per_beat == 0
    bar = index % (pulses_per_beat * beats_per_bar) == 0
    frames = int(duration * FPS)
    if pulses_per_beat == 3:  # the network's view of 12/8: "3/4" at the eighth note
        downbeat_at = on_beat
    else:
        downbeat_at = bar
    activation = 1e-3 + np.stack([bumps(pulses[~downbeat_at], np.full((~downbeat_at).sum(), 0.6), frames),
                           bumps(pulses[downbeat_at], np.full(downbeat_at.sum(), 0.6), frames)], axis=1)
    onsets = bumps(pulses, np.where(on_beat, 1.0, 0.35), frames) + 0.01
    return activation, onsets, pulses[on_beat], pulses[bar]


def test_a_12_8_pattern_is_written_12_8_at_the_dotted_quarter():
    from mirflow.plugins.madmom_fast import Downbeats

    activation, onsets, beats, bars = song(180, 3, 4)  # 60 dotted quarters per minute
    metre = Downbeats().bars(activation, chroma_changing_at(bars, 30.0), onsets)
    assert (metre.signature, metre.subdivision) == ("12/8", 3)
    assert 60 / np.median(np.diff(metre.times)) == pytest.approx(60, rel=0.03)
    assert set(metre.positions) == {1, 2, 3, 4}
    downbeats = metre.times[metre.positions == 1]
    assert np.min(np.abs(downbeats[:, None] - bars[None, :]), axis=1).max() < 0.05  # on the bar lines


def test_a_straight_4_4_stays_4_4_and_a_waltz_stays_3_4():
    from mirflow.plugins.madmom_fast import Downbeats

    for bpm, per_bar in ((120, 4), (90, 3)):
        activation, onsets, beats, bars = song(bpm, 1, per_bar)
        metre = Downbeats().bars(activation, chroma_changing_at(bars, 30.0), onsets)
        assert (metre.signature, metre.subdivision) == (f"{per_bar}/4", 2)
        assert 60 / np.median(np.diff(metre.times)) == pytest.approx(bpm, rel=0.03)


def test_the_harmony_groups_dotted_quarters_in_two_or_four():
    from mirflow.plugins.madmom_fast.metre import grouping

    beats = np.arange(0.0, 33.0, 1.0)  # 32 dotted quarters and where the last ends
    assert grouping(beats, chroma_changing_at(beats[1::4][:-1], 33.0)) == (4, 1)  # a chord per 12/8 bar
    assert grouping(beats, chroma_changing_at(beats[::2][:-1], 33.0)) == (2, 0)  # a chord per 6/8 bar
    assert grouping(beats, np.ones((330, 12), dtype=np.float32)) is None  # one chord: no evidence


def test_the_subdivision_grid_splits_each_beat():
    from mirflow.results import subdivision_grid

    assert subdivision_grid([0.0, 0.9, 1.8], 3) == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8]


def six_eight(bpm: float = 60.0, bars: int = 10) -> np.ndarray:
    """A synthesized 6/8 song at 44.1 kHz: detached eighth-note arpeggios of C Am F G (a chord
    per bar, the dotted quarters accented; pure tones held over each other beat and make onsets
    between the eighths), a bass note on each dotted quarter, a hi-hat on the eighths
    and a kick on each bar."""
    rate, rng = 44100, np.random.default_rng(0)
    eighth = 60.0 / bpm / 3
    out = np.zeros(int((bars * 6 * eighth + 2.0) * rate), dtype=np.float32)

    def tone(pitch, seconds, gain, harmonics=4, decay=3.0):
        t = np.arange(int(seconds * rate)) / rate
        freq = 440 * 2 ** ((pitch - 69) / 12)
        return gain * sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, harmonics + 1)) * np.exp(-decay * t)

    def add(at, sound):
        start = int(at * rate)
        end = min(len(out), start + len(sound))
        out[start:end] += sound[:end - start]

    hat = rng.standard_normal(int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / 200)
    t = np.arange(int(0.15 * rate)) / rate
    kick = 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
    for bar in range(bars):
        chord = CHORDS[bar % 4]
        for e in range(6):
            at = (bar * 6 + e) * eighth
            add(at, tone(60 + chord[[0, 1, 2, 1, 2, 1][e]] + (12 if e == 3 else 0), 0.3, 0.25 if e % 3 == 0 else 0.15))
            add(at, hat * (0.08 if e % 3 == 0 else 0.04))
        for half in (0, 3):
            add((bar * 6 + half) * eighth, tone(36 + chord[0], 1.4, 0.5 if half == 0 else 0.35, 6, 2.0))
        add(bar * 6 * eighth, kick)
    return out / np.abs(out).max() * 0.5


def test_a_6_8_song_is_6_8_at_the_dotted_quarter_in_json_jams_and_csv(tmp_path):
    result = run_songs(tmp_path, {"six": six_eight()},
                       "[{analyzer: madmom_fast.downbeats, id: beats}, {analyzer: madmom_fast.tempo}]",
                       formats=("json", "jams", "csv"))["six"]
    signature = result["summary"]["time_signature"]
    assert (signature["label"], signature["subdivision"]) == ("6/8", 3)
    assert result["summary"]["tempo"]["bpm"] == pytest.approx(60, rel=0.03)  # the tempo follows the dotted quarter
    beats = result["timeline"]["beats"]
    assert {b["position"] for b in beats} == {1, 2}
    downbeats = np.array(result["timeline"]["downbeats"])
    assert np.abs(downbeats - np.round(downbeats / 2) * 2).max() < 0.07  # a bar every 2 s, from 0
    grid = result["timeline"]["subdivisions"]
    assert len(grid) == 3 * (len(beats) - 1) + 1 and grid[::3] == pytest.approx([b["time"] for b in beats])
    with open(tmp_path / "out" / "six.subdivisions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["time"]) for r in rows] == pytest.approx(grid)
    assert [r["part"] for r in rows[:4]] == ["1", "2", "3", "1"]
    jams = json.loads((tmp_path / "out" / "six.jams").read_text())
    beat = next(a for a in jams["annotations"] if a["namespace"] == "beat")
    assert beat["sandbox"]["time_signature"]["label"] == "6/8"
    assert beat["sandbox"]["time_signature"]["subdivision"] == 3
