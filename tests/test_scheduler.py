"""The scheduler with real worker processes: lanes, batching, faults, bounded memory, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

import mirflow
from mirflow.pipeline import load_pipeline
from mirflow.scheduler import run_pipeline
from mirflow.synth import make_song

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


class Recorder:
    """Collects progress events (they arrive here from every worker process)."""

    def __init__(self):
        self.events = []

    @mirflow.hookimpl
    def progress(self, event):
        self.events.append(event)

    def of(self, kind, **match):
        return [e for e in self.events if e.kind == kind and all(getattr(e, k) == v for k, v in match.items())]


@pytest.fixture
def recorder(pm):
    recorder = Recorder()
    pm.register(recorder)
    return recorder


def clicks_files(write_clicks, count, duration, prefix="f"):
    return [write_clicks(duration, name=f"{prefix}{n:02d}.wav")[0] for n in range(count)]


def run(pm, registry, pipeline_path, paths, out, **options):
    pipeline = load_pipeline(pipeline_path, registry)
    outcomes, scheduler = run_pipeline(pipeline, registry, pm, [str(p) for p in paths], output_dir=out, **options)
    results = [json.loads(Path(o.written[0]).read_text()) if o.written and not o.skipped else None for o in outcomes]
    return outcomes, results, scheduler


def test_gpu_batches_gather_chunks_across_files_in_one_long_lived_process(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    files = clicks_files(write_clicks, 6, 12.0)  # 30 s clips would do the same: one chunk each
    pipeline = write_pipeline("chunking: off\nresources: {gpu: {batch_size: 4}}\nsteps: [fake.gpu]\n")
    outcomes, results, _ = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert all(o.ok for o in outcomes)
    batches = [e for e in recorder.of("unit_started", lane="gpu")]
    assert [e.data["batch_size"] for e in batches] == [4, 2]
    assert len(batches[0].data["files"]) == 4  # one batch, four files
    assert {r["summary"]["loads"]["value"] for r in results} == {1.0}  # the model was set up once ...
    assert len({r["summary"]["pid"]["value"] for r in results}) == 1  # ... in one GPU-lane process
    assert all(r["steps"]["gpu"]["device"] == "cpu" for r in results)


def test_cpu_and_gpu_lanes_work_at_the_same_time(pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    files = clicks_files(write_clicks, 4, 12.0)
    pipeline = write_pipeline("chunking: off\nresources: {gpu: {batch_size: 1}}\nsteps:\n"
                              "  - {analyzer: fake.gpu, params: {sleep: 0.4}}\n"
                              "  - {analyzer: fake.slow, params: {sleep: 0.4}}\n")
    outcomes, _, scheduler = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert all(o.ok for o in outcomes)

    def intervals(lane, kind):
        started = {(e.file, e.step, e.chunk, e.data.get("batch_size")): e.time
                   for e in recorder.of("unit_started", lane=lane) if e.data["kind"] == kind}
        return [(e.time - e.seconds, e.time) for e in recorder.of("unit_finished", lane=lane) if e.data["kind"] == kind] \
            if started else []

    gpu = intervals("gpu", "batch")
    cpu = intervals("cpu", "analyze")
    overlap = sum(max(0.0, min(a_end, b_end) - max(a_start, b_start)) for a_start, a_end in gpu for b_start, b_end in cpu)
    assert len(gpu) == 4 and len(cpu) == 4
    assert overlap > 0.4, f"lanes overlapped only {overlap:.2f} s"
    assert scheduler.busy["gpu"] >= 1.6 and scheduler.busy["cpu"] >= 1.6


def test_a_steps_record_gives_its_units_wall_and_cpu_seconds(pm, registry, write_pipeline, write_clicks, tmp_path):
    """``seconds`` is the wall time of a step's units, ``cpu_seconds`` the CPU time the worker
    spent on them: a step that waits has the one without the other (the benchmarks report
    both, so that a step slowed by a busy machine is told from one that computes more)."""
    files = clicks_files(write_clicks, 2, 12.0)
    pipeline = write_pipeline("chunking: off\nsteps:\n"
                              "  - {analyzer: fake.slow, id: waits, params: {sleep: 0.6}}\n"
                              "  - {analyzer: fake.slow, id: computes, params: {sleep: 0, spin: 0.6}}\n")
    outcomes, results, _ = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert all(o.ok for o in outcomes)
    for result in results:
        waits, computes = result["steps"]["waits"], result["steps"]["computes"]
        assert waits["seconds"] >= 0.6 and waits["cpu_seconds"] < 0.3
        assert computes["cpu_seconds"] >= 0.6 and computes["seconds"] >= 0.6


def test_workers_warm_the_steps_up_while_the_first_file_decodes(pm, registry, write_pipeline, write_clicks, tmp_path,
                                                                monkeypatch):
    """Each worker calls every step's ``Analyzer.warm`` once, in its own process, as soon as it
    has started; a ``warm`` that raises changes nothing (the step still runs)."""
    files = clicks_files(write_clicks, 4, 12.0)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MIRFLOW_TEST_WARM", str(marks))
    pipeline = write_pipeline("chunking: off\nsteps: [fake.warmed, fake.warm_fails, fake.slow]\n")
    outcomes, results, _ = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert all(o.ok for o in outcomes)
    workers = {int(r["summary"][f"{step}.pid"]["value"]) for r in results for step in ("warmed", "warm_fails")}
    warmed = {int(mark.name.split("-")[1]) for mark in marks.iterdir()}
    assert os.getpid() not in warmed and len(warmed) == 2  # each of the two workers, not the coordinator
    assert workers <= warmed
    assert all(r["steps"]["warm_fails"]["status"] == "ok" for r in results)


def test_a_units_set_up_waits_for_the_warm_up_so_their_imports_cannot_deadlock(
        pm, registry, write_pipeline, write_clicks, tmp_path, monkeypatch):
    """The warm-up imports one module of a cycle, the set-up the other: run at once, one of
    them fails with Python's ``_DeadlockError`` ("deadlock detected by _ModuleLock"), as the
    downbeat step's set-up once did beside its warm-up (CI, 3 December 2026)."""
    cycle = tmp_path / "cycle"
    cycle.mkdir()
    # importlib, not an import statement, for the way back: the statement accepts a module
    # another thread is still initializing, importlib waits for its lock (and finds the cycle).
    (cycle / "cycle_first.py").write_text("import time\ntime.sleep(1.5)\nimport cycle_second\n")
    (cycle / "cycle_second.py").write_text("import importlib, time\ntime.sleep(1.5)\n"
                                           "importlib.import_module('cycle_first')\n")
    monkeypatch.setenv("MIRFLOW_TEST_CYCLE", str(cycle))
    pipeline = write_pipeline("chunking: off\nsteps: [fake.warm_cycle]\n")
    outcomes, results, _ = run(pm, registry, pipeline, clicks_files(write_clicks, 2, 2.0), tmp_path / "out", jobs=2)
    assert [r["errors"] for r in results] == [[], []]
    assert all(o.ok for o in outcomes) and all(r["summary"]["imported"]["value"] == 1.0 for r in results)


