"""``--format mid``: the tempo map, bars, keys and markers read back by mido as a DAW would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.plugins.midi import export_mid, key_fifths

ROOT = Path(__file__).resolve().parents[1]
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


def changing_song() -> dict:
    """A result by hand: a pickup beat at 0.37 s, four bars of 4/4 at 100 BPM, then 3/4 at
    130 BPM with a little jitter; a modulation from A minor to D major; two sections."""
    beats, time = [{"time": 0.37, "position": 4}], 0.37
    for bar in range(9):
        metre, period = (4, 0.6) if bar < 4 else (3, 60 / 130)
        for position in range(1, metre + 1):
            time += period + (0.0031 if (bar + position) % 3 == 0 else -0.0017) * (bar >= 4)
            beats.append({"time": round(time, 6), "position": position})
    downbeats = [b["time"] for b in beats if b["position"] == 1]
    end = beats[-1]["time"] + 0.5
    chords = [{"start": s, "end": e, "label": label, "confidence": 0.9}
              for s, e, label in zip([0.0, *downbeats], [*downbeats, end], ["N", "A:min", "F:maj", "C:maj", "G:maj",
                                                                             "D:maj", "G:maj", "A:7", "D:maj", "X"])]
    return {
        "schema_version": 1,
        "source": {"path": "/tmp/song.wav", "name": "song.wav", "duration": end, "sample_rate": 44100, "channels": 1},
        "summary": {"tempo": {"bpm": 100.0, "confidence": 1.0}, "key": {"label": "A minor", "confidence": 0.8},
                    "time_signature": {"label": "4/4", "confidence": 0.7}},
        "steps": {},
        "timeline": {"beats": beats, "downbeats": downbeats, "chords": chords,
                     "keys": [{"start": 0.0, "end": downbeats[4], "label": "A minor"},
                              {"start": downbeats[4], "end": end, "label": "D major"}],
                     "tempo": [], "sections": [{"start": 0.0, "end": downbeats[4], "label": "A", "function": "verse"},
                                               {"start": downbeats[4], "end": end, "label": "B", "function": "chorus"}]},
        "errors": [],
    }


def read_back(data: bytes):
    """(file, conductor messages with absolute ticks, seconds of a tick by the file's tempo map)."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    tick, conductor = 0, []
    for message in midi.tracks[0]:
        tick += message.time
        conductor.append((tick, message))
    tempos = [(t, m.tempo) for t, m in conductor if m.type == "set_tempo"]

    def seconds(at: int) -> float:
        total, last_tick, tempo = 0.0, 0, 500_000
        for change, value in tempos:
            if change >= at:
                break
            total += mido.tick2second(change - last_tick, midi.ticks_per_beat, tempo)
            last_tick, tempo = change, value
        return total + mido.tick2second(at - last_tick, midi.ticks_per_beat, tempo)

    return midi, conductor, seconds


def bar_starts(conductor, end_tick: int, ppq: int) -> list[int]:
    """Where a DAW draws bar lines: from tick 0, each time signature's numerator quarters a bar."""
    signatures = [(t, m.numerator * ppq * 4 // m.denominator) for t, m in conductor if m.type == "time_signature"]
    starts, tick, length = [], 0, 4 * ppq
    while tick < end_tick:
        for change, bar in signatures:
            if change == tick:
                length = bar
        starts.append(tick)
        tick += length
    return starts


def test_the_nth_beat_of_the_file_is_the_nth_beat_of_the_song_across_a_tempo_change():
    result = changing_song()
    ((suffix, data),) = export_mid(result)
    midi, conductor, seconds = read_back(data)
    assert suffix == ".mid" and midi.type == 1 and len(midi.tracks) == 2
    ppq = midi.ticks_per_beat
    # One lead-in quarter (0 to the first beat), then a quarter per beat of the result.
    first = next(t for t, m in conductor if m.type == "set_tempo" and t > 0)
    assert first == ppq and seconds(0) == 0.0
    for n, beat in enumerate(result["timeline"]["beats"]):
        assert seconds((n + 1) * ppq) == pytest.approx(beat["time"], abs=1e-5), n
    # The tempo events follow the song: 100 BPM, then about 130 BPM.
    bpms = [mido.tempo2bpm(m.tempo) for t, m in conductor if m.type == "set_tempo" and t >= ppq]
    assert bpms[1] == pytest.approx(100, abs=0.01) and bpms[-2] == pytest.approx(130, abs=1.5)


def test_bars_fall_on_the_downbeats_and_the_metre_changes_where_the_song_does():
    result = changing_song()
    midi, conductor, seconds = read_back(export_mid(result)[0][1])
    ppq = midi.ticks_per_beat
    signatures = [(t, f"{m.numerator}/{m.denominator}") for t, m in conductor if m.type == "time_signature"]
    # Bar 1: lead-in and the pickup beat (2/4); four bars of 4/4; 3/4 from the fifth downbeat.
    assert [s for _, s in signatures] == ["2/4", "4/4", "3/4"]
    end = max(t for t, _ in conductor)
    bars = [seconds(t) for t in bar_starts(conductor, end, ppq)]
    downbeats = result["timeline"]["downbeats"]
    last_beat = result["timeline"]["beats"][-1]["time"]
    assert bars[0] == 0.0 and len([b for b in bars if b <= last_beat]) - 1 == len(downbeats)
    assert bars[1:len(downbeats) + 1] == pytest.approx(downbeats, abs=1e-5)
    assert seconds(signatures[2][0]) == pytest.approx(downbeats[4], abs=1e-5)


def test_keys_sections_and_chords_are_markers_and_the_chords_are_notes():
    result = changing_song()
    midi, conductor, seconds = read_back(export_mid(result)[0][1])
    keys = [(seconds(t), m.key) for t, m in conductor if m.type == "key_signature"]
    assert keys == [(0.0, "Am"), (pytest.approx(result["timeline"]["downbeats"][4], abs=1e-3), "D")]
    # Markers at their times as mido's own playback clock (tempo changes included) reaches them.
    clock, markers = 0.0, []
    for message in midi:
        clock += message.time
        if message.type == "marker":
            markers.append((message.text, clock))
    expected = [("A verse", 0.0)] + [(c["label"], c["start"]) for c in result["timeline"]["chords"][1:-1]]
    expected.insert(5, ("B chorus", result["timeline"]["downbeats"][4]))
    assert [m for m, _ in markers] == [m for m, _ in expected]  # no marker for N or X
    assert [t for _, t in markers] == pytest.approx([t for _, t in expected], abs=1e-3)
    notes = [m for m in midi.tracks[1] if m.type == "note_on" and m.velocity > 0]
    assert midi.tracks[1].name == "Chords" and len(notes) == 3 * 8  # eight triads (none for N, X)
    assert {m.note for m in notes[:3]} == {57, 60, 64}  # A:min around middle C
    assert midi.length == pytest.approx(result["source"]["duration"], abs=1e-3)


def test_without_beats_or_downbeats_the_file_still_plays_from_time_zero():
    result = changing_song()
    result["timeline"].update(beats=[], downbeats=[], keys=[])
    midi, conductor, seconds = read_back(export_mid(result)[0][1])
    assert [f"{m.numerator}/{m.denominator}" for _, m in conductor if m.type == "time_signature"] == ["4/4"]
    assert [m.key for _, m in conductor if m.type == "key_signature"] == ["Am"]  # the summary's key
    assert midi.length == pytest.approx(result["source"]["duration"], abs=1e-3)


def test_a_first_beat_later_than_midis_slowest_quarter_gets_a_longer_lead_in():
    result = changing_song()
    for beat in result["timeline"]["beats"]:
        beat["time"] += 30.0
    result["source"]["duration"] += 30.0
    midi, conductor, seconds = read_back(export_mid(result)[0][1])
    ppq = midi.ticks_per_beat
    assert seconds(2 * ppq) == pytest.approx(result["timeline"]["beats"][0]["time"], abs=1e-5)  # two quarters
    assert seconds(3 * ppq) == pytest.approx(result["timeline"]["beats"][1]["time"], abs=1e-5)


@pytest.mark.parametrize("label, fifths", [("C major", (0, False)), ("A minor", (0, True)), ("Eb major", (-3, False)),
                                           ("F# minor", (3, True)), ("D# major", (-3, False)),
                                           ("Gb major", (-6, False)), ("C dorian", None), ("H major", None)])
def test_key_signatures_count_sharps_and_flats(label, fifths):
    assert key_fifths(label) == fifths


def test_mid_is_a_format_registered_through_the_exporter_hook_and_can_be_disabled():
    assert collect_analyzers(make_plugin_manager()).exporters["mid"] is export_mid
    assert "mid" not in collect_analyzers(make_plugin_manager(disabled=("midi",))).exporters


def test_the_example_exports_a_tempo_map_on_its_beats(example_results):
    result = json.loads((example_results / "example.json").read_text())
    midi, conductor, seconds = read_back((example_results / "example.mid").read_bytes())
    ppq, beats = midi.ticks_per_beat, result["timeline"]["beats"]
    assert len(beats) > 20 and result["errors"] == []
    for n, beat in enumerate(beats):
        assert seconds((n + 1) * ppq) == pytest.approx(beat["time"], abs=1e-5), n
    end = max(t for t, _ in conductor)
    bars = [seconds(t) for t in bar_starts(conductor, end, ppq)][1:]
    assert bars[:len(result["timeline"]["downbeats"])] == pytest.approx(result["timeline"]["downbeats"], abs=1e-5)
    assert any(m.type == "marker" for _, m in conductor)


def test_a_result_value_saves_as_mid_through_the_plugin(tmp_path):
    import mirflow

    result = mirflow.Result("/tmp/song.wav", changing_song())
    written = result.save(tmp_path, formats=("json", "mid"))
    assert [Path(p).name for p in written] == ["song.json", "song.mid"]
    midi, _, seconds = read_back((tmp_path / "song.mid").read_bytes())
    assert seconds(midi.ticks_per_beat) == pytest.approx(result.beats[0], abs=1e-5)
    with pytest.raises(ValueError, match="unknown format 'midi'"):
        result.save(tmp_path, formats=("midi",))


def test_an_unknown_format_names_the_choices_including_mid(tmp_path):
    done = subprocess.run([MIRFLOW, "run", "default", str(ROOT / "examples" / "example.ogg"), "--format", "midi",
                           "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "unknown format 'midi'" in done.stderr and "mid" in done.stderr.split("choose from")[1]
    assert not any(tmp_path.iterdir())
