"""The Ray executor on real Ray: a two-node cluster on this machine (two raylets, one CPU
slot each) started once for the module, and a local instance started by the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import ExecutorUnavailable, run_pipeline
from mirflow.synth import make_song

from test_scheduler import Recorder, serving

ray = pytest.importorskip("ray", reason="the ray extra is part of mirflow[test]: pip install -e '.[test]'")
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
RATE = 44100

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes with one CPU slot each, this process connected as the driver."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """A chunked 3-minute song and three short ones, as FLAC."""
    folder = tmp_path_factory.mktemp("songs")
    made = {"long": make_song(["A:min", "F:maj", "C:maj", "G:maj"], bpm=112, duration=180.0, key="A minor", seed=3),
            "short1": make_song(["C:maj", "G:maj"], bpm=96, duration=25.0, seed=4),
            "short2": make_song(["D:min", "A:maj"], bpm=128, duration=20.0, key="D minor", seed=5),
            "short3": make_song(["E:maj", "B:maj"], bpm=140, duration=15.0, key="E major", seed=6)}
    paths = []
    for name, song in made.items():
        paths.append(folder / f"{name}.flac")
        soundfile.write(paths[-1], song.samples, song.sample_rate)
    return paths


def default_run(paths, out, **options):
    pm = make_plugin_manager()
    recorder = Recorder()
    pm.register(recorder)
    registry = collect_analyzers(pm)
    from mirflow.cli.common import bundled_pipelines

    pipeline = load_pipeline(bundled_pipelines()["default"], registry)
    outcomes, scheduler = run_pipeline(pipeline, registry, pm, [str(p) for p in paths], output_dir=out, jobs=2,
                                       **options)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    results = {Path(o.path).stem: json.loads(Path(o.written[0]).read_text()) for o in outcomes}
    return results, scheduler, recorder


@pytest.fixture(scope="module")
def local_results(songs, tmp_path_factory):
    return default_run(songs, tmp_path_factory.mktemp("local"))[0]


@pytest.fixture(scope="module")
def ray_run(cluster, songs, tmp_path_factory):
    return default_run(songs, tmp_path_factory.mktemp("ray"), executor="ray")


def samples(events: list) -> list[int]:
    return [round((e["time"] if isinstance(e, dict) else e) * RATE) for e in events]


def same_analysis(a: dict, b: dict) -> None:
    """Beats to the sample, and the same chords, key, tempo, sections, steps and statuses."""
    for lane in ("beats", "downbeats"):
        assert samples(a["timeline"][lane]) == samples(b["timeline"][lane]), lane
    for lane in ("chords", "keys", "sections", "tempo"):
        assert a["timeline"][lane] == b["timeline"][lane], lane
    assert a["summary"] == b["summary"]
    assert {s: (v["status"], v["version"], v["device"]) for s, v in a["steps"].items()} == \
        {s: (v["status"], v["version"], v["device"]) for s, v in b["steps"].items()}
    assert a["chunks"] == b["chunks"] and a["errors"] == b["errors"] == []


def test_ray_results_equal_the_local_executors_on_a_chunked_song_and_a_folder(local_results, ray_run):
    results, _, _ = ray_run
    assert set(results) == set(local_results) == {"long", "short1", "short2", "short3"}
    assert len(results["long"]["chunks"]) == 2  # the 3-minute song was cut and merged
    assert len(results["long"]["timeline"]["beats"]) > 300
    for name in results:
        same_analysis(results[name], local_results[name])


def test_units_land_on_both_nodes_and_each_actor_sets_each_analyzer_up_once(cluster, ray_run):
    _, scheduler, recorder = ray_run
    analysis = [e for e in recorder.events if e.kind == "unit_started" and e.data["kind"] == "analyze"]
    nodes = {e.data["node"] for e in analysis}
    assert nodes == {node["NodeID"] for node in ray.nodes() if node["Alive"]}  # both raylets ran units
    decodes = [e for e in recorder.events if e.kind == "unit_started" and e.data["kind"] == "decode"]
    assert {e.data["pid"] for e in decodes} == {os.getpid()}  # inputs are read by the driver
    # Each actor ran units of many files and chunks, but set each of its analyzers up once.
    setups = scheduler.executor.setups
    assert len(setups) == 2 and all(setups.values())
    assert all(count == 1 for counts in setups.values() for count in counts.values()), setups
    assert len(analysis) > sum(len(counts) for counts in setups.values())


def test_a_killed_actor_is_replaced_its_unit_retried_and_a_unit_that_kills_twice_fails_alone(
        cluster, pm, registry, write_pipeline, write_clicks, tmp_path):
    files = [write_clicks(4.0, name=f"{name}.wav")[0] for name in ("a", "once", "crash", "hang")]
    pipeline = write_pipeline("resources: {unit_timeout: 8}\n"
                              "steps: [fake.clicks, fake.crash_once, {analyzer: fake.slow, params: {sleep: 0}}]\n")
    outcomes, scheduler = run_pipeline(load_pipeline(pipeline, registry), registry, pm, [str(f) for f in files],
                                       output_dir=tmp_path / "out", jobs=2, executor="ray")
    results = {Path(o.path).stem: json.loads(Path(o.written[0]).read_text()) for o in outcomes}
    assert [o.ok for o in outcomes] == [True, True, False, False]
    assert all(s["status"] == "ok" for s in results["once"]["steps"].values())  # lost once, retried, done
    crashed = results["crash"]["steps"]
    assert crashed["slow"]["status"] == "failed" and "Ray actor died running this unit, twice" in \
        crashed["slow"]["error"]["message"]
    assert crashed["clicks"]["status"] == crashed["crash_once"]["status"] == "ok"  # only that step
    hung = results["hang"]["steps"]
    assert hung["slow"]["status"] == "failed" and "timed out after 8 s" in hung["slow"]["error"]["message"]
    assert hung["clicks"]["status"] == "ok"
    assert scheduler.executor.replaced == 4  # once, crash twice, hang


def test_the_gpu_lane_is_one_actor_batching_across_files_and_says_cpu_on_a_cluster_without_gpus(
        cluster, pm, registry, write_pipeline, write_clicks, tmp_path):
    files = [write_clicks(6.0, name=f"g{n}.wav")[0] for n in range(5)]
    pipeline = write_pipeline("chunking: off\nresources: {gpu: {batch_size: 4}}\nsteps: [fake.gpu, fake.clicks]\n")
    recorder = Recorder()
    pm.register(recorder)
    outcomes, _ = run_pipeline(load_pipeline(pipeline, registry), registry, pm, [str(f) for f in files],
                               output_dir=tmp_path / "out", jobs=2, executor="ray")
    assert all(o.ok for o in outcomes)
    results = [json.loads(Path(o.written[0]).read_text()) for o in outcomes]
    batches = recorder.of("unit_started", lane="gpu")
    assert sorted(e.data["batch_size"] for e in batches) == [1, 4]  # chunks of several files in one call
    assert {r["summary"]["loads"]["value"] for r in results} == {1.0}  # the model was set up once ...
    assert len({r["summary"]["pid"]["value"] for r in results}) == 1  # ... in one actor
    assert all(r["steps"]["gpu"]["device"] == "cpu" for r in results)


def test_cancel_in_serve_drops_the_files_queued_units_on_the_cluster(cluster, pm, registry, write_pipeline,
                                                                    write_clicks, tmp_path):
    from mirflow.scheduler.coordinator import FileJob

    recorder = Recorder()
    pm.register(recorder)
    slow, _ = write_clicks(60.0, name="slow.wav")
    quick, _ = write_clicks(10.0, name="quick.wav")
    pipeline = load_pipeline(write_pipeline(
        "chunking: {min_duration: 5, length: 5, overlap: 1}\n"
        "steps:\n  - {analyzer: fake.slow, params: {sleep: 0.3}}\n  - fake.clicks\n"), registry)
    scheduler, inbox, outcomes, thread = serving(pipeline, registry, pm, tmp_path / "out", executor="ray")
    inbox.put(FileJob(str(slow), "slow"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not recorder.of("unit_finished", file=str(slow), step="slow"):
        time.sleep(0.05)
    scheduler.cancel(str(slow))
    inbox.put(FileJob(str(quick), "quick"))
    inbox.put(None)
    thread.join(120)
    assert not thread.is_alive()
    by_path = {o.path: o for o in outcomes}
    assert not by_path[str(slow)].ok and "cancelled" in by_path[str(slow)].error
    assert by_path[str(quick)].ok
    assert not (tmp_path / "out" / "slow.json").exists() and (tmp_path / "out" / "quick.json").exists()
    ran = len(recorder.of("unit_started", file=str(slow), step="slow"))
    assert ran < 15 / 2  # 15 chunks planned: the queued ones never reached an actor
    assert all(e.data.get("node") for e in recorder.of("unit_started", file=str(quick)))


def test_the_cli_starts_a_local_ray_instance_and_writes_what_the_local_executor_writes(
        songs, local_results, tmp_path):
    """No address: mirflow starts (and at exit stops) a Ray instance sized like --jobs."""
    short = [p for p in songs if p.stem == "short1"]
    done = subprocess.run([MIRFLOW, "-q", "run", "default", *map(str, short), "--executor", "ray", "--jobs", "2",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr
    same_analysis(json.loads((tmp_path / "out" / "short1.json").read_text()), local_results["short1"])


def test_a_second_run_on_ray_skips_what_is_up_to_date(cluster, pm, registry, write_pipeline, write_clicks, tmp_path):
    files = [str(write_clicks(3.0, name=f"r{n}.wav")[0]) for n in range(3)]
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\n"), registry)
    first, _ = run_pipeline(pipeline, registry, pm, files, output_dir=tmp_path / "out", executor="ray")
    again, _ = run_pipeline(pipeline, registry, pm, files, output_dir=tmp_path / "out", executor="ray")
    assert all(o.ok and not o.skipped for o in first)
    assert [o.skipped for o in again] == ["result is up to date"] * 3


def test_folds_run_in_chunk_order_on_ray_actors(cluster, pm, registry, write_pipeline, write_clicks, tmp_path):
    """A folding analyzer's fold units on the cluster: one per chunk, in order, each carrying
    what the fold before returned (they are pure units: any actor may run any of them)."""
    recorder = Recorder()
    pm.register(recorder)
    path, _ = write_clicks(50.0)
    pipeline = load_pipeline(write_pipeline("chunking: {min_duration: 20, length: 20, overlap: 5}\n"
                                            "steps: [fake.folding]\n"), registry)
    (outcome,), _ = run_pipeline(pipeline, registry, pm, [str(path)], output_dir=tmp_path / "out", executor="ray")
    assert outcome.ok
    result = json.loads(Path(outcome.written[0]).read_text())
    assert result["summary"]["folds"]["label"] == "0:0+1 1:0+1+2 2:1+2 | 0,1,2"
    folds = [e for e in recorder.of("unit_started") if e.data["kind"] == "fold"]
    assert [e.chunk for e in folds] == [0, 1, 2] and all(e.data.get("node") for e in folds)


def test_ctrl_c_on_ray_leaves_only_complete_result_files(songs, tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    for n in range(10):
        (folder / f"song{n}.flac").write_bytes(songs[1].read_bytes())
    out = tmp_path / "out"
    process = subprocess.Popen([MIRFLOW, "run", "fast", str(folder), "-o", str(out), "--jobs", "2",
                                "--executor", "ray"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RAY_ADDRESS": ""})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(out.glob("*.json")):
        time.sleep(0.1)
    assert list(out.glob("*.json")), "no result was written before the deadline"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    results = list(out.glob("*.json"))
    assert 1 <= len(results) < 10
    for path in results:
        assert json.loads(path.read_text())["timeline"]["chords"]  # complete, parseable
    assert [p.name for p in out.iterdir() if p.suffix in (".tmp", ".claim") or p.name.startswith(".")] == []


def test_an_unreachable_cluster_is_a_one_line_error_and_nothing_is_written(songs, tmp_path):
    done = subprocess.run([MIRFLOW, "run", "fast", str(songs[1]), "--executor", "ray", "--ray-address",
                           "127.0.0.1:1", "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "mirflow: cannot connect to the Ray cluster at 127.0.0.1:1" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_pipeline_that_asks_for_an_unknown_executor_is_an_error_with_its_line(registry, write_pipeline):
    from mirflow.pipeline import PipelineError

    path = write_pipeline("steps: [fake.clicks]\nresources:\n  executor: spark\n")
    with pytest.raises(PipelineError, match=r"pipe.yaml:3.*resources.executor: must be one of local, ray"):
        load_pipeline(path, registry)
    assert load_pipeline(write_pipeline("steps: [fake.clicks]\nresources: {executor: ray}\n", "ok.yaml"),
                         registry).resources.executor == "ray"


def test_without_ray_the_executor_says_what_to_install(monkeypatch, registry, pm, write_pipeline, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\n"), registry)
    with pytest.raises(ExecutorUnavailable, match=r"pip install 'mirflow\[ray\]'"):
        run_pipeline(pipeline, registry, pm, [], output_dir=tmp_path / "out", executor="ray")