def test_gpu_out_of_memory_halves_the_batch(pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    import fakes

    fakes.GpuCounter.batches = []
    files = clicks_files(write_clicks, 4, 5.0)
    pipeline = write_pipeline("chunking: off\nresources: {gpu: {batch_size: 4}}\n"
                              "steps: [{analyzer: fake.gpu, params: {max_batch: 1}}]\n")
    outcomes, results, _ = run(pm, registry, pipeline, files, tmp_path / "out", inline=True)
    assert all(o.ok for o in outcomes), results[0]["errors"]
    assert [r["summary"]["peak"]["value"] for r in results] == pytest.approx([0.9] * 4, abs=1e-4)
    assert fakes.GpuCounter.batches == [1, 1, 1, 1]  # 4 -> 2 + 2 -> 1 + 1 + 1 + 1


def test_a_crashing_worker_is_replaced_and_only_its_file_and_step_fail(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    files = [write_clicks(4.0, name="a.wav")[0], write_clicks(4.0, name="crash.wav")[0], write_clicks(4.0, name="b.wav")[0]]
    pipeline = write_pipeline("steps: [{analyzer: fake.slow, params: {sleep: 0.05}}, fake.clicks]\n")
    outcomes, results, scheduler = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert [o.ok for o in outcomes] == [True, False, True]
    crashed = results[1]
    assert crashed["steps"]["slow"]["status"] == "failed"
    assert "worker process died (signal 9)" in crashed["steps"]["slow"]["error"]["message"]
    assert crashed["steps"]["clicks"]["status"] == "ok"  # the other analyzer on that file went on
    assert scheduler.executor.replaced == 2  # tried twice, a fresh worker each time
    assert len(recorder.of("unit_started", file=str(files[1]), step="slow")) == 2


def test_device_gpu_without_a_gpu_fails_clearly_in_the_gpu_lane(pm, registry, write_pipeline, write_clicks, tmp_path):
    files = clicks_files(write_clicks, 1, 3.0)
    outcomes, (result,), _ = run(pm, registry, write_pipeline("steps: [fake.gpu]\n"), files, tmp_path / "o",
                                 jobs=1, device="gpu")
    assert not outcomes[0].ok
    assert result["steps"]["gpu"]["error"]["message"] == "fake.gpu: setup failed: no GPU is visible to this fake backend"


@pytest.mark.parametrize("device, problem, half, asked", [
    ("auto", None, "analyze_batch", "auto"),  # a usable GPU: the GPU lane
    ("auto", "no driver", "analyze", "cpu"),  # none: the CPU lane, set up for the CPU
    ("cpu", None, "analyze", "cpu"),  # the run says CPU: the CPU lane even where a GPU is usable
    ("gpu", "no driver", "analyze_batch", "gpu"),  # the run says GPU: the GPU lane, whose setup must say why not
])
def test_an_auto_analyzer_runs_in_the_lane_the_device_and_machine_choose(
        monkeypatch, pm, registry, recorder, write_pipeline, write_clicks, tmp_path, device, problem, half, asked):
    from fakes import EitherLane

    monkeypatch.setattr(EitherLane, "problem", problem)
    files = clicks_files(write_clicks, 1, 3.0)
    pipeline = write_pipeline("steps: [fake.either]\n")
    outcomes, (result,), _ = run(pm, registry, pipeline, files, tmp_path / "o", inline=True, device=device)
    assert outcomes[0].ok
    outputs = result["steps"]["either"]["outputs"]
    assert (outputs["half"]["label"], outputs["asked"]["label"]) == (half, asked)
    lanes = {e.lane for e in recorder.of("unit_started") if e.step == "either"}
    assert lanes == ({"gpu", "cpu"} if half == "analyze_batch" else {"cpu"})  # prepare and merge stay on the CPU


def test_only_a_few_files_are_decoded_at_once(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path, private_tmp):
    files = clicks_files(write_clicks, 10, 3.0)
    pipeline = write_pipeline("resources: {files_in_flight: 2}\nsteps: [fake.clicks]\n")
    outcomes, _, _ = run(pm, registry, pipeline, files, tmp_path / "out", jobs=2)
    assert all(o.ok for o in outcomes)
    held, most = 0, 0
    for event in recorder.events:
        if event.kind == "file_decoded":
            held += 1
            most = max(most, held)
        elif event.kind in ("file_finished", "file_failed"):
            held -= 1
    assert most == 2  # bounded, and actually used in parallel
    assert not list(private_tmp.glob("mirflow-audio-*"))  # decoded audio removed


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary folder of the test's own (for this process and the ones it starts), so
    that what other runs on the machine leave in /tmp cannot fail it, nor it them."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_killed_runs_decoded_audio_is_removed_by_the_next_run(
        pm, registry, write_pipeline, write_clicks, tmp_path, private_tmp):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = private_tmp / f"mirflow-audio-{dead.stdout.strip()}-abc123"
    left.mkdir()
    (left / "song.npy").write_bytes(b"0" * 1000)
    alive = private_tmp / f"mirflow-audio-{os.getpid()}-xyz789"  # a run in this very process: kept
    alive.mkdir()
    other = private_tmp / "mirflow-audio-notours"  # not named the way we name ours: kept
    other.mkdir()
    files = clicks_files(write_clicks, 1, 3.0)
    outcomes, _, _ = run(pm, registry, write_pipeline("steps: [fake.clicks]\n"), files, tmp_path / "out", jobs=1)
    assert all(o.ok for o in outcomes)
    assert sorted(p.name for p in private_tmp.glob("mirflow-audio-*")) == sorted([alive.name, other.name])


def test_resume_skips_up_to_date_results_and_force_recomputes(pm, registry, write_pipeline, write_clicks, tmp_path):
    files = clicks_files(write_clicks, 3, 3.0)
    pipeline = write_pipeline("steps: [fake.clicks]\n")
    first, _, _ = run(pm, registry, pipeline, files, tmp_path / "out", inline=True)
    assert [o.skipped for o in first] == [None, None, None]
    soundfile.write(files[1], soundfile.read(files[1])[0] * 0.5, 22050)  # new content: recompute that one
    second, _, _ = run(pm, registry, pipeline, files, tmp_path / "out", inline=True)
    assert [o.skipped for o in second] == ["result is up to date", None, "result is up to date"]
    changed = write_pipeline("steps: [{analyzer: fake.clicks, params: {threshold: 0.2}}]\n", "changed.yaml")
    third, _, _ = run(pm, registry, changed, files, tmp_path / "out", inline=True)
    assert [o.skipped for o in third] == [None, None, None]  # another pipeline hash
    forced, _, _ = run(pm, registry, changed, files, tmp_path / "out", inline=True, force=True)
    assert [o.skipped for o in forced] == [None, None, None]


def test_a_file_claimed_by_a_live_process_is_left_to_it(pm, registry, write_pipeline, write_clicks, tmp_path):
    files = clicks_files(write_clicks, 2, 3.0)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".f00.claim").write_text(f"{os.uname().nodename} {holder.pid}\n")
        (out / ".f01.claim").write_text(f"{os.uname().nodename} 999999\n")  # stale: no such process
        outcomes, _, _ = run(pm, registry, write_pipeline("steps: [fake.clicks]\n"), files, out, inline=True)
    finally:
        holder.kill()
    assert [o.skipped for o in outcomes] == ["claimed by another mirflow run", None]
    assert not (out / "f00.json").exists() and (out / "f01.json").exists()
    assert not (out / ".f01.claim").exists()


