"""Exports read back with real readers match the JSON; plots are real PNGs of what was asked."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile

import mirflow
from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers
from mirflow.scheduler import run_pipeline

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
PIPELINE = """
chunking: {min_duration: 0, length: 20, overlap: 4}
steps: [fake.clicks, fake.sections, fake.level, fake.tonic]
timeline: {beats: clicks.clicks}
output: {formats: [json, jams, lab, csv]}
"""


@pytest.fixture
def exported(pm, registry, write_pipeline, write_clicks, tmp_path):
    audio, _ = write_clicks(45.0, period=0.5)
    pipeline = load_pipeline(write_pipeline(PIPELINE), registry)
    (outcome,) = run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, output_dir=tmp_path / "out")[0]
    out = tmp_path / "out"
    return json.loads((out / "clicks.json").read_text()), out, outcome


def test_lab_files_read_back_with_mir_eval(exported):
    result, out, outcome = exported
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / "clicks.chords.lab"))
    chords = result["timeline"]["chords"]
    assert labels == [c["label"] for c in chords]
    np.testing.assert_allclose(intervals, [[c["start"], c["end"]] for c in chords], atol=1e-6)
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / "clicks.keys.lab"))
    keys = result["timeline"]["keys"]
    assert labels == [k["label"] for k in keys] == ["A minor", "C major"]
    np.testing.assert_allclose(intervals, [[k["start"], k["end"]] for k in keys], atol=1e-6)
    assert not list(out.glob("*.level.*.lab"))  # labels are not segments: no stray file


def test_csv_files_read_back_with_the_csv_module(exported):
    result, out, _ = exported
    with open(out / "clicks.beats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["time"]) for r in rows] == pytest.approx([b["time"] for b in result["timeline"]["beats"]])
    assert set(rows[0]) == {"time", "position", "downbeat"}
    with open(out / "clicks.level.envelope.csv", newline="") as handle:
        curve = list(csv.DictReader(handle))
    envelope = result["steps"]["level"]["outputs"]["envelope"]
    assert [float(r["time"]) for r in curve] == pytest.approx(envelope["times"])
    assert [float(r["value"]) for r in curve] == pytest.approx(envelope["values"])


def test_every_written_file_is_listed_and_jams_agrees(exported):
    jams = pytest.importorskip("jams")
    result, out, outcome = exported
    assert sorted(Path(p).name for p in outcome.written) == sorted(p.name for p in out.iterdir())
    document = jams.load(str(out / "clicks.jams"))
    chords = document.search(namespace="chord")[0].data
    assert [o.value for o in chords] == [c["label"] for c in result["timeline"]["chords"]]
    keys = document.search(namespace="key_mode")[0].data
    assert [(o.time, o.value) for o in keys] == [(k["start"], k["label"].replace(" ", ":")) for k in result["timeline"]["keys"]]
    beats = document.search(namespace="beat")[0].data
    assert [o.time for o in beats] == pytest.approx([b["time"] for b in result["timeline"]["beats"]])


def png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(str(path))


@pytest.mark.parametrize("minutes", [0.5, 20])
def test_plots_of_short_and_long_songs(pm, registry, write_pipeline, write_clicks, tmp_path, minutes):
    audio, _ = write_clicks(minutes * 60, period=0.5)
    pipeline = load_pipeline(write_pipeline(PIPELINE.replace("length: 20, overlap: 4", "length: 120, overlap: 10")), registry)
    run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, output_dir=tmp_path, formats=("json",))[0]
    result = tmp_path / "clicks.json"
    whole = tmp_path / "whole.png"
    zoomed = tmp_path / "zoom.png"
    for target, extra in ((whole, []), (zoomed, ["--start", "10", "--end", "20"])):
        done = subprocess.run([MIRFLOW, "plot", str(result), "-o", str(target), "--size", "1200x700", *extra],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    a, b = png_pixels(whole), png_pixels(zoomed)
    assert a.shape[:2] == (700, 1200) and b.shape[:2] == (700, 1200)
    assert a.std() > 0.05 and b.std() > 0.05  # not a blank picture
    assert np.abs(a - b).mean() > 0.01  # the range changed what is drawn


def test_plot_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = subprocess.run([MIRFLOW, "plot", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"mirflow: {bad}: not a mirflow result (JSON with 'source' and 'timeline')"
    size = subprocess.run([MIRFLOW, "plot", str(bad), "--size", "big"], capture_output=True, text=True)
    assert "expected WIDTHxHEIGHT" in size.stderr and size.returncode == 2


class BeatsText:
    """A plugin with two result formats: beat times as text, and one that always fails."""

    @mirflow.hookimpl
    def register_exporters(self, register):
        register("beatstxt", lambda result: [(".beats.txt", "".join(f"{b['time']:.3f}\n" for b in result["timeline"]["beats"]))])
        register("broken", lambda result: 1 / 0)


def test_a_plugin_adds_a_format_and_a_failing_exporter_costs_only_its_format(pm, write_pipeline, write_clicks, tmp_path):
    pm.register(BeatsText(), name="beats-text")
    registry = collect_analyzers(pm)
    assert {"json", "png", "beatstxt", "broken"} <= set(registry.exporters)
    audio, times = write_clicks(6.0, period=0.5)
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\ntimeline: {beats: clicks.clicks}\n"
                                            "output: {formats: [json, beatstxt, broken, csv]}\n"), registry)
    (outcome,), _ = run_pipeline(pipeline, registry, pm, [str(audio)], jobs=1, output_dir=tmp_path / "out")
    beats = [float(line) for line in (tmp_path / "out" / "clicks.beats.txt").read_text().split()]
    assert beats == pytest.approx(list(times), abs=1e-3)
    assert (tmp_path / "out" / "clicks.beats.csv").exists()
    result = json.loads((tmp_path / "out" / "clicks.json").read_text())
    assert result == outcome.result
    (error,) = result["errors"]
    assert error["stage"] == "export" and error["format"] == "broken" and "ZeroDivisionError" in error["message"]
    assert not outcome.ok and result["steps"]["clicks"]["status"] == "ok"


def test_a_format_no_plugin_registered_is_a_located_pipeline_error(registry, write_pipeline):
    from mirflow.pipeline import PipelineError

    with pytest.raises(PipelineError, match=r"pipe.yaml:2:\d+ output.formats\[1\].*'beatstxt'"):
        load_pipeline(write_pipeline("steps: [fake.clicks]\noutput: {formats: [json, beatstxt]}\n"), registry)


class AudioMeter:
    """A format that measures the sound: it asks for the run's decoded track by its signature."""

    @mirflow.hookimpl
    def register_exporters(self, register):
        def meter(result, audio=None):
            if audio is None:
                return [(".meter.txt", "none\n")]
            peak = float(np.abs(audio.samples).max())
            return [(".meter.txt", f"{audio.sample_rate} {audio.samples.shape[0]} {audio.channels} {peak:.7f}\n")]

        register("meter", meter)


