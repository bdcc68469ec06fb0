"""Faults a new user runs into (issue 33's probes): each test holds one promise of docs/faults.md."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mirflow.pipeline import PipelineError, load_pipeline
from mirflow.scheduler import run_pipeline

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
FORMATS = ("json", "jams", "lab", "csv")


def mirflow(*args, **kwargs):
    return subprocess.run([MIRFLOW, *map(str, args)], capture_output=True, text=True, **kwargs)


def run(pm, registry, pipeline_path, paths, out, **options):
    pipeline = load_pipeline(pipeline_path, registry)
    outcomes, _ = run_pipeline(pipeline, registry, pm, [str(p) for p in paths], output_dir=out, inline=True,
                               **options)
    return outcomes


# -- 1. --jobs has the YAML key's upper bound ------------------------------------------------
@pytest.mark.parametrize("command", [("run", "default", "song.wav"), ("serve",)])
def test_jobs_beyond_four_per_core_is_refused_like_the_yaml_key(command, tmp_path):
    most = 4 * (os.cpu_count() or 1)
    done = mirflow(*command, "--jobs", most + 1, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"mirflow: --jobs: must be at most {most}, got {most + 1} (4 per core on this "
                                   f"{os.cpu_count()}-core machine: each worker is a process holding its own models)")
    assert "serving" not in done.stderr


# -- 2. a file's outputs appear together or not at all; resume checks them all --------------
def test_a_full_disk_leaves_no_part_of_a_result_set_and_resume_then_recomputes(
        pm, registry, write_pipeline, write_clicks, tmp_path, monkeypatch):
    song, _ = write_clicks(4.0, name="song.wav")
    pipeline = write_pipeline("steps: [fake.clicks, fake.sections, fake.level]\n")
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def disk_fills(fd):  # the third file of the set finds the disk full
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_fills)
    [failed] = run(pm, registry, pipeline, [song], out, formats=FORMATS)
    assert not failed.ok and "No space left on device" in failed.error
    assert len(calls) == 3
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".claim")) == []  # no part, no temporary
    monkeypatch.setattr(os, "fsync", real_fsync)
    [again] = run(pm, registry, pipeline, [song], out, formats=FORMATS)
    assert again.ok and not again.skipped
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["song.chords.lab", "song.jams", "song.json", "song.level.envelope.csv"]


def test_resume_recomputes_a_result_missing_a_requested_format(pm, registry, write_pipeline, write_clicks, tmp_path):
    song, _ = write_clicks(4.0, name="song.wav")
    pipeline = write_pipeline("steps: [fake.clicks, fake.sections, fake.level]\n")
    out = tmp_path / "out"
    assert run(pm, registry, pipeline, [song], out, formats=("json",))[0].ok
    [wider] = run(pm, registry, pipeline, [song], out, formats=FORMATS)  # a run with more formats
    assert not wider.skipped and (out / "song.chords.lab").is_file() and (out / "song.jams").is_file()
    [same] = run(pm, registry, pipeline, [song], out, formats=FORMATS)
    assert same.skipped == "result is up to date"
    (out / "song.level.envelope.csv").unlink()  # one file of the set gone
    [redone] = run(pm, registry, pipeline, [song], out, formats=FORMATS)
    assert not redone.skipped and (out / "song.level.envelope.csv").is_file()


def test_a_failed_rename_removes_what_this_attempt_renamed(tmp_path, monkeypatch):
    from mirflow import io

    (tmp_path / "b.txt").write_text("old b")
    real_replace, renames = os.replace, []

    def second_fails(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(io.os, "replace", second_fails)
    with pytest.raises(OSError):
        io.write_together([(tmp_path / "a.txt", "a"), (tmp_path / "b.txt", b"b")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]  # a.txt removed, no temporaries
    assert (tmp_path / "b.txt").read_text() == "old b"


# -- 4. a step that takes its own output ---------------------------------------------------
def test_a_step_that_takes_its_own_output_is_told_so_at_its_line(write_pipeline, registry):
    pipeline = write_pipeline("""\
        steps:
          - fake.clicks
          - id: tempo
            analyzer: fake.sections
            inputs: {clicks: tempo}
        """)
    with pytest.raises(PipelineError) as caught:
        load_pipeline(pipeline, registry)
    assert str(caught.value) == ("pipe.yaml:5:22 steps[1].inputs.clicks: a step cannot take its own output "
                                 "('tempo' is this step's id)")


# -- 5. control characters in file names are escaped wherever a line names a file -----------
def test_a_file_name_with_a_newline_cannot_forge_a_line(tmp_path, write_clicks):
    good, _ = write_clicks(3.0, name="good\x1b[2J.wav")
    forged = tmp_path / "bad\nmirflow: fake.wav: all good.wav"
    forged.write_bytes(b"RIFF....WAVEfmt garbage")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps: [chords.cnn_crf]\n")
    done = mirflow("run", pipeline, good, forged, "-o", tmp_path / "out", "--jobs", 1)
    assert done.returncode == 1
    assert "\x1b" not in done.stdout + done.stderr
    assert not any(line.startswith("mirflow: fake.wav") for line in done.stderr.splitlines())
    assert f"mirflow: {tmp_path}/bad\\nmirflow: fake.wav: all good.wav: cannot decode audio" in done.stderr
    assert "bad\\nmirflow: fake.wav: all good.wav: failed, no result" in done.stdout
    assert "good\\x1b[2J.wav  (3.0 s" in done.stdout
    missing = mirflow("run", pipeline, tmp_path / "no\rsuch.wav")
    assert missing.returncode == 2 and missing.stderr == f"mirflow: {tmp_path}/no\\rsuch.wav: no such file or directory\n"


# -- 6. a truncated WAV is noted, not passed off as a short song ------------------------------
def test_a_wav_shorter_than_its_header_is_noted_in_the_result_and_the_summary(tmp_path, write_clicks):
    whole, _ = write_clicks(10.0, name="whole.wav")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:44 + int(3.3 * 22050) * 2])  # the header still declares 10 s
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps: [chords.cnn_crf]\n")
    done = mirflow("run", pipeline, cut, whole, "-o", tmp_path / "out", "--jobs", 1)
    assert done.returncode == 0, done.stderr
    note = "file shorter than its header: the header declares 10.0 s, the file holds 3.3 s"
    assert f"  note       {note}" in done.stdout
    assert json.loads((tmp_path / "out" / "cut.json").read_text())["source"]["notes"] == [note]
    assert json.loads((tmp_path / "out" / "whole.json").read_text())["source"]["notes"] == []
    assert done.stdout.count("note ") == 1


def test_a_wav_too_long_by_its_header_is_refused_before_it_is_hashed(
        pm, registry, write_pipeline, tmp_path, monkeypatch):
    import struct

    from mirflow.scheduler import runner

    rate, seconds = 1000, 10 * 3600
    size = rate * seconds * 2  # 10 h of 16-bit mono, a sparse file of zeros
    path = tmp_path / "long.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
                                                                                       rate * 2, 2, 16)
                     + b"data" + struct.pack("<I", size))
    os.truncate(path, 44 + size)
    hashed = []
    monkeypatch.setattr(runner, "file_sha256", lambda file: hashed.append(file) or "0" * 64)
    [outcome] = run(pm, registry, write_pipeline("steps: [fake.clicks]\n"), [path], tmp_path / "out")
    assert not outcome.ok and "its header declares 10.0 h of audio, longer than the 6.0 h allowed" in outcome.error
    assert hashed == []


# -- 3. mirflow evaluate checks every truth file before any audio -----------------------------
def test_evaluate_reports_every_malformed_truth_file_with_its_line_before_any_audio(tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "a.lab").write_text("0.0\t2.0\tC:maj\n3.0\t2.5\tG:maj\n4.0\tnan\tC:maj\n")
    (truth / "b.lab").write_text("0.0\t2.0\tC:maj\n2.0\t4.0\tH:mjr\n")
    (truth / "c.jams").write_text(json.dumps({"annotations": [{"namespace": "beat", "data": [
        {"time": 0.5, "duration": 0.0, "value": 1}, {"time": "x", "duration": 0.0, "value": 2}]}]}, indent=1))
    (truth / "d.lab").write_bytes(b"0.0\t2.0\tC:maj\n2.0\t4.0\tE\xe9:maj\n")
    songs = []
    for name in "abcd":  # not audio at all: a pipeline run first would fail on them (exit 1)
        (tmp_path / f"{name}.wav").write_bytes(b"RIFF....WAVEfmt garbage")
        songs.append(tmp_path / f"{name}.wav")
    done = mirflow("evaluate", "default", *songs, "--truth", truth)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"mirflow: {truth}/a.lab:2: an interval must start at 0 or later and end after it")
    assert lines[1] == f"{truth}/a.lab:3: expected finite start and end times, got 4.0 and nan"
    assert lines[2].startswith(f"{truth}/b.lab:2: not a chord label mir_eval reads")
    assert lines[3] == f"{truth}/c.jams:11: time must be a finite number of seconds, got 'x'"
    assert lines[4] == f"{truth}/d.lab:2: not UTF-8 text (byte 0xe9)"
    assert len(lines) == 5 and "Traceback" not in done.stderr and "cannot decode" not in done.stderr



def test_a_tempo_file_needs_only_its_first_tempo_finite(tmp_path):
    """madmom's .tempo/.bpm files write "tempo1 tempo2 weight", with nan where there is no
    second tempo (the Hainsworth excerpt does): only the first tempo must be a number."""
    from mirflow.references import READERS, ReferenceError

    two = tmp_path / "two.bpm"
    two.write_text("100.16\tnan\t1.00\n")
    assert READERS[".bpm"](two).tempo == 100.16
    none = tmp_path / "none.bpm"
    none.write_text("nan\t100.16\n")
    with pytest.raises(ReferenceError, match="none.bpm:1: expected finite numbers"):
        READERS[".bpm"](none)


# -- smaller things of issue 33 ----------------------------------------------------------------
def test_plot_and_sonify_on_a_result_with_wrong_types_are_one_line_errors(tmp_path, write_clicks):
    song, times = write_clicks(3.0, name="song.wav")
    nan = tmp_path / "nan.json"
    nan.write_text('{"source": {"duration": NaN, "path": "x"}, "timeline": {}, "summary": {}}')
    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"source": {"duration": 3.0, "path": 5}, "timeline": {"beats": "abc"}, "summary": {}}))
    for args in (("plot", nan), ("plot", typed), ("sonify", typed)):
        done = mirflow(*args)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith(f"mirflow: {args[1]}: not a") and "Traceback" not in done.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"source": {"duration": 3.0, "path": str(song)},
                                "timeline": {"beats": [{"time": t} for t in times]}, "summary": {}}))
    done = mirflow("sonify", good, "--start", "nan")
    assert done.returncode == 2 and done.stderr == "mirflow: --start: expected a finite number of seconds, got nan\n"
    done = mirflow("sonify", good, "-o", tmp_path / "heard.wav")
    assert done.returncode == 0, done.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "heard.wav").stat().st_mode & 0o777 == 0o666 & ~umask


def test_analyze_on_a_folder_analyzes_its_audio_like_run(tmp_path, write_clicks):
    import mirflow

    (tmp_path / "songs" / "more").mkdir(parents=True)
    for name in ("songs/a.wav", "songs/more/b.wav"):
        soundfile.write(tmp_path / name, np.zeros(22050, dtype=np.float32), 22050)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps: [chords.cnn_crf]\n")
    results = mirflow.analyze(tmp_path / "songs", pipeline, jobs=1)
    assert [Path(r.path).name for r in results] == ["a.wav", "b.wav"] and all(r.ok for r in results)
    (tmp_path / "empty").mkdir()
    with pytest.raises(mirflow.AnalysisError, match="empty: the folder holds no audio files"):
        mirflow.analyze(tmp_path / "empty", pipeline, jobs=1)


def test_an_output_folder_that_cannot_be_made_stops_the_run_before_any_worker(tmp_path, write_clicks):
    song, _ = write_clicks(3.0, name="song.wav")
    (tmp_path / "file").write_text("not a folder")
    done = mirflow("run", "default", song, "-o", tmp_path / "file" / "sub", "--jobs", 2)
    assert done.returncode == 2
    assert done.stderr == f"mirflow: {tmp_path}/file/sub: cannot write results there (Not a directory)\n"


def test_ctrl_c_while_ray_shuts_down_at_exit_exits_130_without_a_traceback(tmp_path):
    """The hook mirflow registers after ray.init, run with a stand-in whose shutdown is where
    the Ctrl-C lands (a real cluster's shutdown takes seconds; the signal timing is the point)."""
    script = tmp_path / "exit.py"
    script.write_text(
        "import atexit, os, signal, time\n"
        "from mirflow.scheduler.ray_cluster import shutdown_at_exit\n"
        "class Ray:\n"
        "    def shutdown(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(5)\n"
        "atexit.register(shutdown_at_exit, Ray())\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert done.stderr == "mirflow: interrupted\n"