@pytest.mark.parametrize("stop, code, said", [(signal.SIGINT, 130, "interrupted"),
                                              (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_leave_only_complete_result_files(tmp_path, private_tmp, stop, code, said):
    """Ctrl-C, and SIGTERM as kill, timeout and service managers send it."""
    folder = tmp_path / "songs"
    folder.mkdir()
    song = make_song(["C:maj", "G:maj", "A:min", "F:maj"], bpm=120, duration=20.0)
    for n in range(8):
        soundfile.write(folder / f"song{n}.wav", song.samples, song.sample_rate)
    out = tmp_path / "out"
    process = subprocess.Popen([MIRFLOW, "run", "default", str(folder), "-o", str(out), "--jobs", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*.json")):
        time.sleep(0.1)
    assert list(out.glob("*.json")), "no result was written before the deadline"
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert said in stderr
    results = list(out.glob("*.json"))
    assert 1 <= len(results) < 8
    # Each file's lines were printed when it finished, so the interrupted run shows them (a result
    # that a worker's export unit wrote just before the stop can be there without its line).
    printed = {line.split()[0] for line in stdout.splitlines() if line.startswith("song")}
    assert printed and printed <= {f"{p.stem}.wav" for p in results}
    for path in results:
        result = json.loads(path.read_text())  # complete, parseable
        assert result["timeline"]["chords"], result["errors"]
    leftovers = [p.name for p in out.iterdir() if p.suffix in (".tmp", ".claim") or p.name.startswith(".")]
    assert leftovers == []
    time.sleep(0.5)
    assert not list(private_tmp.glob("mirflow-audio-*"))


def test_an_at_merge_input_lets_chunks_run_before_the_step_that_gives_it(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    path, clicks = write_clicks(50.0)
    pipeline = write_pipeline("chunking: {min_duration: 20, length: 20, overlap: 5}\n"
                              "steps: [fake.clicks, fake.count_at_merge]\n")
    outcomes, (result,), _ = run(pm, registry, pipeline, [path], tmp_path / "out", inline=True)
    assert outcomes[0].ok
    assert result["summary"]["counted"]["value"] == len(clicks)
    started = [(e.data["kind"], e.step) for e in recorder.of("unit_started")]
    clicks_merged = started.index(("aggregate", "clicks"))
    counting_chunks = [n for n, s in enumerate(started) if s == ("analyze", "count_at_merge")]
    assert len(counting_chunks) == 3 and max(counting_chunks) < clicks_merged  # did not wait for clicks
    assert started.index(("aggregate", "count_at_merge")) > clicks_merged  # the merge did


def test_a_files_merge_runs_before_the_remaining_chunks_of_other_steps(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    """A merge is serial and the file's later steps wait for it: queued behind the other
    steps' chunks it would run last, alone. One worker, so the order is the queue's."""
    path, _ = write_clicks(50.0)
    pipeline = write_pipeline("chunking: {min_duration: 20, length: 20, overlap: 5}\n"
                              "steps: [fake.clicks, fake.slow]\n")
    outcomes, (result,), _ = run(pm, registry, pipeline, [path], tmp_path / "out", jobs=1)
    assert outcomes[0].ok and result["steps"]["slow"]["status"] == "ok"
    started = [(e.data["kind"], e.step) for e in recorder.of("unit_started")]
    slow_chunks = [n for n, s in enumerate(started) if s == ("analyze", "slow")]
    assert len(slow_chunks) == 3
    # The worker may have taken the first slow chunk while the last clicks chunk came back.
    assert started.index(("aggregate", "clicks")) < slow_chunks[1]


def test_an_absent_optional_at_merge_input_is_given_as_none(pm, registry, write_pipeline, write_clicks, tmp_path):
    path, _ = write_clicks(10.0)
    pipeline = write_pipeline("steps: [fake.count_at_merge]\n")
    outcomes, (result,), _ = run(pm, registry, pipeline, [path], tmp_path / "out", inline=True)
    assert result["steps"]["count_at_merge"]["status"] == "ok"
    assert result["summary"]["counted"]["value"] is None


def serving(pipeline, registry, pm, out, **options):
    """A one-worker scheduler serving an inbox in a thread (as the server runs one): the inbox,
    the list its outcomes go to, and the thread; ``options`` go to build_scheduler."""
    import queue
    import threading

    from mirflow.scheduler import build_scheduler

    scheduler = build_scheduler(pipeline, registry, pm, jobs=1, output_dir=out, **options)
    inbox, outcomes = queue.Queue(), []
    thread = threading.Thread(target=scheduler.serve, args=(inbox, outcomes.append))
    thread.start()
    return scheduler, inbox, outcomes, thread


def test_serve_takes_files_as_they_arrive_and_a_cancelled_file_stops_and_writes_nothing(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    from mirflow.scheduler.coordinator import FileJob

    slow, _ = write_clicks(60.0, name="slow.wav")
    quick, clicks = write_clicks(30.0, name="quick.wav")
    pipeline = load_pipeline(write_pipeline(
        "chunking: {min_duration: 5, length: 5, overlap: 1}\n"
        "steps:\n  - {analyzer: fake.slow, params: {sleep: 0.3}}\n  - fake.clicks\n"), registry)
    scheduler, inbox, outcomes, thread = serving(pipeline, registry, pm, tmp_path / "out")
    inbox.put(FileJob(str(slow), "slow"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not recorder.of("unit_finished", file=str(slow), step="slow"):
        time.sleep(0.05)
    scheduler.cancel(str(slow))
    inbox.put(FileJob(str(quick), "quick"))  # arrives while the scheduler is busy
    inbox.put(None)
    thread.join(60)
    assert not thread.is_alive()
    by_path = {o.path: o for o in outcomes}
    assert not by_path[str(slow)].ok and "cancelled" in by_path[str(slow)].error
    assert by_path[str(quick)].ok
    assert recorder.of("file_cancelled", file=str(slow))
    assert not (tmp_path / "out" / "slow.json").exists() and (tmp_path / "out" / "quick.json").exists()
    ran = len(recorder.of("unit_started", file=str(slow), step="slow"))
    assert ran < 15 / 2  # 15 chunks planned: the queued ones were dropped
    # What each chunk found arrives as it is found, in track time, inside the chunk's core.
    previews = recorder.of("chunk_result", file=str(quick), step="clicks")
    assert len(previews) == len(json.loads((tmp_path / "out" / "quick.json").read_text())["chunks"])
    found = sorted(c["time"] for p in previews for c in p.data["outputs"]["clicks"])
    assert np.allclose(found, clicks, atol=1e-3)  # every click exactly once across the seams
    merged = recorder.of("step_finished", file=str(quick), step="clicks")
    assert len(merged) == 1 and len(merged[0].data["outputs"]["clicks"]) == len(clicks)


def test_a_script_without_a_main_guard_stops_with_a_clear_error_instead_of_respawning_workers(tmp_path):
    """Spawned workers import the calling script; without the guard each one runs it again and
    dies while starting. After a few such deaths in a row the run stops and says why."""
    song = make_song(["C:maj"], bpm=120, duration=5.0)
    soundfile.write(tmp_path / "a.wav", song.samples, song.sample_rate)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from mirflow.cli.common import bundled_pipelines\n"
        "from mirflow.pipeline import load_pipeline\n"
        "from mirflow.plugin_manager import collect_analyzers, make_plugin_manager\n"
        "from mirflow.scheduler import run_pipeline\n"
        "pm = make_plugin_manager()\n"
        "registry = collect_analyzers(pm)\n"
        "pipeline = load_pipeline(bundled_pipelines()['fast'], registry)\n"
        f"run_pipeline(pipeline, registry, pm, [{str(tmp_path / 'a.wav')!r}], jobs=2, output_dir={str(tmp_path / 'out')!r})\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    assert "worker processes die while starting (3 in a row" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize("jobs", [2, 1])
def test_a_hanging_analyzer_is_stopped_after_unit_timeout_and_only_its_step_fails(
        pm, registry, write_pipeline, write_clicks, tmp_path, jobs):
    files = [write_clicks(3.0, name="hang.wav")[0], write_clicks(3.0, name="fine.wav")[0]]
    pipeline = write_pipeline("resources: {unit_timeout: 2}\nsteps: [fake.clicks, fake.slow]\n")
    began = time.monotonic()
    outcomes, (hang, fine), _ = run(pm, registry, pipeline, files, tmp_path / "out", jobs=jobs, inline=jobs == 1)
    assert time.monotonic() - began < 60
    assert hang["steps"]["slow"]["status"] == "failed"
    assert "timed out after 2 s (resources.unit_timeout)" in hang["steps"]["slow"]["error"]["message"]
    assert hang["steps"]["clicks"]["status"] == "ok" and fine["steps"]["slow"]["status"] == "ok"
    assert [o.ok for o in outcomes] == [False, True]


def test_cancelling_a_file_stops_its_decode_and_removes_what_it_wrote(
        pm, registry, recorder, write_pipeline, tmp_path, private_tmp):
    from mirflow.scheduler.coordinator import FileJob

    long = tmp_path / "twelve-hours.flac"  # 1 MB of silence that decodes to GBs at 22.05 kHz
    with soundfile.SoundFile(long, "w", 8000, 1, format="FLAC") as handle:
        for _ in range(72):
            handle.write(np.zeros(8000 * 600, dtype=np.float32))
    pipeline = load_pipeline(write_pipeline("resources: {max_duration: 86400}\nsteps: [fake.clicks]\n"), registry)
    scheduler, inbox, outcomes, thread = serving(pipeline, registry, pm, tmp_path / "out")
    inbox.put(FileJob(str(long), "long"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(private_tmp.glob("mirflow-audio-*/*.f32")):
        time.sleep(0.05)
    assert list(private_tmp.glob("mirflow-audio-*/*.f32")), "the decode did not start"
    time.sleep(1.0)
    cancelled = time.monotonic()
    scheduler.cancel(str(long))
    while time.monotonic() < cancelled + 20 and not outcomes:
        time.sleep(0.05)
    assert outcomes and "cancelled" in outcomes[0].error
    assert time.monotonic() - cancelled < 10  # the whole decode takes about 30 s here
    assert not list(private_tmp.glob("mirflow-audio-*/*.f32"))
    inbox.put(None)
    thread.join(30)
    assert not thread.is_alive()


def test_a_decode_past_its_timeout_fails_its_file_alone_and_leaves_nothing(
        pm, registry, write_pipeline, write_clicks, tmp_path, private_tmp):
    """Decodes run in threads of the coordinator (not in a worker that could be killed): one
    past ``unit_timeout`` is told to stop, its file fails, and the next file is decoded."""
    long = tmp_path / "twelve-hours.flac"  # 1 MB of silence that decodes to GBs at 22.05 kHz
    with soundfile.SoundFile(long, "w", 8000, 1, format="FLAC") as handle:
        for _ in range(72):
            handle.write(np.zeros(8000 * 600, dtype=np.float32))
    fine, _ = write_clicks(3.0, name="fine.wav")
    pipeline = write_pipeline("resources: {max_duration: 86400, unit_timeout: 2}\nsteps: [fake.clicks]\n")
    began = time.monotonic()
    outcomes, (_, result), _ = run(pm, registry, pipeline, [long, fine], tmp_path / "out", jobs=2)
    assert time.monotonic() - began < 20  # the whole decode takes about 30 s here
    assert not outcomes[0].ok and outcomes[0].error.endswith("timed out after 2 s (resources.unit_timeout); its decode was stopped")
    assert outcomes[1].ok and result["steps"]["clicks"]["status"] == "ok"
    assert not list(private_tmp.glob("mirflow-audio-*"))


def test_workers_run_the_pipeline_object_they_are_given_not_its_file(pm, registry, write_pipeline, write_clicks,
                                                                     tmp_path):
    """A pipeline changed in Python (or whose file changed or went during the run) runs as the
    coordinator has it: workers are sent the validated object, never the YAML path."""
    import dataclasses

    path, clicks = write_clicks(4.0)
    yaml_file = write_pipeline("steps: [{analyzer: fake.clicks, params: {threshold: 0.5}}]\n")
    pipeline = load_pipeline(yaml_file, registry)
    pipeline.steps = [dataclasses.replace(pipeline.steps[0], params={"threshold": 0.95})]  # above every click
    yaml_file.unlink()
    outcomes, _ = run_pipeline(pipeline, registry, pm, [str(path)], output_dir=tmp_path / "out", jobs=2)
    result = json.loads(Path(outcomes[0].written[0]).read_text())
    assert outcomes[0].ok and len(clicks) > 0
    assert result["steps"]["clicks"]["params"] == {"threshold": 0.95}
    assert result["steps"]["clicks"]["outputs"]["clicks"] == []


def test_an_idle_scheduler_stops_its_workers_and_starts_them_again_for_the_next_file(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path):
    """What an idle server does (``--idle-workers-timeout``): no worker processes hold memory
    while nothing comes, and the next file gets fresh ones."""
    from mirflow.scheduler.coordinator import FileJob

    first, _ = write_clicks(3.0, name="first.wav")
    second, clicks = write_clicks(3.0, name="second.wav")
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\n"), registry)
    scheduler, inbox, outcomes, thread = serving(pipeline, registry, pm, tmp_path / "out", idle_timeout=1.0)

    def until(condition, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            time.sleep(0.05)
        return condition()

    inbox.put(FileJob(str(first), "first"))
    assert until(lambda: len(outcomes) == 1)
    workers = {e.data["pid"] for e in recorder.of("unit_started") if e.data["kind"] != "decode"}
    assert {e.data["pid"] for e in recorder.of("unit_started") if e.data["kind"] == "decode"} == {os.getpid()}
    assert workers and os.getpid() not in workers  # files decode in the coordinator, the rest in workers
    assert until(lambda: recorder.of("workers_stopped"), 20)
    assert recorder.of("workers_stopped")[0].data["idle_seconds"] >= 1.0
    assert until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10)  # their memory is back
    inbox.put(FileJob(str(second), "second"))
    assert until(lambda: len(outcomes) == 2)
    inbox.put(None)
    thread.join(60)
    assert all(o.ok for o in outcomes)
    later = {e.data["pid"] for e in recorder.of("unit_started", file=str(second)) if e.data["kind"] != "decode"}
    assert later and not later & workers  # fresh workers for the second file
    assert len(recorder.of("workers_started")) == 2
    result = json.loads((tmp_path / "out" / "second.json").read_text())
    assert len(result["steps"]["clicks"]["outputs"]["clicks"]) == len(clicks)


@pytest.mark.parametrize("jobs", [1, 2])
def test_folds_run_once_per_chunk_in_chunk_order_after_its_neighbours_and_before_the_merge(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path, jobs):
    """A folding analyzer (fake.folding) on 50 s in 20 s chunks (5 s overlap: 3 chunks) and
    on a one-chunk file: inline (jobs 1) and in worker processes (jobs 2)."""
    long, _ = write_clicks(50.0, name="long.wav")
    short, _ = write_clicks(10.0, name="short.wav")
    pipeline = write_pipeline("chunking: {min_duration: 20, length: 20, overlap: 5}\nsteps: [fake.folding]\n")
    outcomes, (result, single), _ = run(pm, registry, pipeline, [long, short], tmp_path / "out", jobs=jobs,
                                        inline=jobs == 1)
    assert [o.ok for o in outcomes] == [True, True]
    # Each fold got its chunk and its neighbours, carried what the fold before it returned,
    # and the merge got every fold's block in chunk order.
    assert result["summary"]["folds"]["label"] == "0:0+1 1:0+1+2 2:1+2 | 0,1,2"
    assert single["summary"]["folds"]["label"] == "none"  # one chunk: nothing to fold ahead of the merge
    events = [e for e in recorder.events if e.file == str(long) and e.kind in ("unit_started", "unit_finished")]
    started = [(e.data["kind"], e.chunk) for e in events if e.kind == "unit_started"]
    folds = [chunk for kind, chunk in started if kind == "fold"]
    assert folds == [0, 1, 2]
    assert max(started.index(("fold", n)) for n in folds) < started.index(("aggregate", None))
    finished = [(e.data["kind"], e.chunk) for e in events if e.kind == "unit_finished"]
    order = [(e.kind, e.data["kind"], e.chunk) for e in events]
    for n in folds:  # after its chunk, the next chunk and the fold before it came back
        needed = [("unit_finished", "analyze", c) for c in (n, n + 1) if ("analyze", c) in finished]
        needed += [("unit_finished", "fold", n - 1)] if n else []
        assert all(order.index(need) < order.index(("unit_started", "fold", n)) for need in needed)
    assert not [e for e in recorder.events if e.file == str(short) and e.data.get("kind") == "fold"]


@pytest.mark.parametrize("params, note", [({"fail_at": 1}, "the fold of chunk 1 failed"), ({"decline_at": 1}, None),
                                          ({"junk_at": 1}, "expected mirflow.Fold or None")])
def test_a_fold_that_fails_or_declines_leaves_the_merge_its_whole_work(
        pm, registry, recorder, write_pipeline, write_clicks, tmp_path, params, note):
    path, _ = write_clicks(50.0)
    pipeline = write_pipeline("chunking: {min_duration: 20, length: 20, overlap: 5}\n"
                              f"steps: [{{analyzer: fake.folding, params: {json.dumps(params)}}}]\n")
    outcomes, (result,), _ = run(pm, registry, pipeline, [path], tmp_path / "out", inline=True)
    assert outcomes[0].ok and result["steps"]["folding"]["status"] == "ok"
    assert result["summary"]["folds"]["label"] == "none" and result["summary"]["chunks"]["value"] == 3
    assert [e.chunk for e in recorder.of("unit_started") if e.data["kind"] == "fold"] == [0, 1]  # none after it
    notes = result["steps"]["folding"]["notes"]
    assert any(note in n for n in notes) if note else notes == []