def test_exporters_that_take_audio_get_the_runs_decoded_track_and_the_plot_decodes_nothing_again(
        pm, write_pipeline, write_clicks, tmp_path, monkeypatch):
    import mirflow.audio

    pm.register(AudioMeter(), name="meter")
    registry = collect_analyzers(pm)
    audio, _ = write_clicks(8.0, period=0.5)
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\ntimeline: {beats: clicks.clicks}\n"
                                            "output: {formats: [json, meter, png]}\n"), registry)

    def decode_again(path, *args, **kwargs):
        raise AssertionError(f"{path} was decoded a second time")

    monkeypatch.setattr(mirflow.audio, "decode", decode_again)  # the plot's fallback when it has no audio
    (outcome,), _ = run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, output_dir=tmp_path / "out")
    result = json.loads((tmp_path / "out" / "clicks.json").read_text())
    assert outcome.ok and result["errors"] == []
    rate, frames, channels, peak = (tmp_path / "out" / "clicks.meter.txt").read_text().split()
    samples, sample_rate = soundfile.read(audio, dtype="float32")
    assert (int(rate), int(frames), int(channels)) == (sample_rate, len(samples), 1)
    assert float(peak) == pytest.approx(float(np.abs(samples).max()), abs=1e-6)
    monkeypatch.undo()
    # The same picture as `mirflow plot`, which decodes the source: the waveform was drawn.
    done = subprocess.run([MIRFLOW, "plot", str(tmp_path / "out" / "clicks.json"), "-o", str(tmp_path / "again.png")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    drawn, again = png_pixels(tmp_path / "out" / "clicks.png"), png_pixels(tmp_path / "again.png")
    assert drawn.shape == again.shape and np.array_equal(drawn, again)
    # Without a run (the Python API's Result.save writes this way) it is asked without audio.
    from mirflow.results import write_outputs

    (tmp_path / "saved").mkdir()
    written, errors = write_outputs(result, tmp_path / "saved", "clicks", ("meter",), registry.exporters)
    assert errors == [] and (tmp_path / "saved" / "clicks.meter.txt").read_text() == "none\n"


def test_the_formats_beside_the_json_come_from_a_plugin_through_the_same_hook(tmp_path):
    """Only json is the core's; jams, lab, csv and png are the built-in plugin ``formats``,
    registered through register_exporters like a third party's: disable it and they are gone,
    and asking for one is a one-line error before any audio is read."""
    from mirflow.plugin_manager import make_plugin_manager

    everything = collect_analyzers(make_plugin_manager()).exporters
    assert {"json", "jams", "lab", "csv", "png", "mid"} <= set(everything)
    assert set(collect_analyzers(make_plugin_manager(disabled=("formats",))).exporters) == {"json", "mid"}
    audio = tmp_path / "song.wav"
    audio.write_bytes(b"")  # never read: the format is refused first
    done = subprocess.run([MIRFLOW, "--disable-plugin", "formats", "run", "fast", str(audio), "--format", "json,jams",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "jams" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_real_songs_every_format_reads_back_as_its_json_says(analyzed_song):
    """The shared default-pipeline analysis, written in every format: each file read by the
    reader its users have (mir_eval, jams, csv, matplotlib, mido) says what the JSON says."""
    import jams
    import mido

    result, out = analyzed_song.whole, analyzed_song.whole_dir
    timeline = result["timeline"]
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / "song.chords.lab"))
    assert labels == [c["label"] for c in timeline["chords"]]
    np.testing.assert_allclose(intervals, [[c["start"], c["end"]] for c in timeline["chords"]], atol=1e-6)
    document = jams.load(str(out / "song.jams"))  # validates against the JAMS schema
    (beats,) = document.search(namespace="beat")
    assert [o.value for o in beats.data] == [b["position"] for b in timeline["beats"]]
    with open(out / "song.beats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["time"]) for r in rows] == [b["time"] for b in timeline["beats"]]
    assert [float(r["time"]) for r in rows if r["downbeat"] == "1"] == timeline["downbeats"]
    picture = png_pixels(out / "song.png")
    assert picture.shape[:2] == (900, 1600) and picture.std() > 0.05
    midi = mido.MidiFile(str(out / "song.mid"))
    markers = [m.text for m in midi if m.type == "marker"]
    assert [s["label"] + " " + s["function"] for s in timeline["sections"]] == [m for m in markers if " " in m]
    assert sum(m.type == "set_tempo" for m in midi.tracks[0]) >= len(timeline["beats"]) - 1
