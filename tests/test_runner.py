"""The runner and result files: chunked == whole, failure isolation, batching, JSON, JAMS, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fakes
import mirflow
from mirflow.pipeline import PipelineError, load_pipeline
from mirflow.plugin_manager import collect_analyzers
from mirflow.io import write_atomic
from mirflow.results import SCHEMA_VERSION, output_names
from mirflow.scheduler import run_pipeline

PIPELINE = """
name: fakes
chunking: {min_duration: 0, length: 20, overlap: 4}
steps:
  - fake.clicks
  - fake.sections
  - fake.level
timeline:
  beats: clicks.clicks
"""


def run(pm, registry, pipeline_path, paths, out, **options):
    pipeline = load_pipeline(pipeline_path, registry)
    outcomes, _ = run_pipeline(pipeline, registry, pm, [str(p) for p in paths], inline=True, output_dir=out, **options)
    return outcomes, [json.loads((out / f"{os.path.basename(o.written[0])}").read_text()) if o.written else None
                      for o in outcomes]


def test_chunked_run_equals_whole_file_run_and_truth(pm, registry, write_pipeline, write_clicks, tmp_path):
    audio, truth = write_clicks(70.0, period=0.37)
    _, (chunked,) = run(pm, registry, write_pipeline(PIPELINE), [audio], tmp_path / "a")
    _, (whole,) = run(pm, registry, write_pipeline(PIPELINE.replace("chunking: {", "chunking: {enabled: false, "), "w.yaml"),
                      [audio], tmp_path / "b")
    assert len(chunked["chunks"]) == 5 and len(whole["chunks"]) == 1
    times = [b["time"] for b in chunked["timeline"]["beats"]]
    assert times == pytest.approx([b["time"] for b in whole["timeline"]["beats"]], abs=1e-6)
    assert times == pytest.approx(list(truth), abs=1 / 22050)
    assert chunked["timeline"]["chords"] == whole["timeline"]["chords"]
    assert [c["start"] for c in chunked["timeline"]["chords"]] == list(np.arange(0, 70, 4.0))
    envelope_a, envelope_b = chunked["steps"]["level"]["outputs"]["envelope"], whole["steps"]["level"]["outputs"]["envelope"]
    assert envelope_a["times"] == pytest.approx(envelope_b["times"])
    assert envelope_a["values"] == pytest.approx(envelope_b["values"], abs=1e-6)


def test_result_format(pm, registry, write_pipeline, write_clicks, tmp_path):
    audio, truth = write_clicks(30.0)
    outcomes, (result,) = run(pm, registry, write_pipeline(PIPELINE), [audio], tmp_path / "out")
    assert outcomes[0].ok and outcomes[0].written == [str(tmp_path / "out" / "clicks.json")]
    assert result["schema_version"] == SCHEMA_VERSION
    source = result["source"]
    assert (source["name"], source["duration"], source["sample_rate"], source["channels"]) == ("clicks.wav", 30.0, 22050, 1)
    assert len(source["sha256"]) == 64
    assert result["pipeline"]["name"] == "fakes" and len(result["pipeline"]["hash"]) == 16
    clicks = result["steps"]["clicks"]
    assert (clicks["analyzer"], clicks["version"], clicks["status"], clicks["device"]) == ("fake.clicks", "3", "ok", "cpu")
    assert clicks["seconds"] >= 0 and clicks["params"] == {"threshold": 0.5}
    assert result["summary"]["tempo"]["bpm"] == 120.0
    assert result["summary"]["level"]["label"] == "loud"  # other labels and scalars are kept, by name
    assert result["summary"]["rate"]["value"] == pytest.approx(len(truth) / 30.0, rel=0.05)
    assert set(result["timeline"]) == {"beats", "downbeats", "chords", "keys", "tempo", "sections"}
    assert result["timeline"]["chords"][0] == {"start": 0.0, "end": 4.0, "label": "A:min", "confidence": 1.0}
    assert result["errors"] == []


def test_one_failing_analyzer_on_one_file_is_isolated(pm, registry, write_pipeline, write_clicks, tmp_path):
    good, _ = write_clicks(5.0, name="good.wav")
    bad, _ = write_clicks(5.0, name="bad.wav")
    pipeline = write_pipeline("steps: [fake.broken, fake.clicks]\n")
    outcomes, (good_result, bad_result) = run(pm, registry, pipeline, [good, bad], tmp_path / "out")
    assert [o.ok for o in outcomes] == [True, False]
    assert good_result["steps"]["broken"]["status"] == "ok"
    assert bad_result["steps"]["broken"]["status"] == "failed"
    assert bad_result["steps"]["clicks"]["status"] == "ok"  # the other analyzer went on
    (error,) = bad_result["errors"]
    assert error["step"] == "broken" and error["analyzer"] == "fake.broken" and error["file"] == str(bad)
    assert error["message"] == "RuntimeError: this analyzer fails on purpose" and error["chunk"] == 0


def test_steps_that_need_a_failed_step_are_skipped_with_a_reason(pm, add_analyzers, write_pipeline, write_clicks,
                                                                tmp_path):
    class FailingClicks(mirflow.Analyzer):
        name = "fake.failing_clicks"
        outputs = {"clicks": mirflow.EVENTS}

        def analyze(self, chunk, inputs):
            raise ValueError("no clicks today")

    registry = add_analyzers(FailingClicks)
    audio, _ = write_clicks(5.0)
    pipeline = write_pipeline("steps: [fake.failing_clicks, fake.sections, fake.level]\n")
    outcomes, (result,) = run(pm, registry, pipeline, [audio], tmp_path / "out")
    assert not outcomes[0].ok
    assert result["steps"]["failing_clicks"]["status"] == "failed"
    assert result["steps"]["sections"]["status"] == "skipped"
    assert result["steps"]["sections"]["error"]["message"] == "skipped: its input step 'failing_clicks' did not succeed"
    assert result["steps"]["level"]["status"] == "ok"
    assert [e["step"] for e in result["errors"]] == ["failing_clicks", "sections"]


def test_a_library_found_missing_at_setup_fails_only_its_analyzer_and_says_what_to_install(
        pm, registry, write_pipeline, write_clicks, tmp_path):
    audio, _ = write_clicks(3.0)
    outcomes, (result,) = run(pm, registry, write_pipeline("steps: [fake.undeclared, fake.clicks]\n"), [audio], tmp_path / "o")
    assert result["steps"]["clicks"]["status"] == "ok"
    message = result["steps"]["undeclared"]["error"]["message"]
    assert "no_such_library_xyz" in message and "pip install no-such-library-xyz" in message


def test_a_declared_library_that_is_missing_stops_the_pipeline_at_load_with_the_extra_to_install(
        registry, write_pipeline):
    with pytest.raises(PipelineError) as caught:
        load_pipeline(write_pipeline("steps:\n  - fake.clicks\n  - fake.missing\n"), registry)
    assert str(caught.value) == ("pipe.yaml:3:5 steps[1].analyzer: fake.missing: needs no_such_library_xyz, which is "
                                 "not installed: pip install 'mirflow[xyz]' (or mark the step optional: true)")


def test_an_optional_step_whose_library_is_missing_is_skipped_and_says_why(pm, registry, write_pipeline,
                                                                          write_clicks, tmp_path):
    audio, _ = write_clicks(3.0)
    pipeline = write_pipeline("steps:\n  - fake.clicks\n  - {analyzer: fake.missing, optional: true}\n")
    outcomes, (result,) = run(pm, registry, pipeline, [audio], tmp_path / "o")
    assert outcomes[0].ok and result["steps"]["clicks"]["status"] == "ok"
    assert result["steps"]["missing"]["status"] == "skipped"
    assert "pip install 'mirflow[xyz]'" in result["steps"]["missing"]["error"]["message"]


def test_gpu_steps_get_batches_gathered_across_files_and_set_up_once(pm, registry, write_pipeline, write_clicks,
                                                                     tmp_path):
    fakes.GpuCounter.setups, fakes.GpuCounter.batches = 0, []
    one, _ = write_clicks(50.0, name="one.wav")
    two, _ = write_clicks(50.0, name="two.wav")
    pipeline = write_pipeline("chunking: {min_duration: 0, length: 10, overlap: 2}\n"
                              "resources: {gpu: {batch_size: 4}}\nsteps: [fake.gpu]\n")
    outcomes, results = run(pm, registry, pipeline, [one, two], tmp_path / "o")
    assert all(o.ok for o in outcomes)
    assert fakes.GpuCounter.setups == 1
    assert fakes.GpuCounter.batches == [4, 4, 4]  # 6 chunks per file, batched across both
    assert results[0]["steps"]["gpu"]["device"] == "cpu"  # what really ran, not what was asked


def test_device_gpu_without_a_gpu_is_a_clear_error(pm, registry, write_pipeline, write_clicks, tmp_path):
    audio, _ = write_clicks(3.0)
    outcomes, (result,) = run(pm, registry, write_pipeline("steps: [fake.gpu]\n"), [audio], tmp_path / "o", device="gpu")
    assert not outcomes[0].ok
    assert "no GPU is visible" in result["steps"]["gpu"]["error"]["message"]


def test_progress_events_reach_listeners(pm, registry, write_pipeline, write_clicks, tmp_path):
    seen = []

    class Listener:
        @mirflow.hookimpl
        def progress(self, event):
            seen.append((event.kind, event.step, event.chunk, event.data.get("kind")))

    pm.register(Listener())
    audio, _ = write_clicks(70.0)
    run(pm, registry, write_pipeline(PIPELINE), [audio], tmp_path / "o")
    kinds = [kind if unit is None else f"{kind}:{unit}" for kind, _, _, unit in seen]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("unit_finished:decode") < kinds.index("file_decoded") < kinds.index("unit_started:analyze")
    assert kinds.index("unit_finished:aggregate") < kinds.index("file_finished")
    assert sorted(c for k, s, c, u in seen if k == "unit_finished" and s == "clicks" and u == "analyze") == [0, 1, 2, 3, 4]


def test_jams_export_reads_back_with_jams(pm, registry, write_pipeline, write_clicks, tmp_path):
    jams = pytest.importorskip("jams")
    audio, truth = write_clicks(30.0)
    pipeline = load_pipeline(write_pipeline(PIPELINE), registry)
    (outcome,) = run_pipeline(pipeline, registry, pm, [str(audio)], inline=True, output_dir=tmp_path, formats=("json", "jams"))[0]
    document = jams.load(str(tmp_path / "clicks.jams"), validate=True)
    beats = document.search(namespace="beat")[0]
    assert [o.time for o in beats.data] == pytest.approx(list(truth), abs=1e-4)
    chords = document.search(namespace="chord")[0]
    assert [o.value for o in chords.data][:3] == ["A:min", "C:maj", "A:min"]
    assert document.search(namespace="tempo")[0].data[0].value == 120.0


def test_results_are_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "song.json"
    write_atomic(target, "first")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "second, never complete")
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.json"]  # no temp file left


def test_result_names_follow_inputs_without_clashes(tmp_path):
    names = output_names(["a/song.mp3", "b/song.mp3", "c/other.wav", "d/song.flac"])
    assert names["c/other.wav"] == "other"
    clashing = [names["a/song.mp3"], names["b/song.mp3"], names["d/song.flac"]]
    assert len(set(clashing)) == 3 and all(n.startswith("song.") for n in clashing)


def test_several_files_run_in_spawned_workers_with_events_forwarded(tmp_path):
    import soundfile

    from mirflow.plugin_manager import make_plugin_manager
    from mirflow.synth import make_song

    song = make_song(["C:maj", "A:min"], bpm=90, duration=8.0)
    paths = []
    for n in range(3):
        paths.append(str(tmp_path / f"song{n}.wav"))
        soundfile.write(paths[-1], song.samples, song.sample_rate)
    pm = make_plugin_manager()
    pids = []

    class Listener:
        @mirflow.hookimpl
        def progress(self, event):
            if event.kind == "unit_finished" and event.data["kind"] == "analyze":
                pids.append(event.data["pid"])

    pm.register(Listener())
    registry = collect_analyzers(pm)
    pipeline_path = tmp_path / "chords.yaml"
    pipeline_path.write_text("steps: [chords.cnn_crf]\n")
    pipeline = load_pipeline(pipeline_path, registry)
    outcomes, _ = run_pipeline(pipeline, registry, pm, paths, jobs=2, output_dir=tmp_path / "out")
    assert [o.ok for o in outcomes] == [True, True, True]
    assert len(pids) == 3 and 1 <= len(set(pids)) <= 2 and os.getpid() not in pids  # which worker takes which file is a race
    timelines = [json.loads((tmp_path / "out" / f"song{n}.json").read_text())["timeline"]["chords"] for n in range(3)]
    assert timelines[0] == timelines[1] == timelines[2] and timelines[0][1]["label"] == "C:maj"


def test_a_plugin_can_take_over_aggregation_of_its_own_analyzer(pm, registry, write_pipeline, write_clicks, tmp_path):
    seen = []

    class Aggregator:
        @mirflow.hookimpl
        def aggregate(self, analyzer, parts, track):
            if analyzer.name != "fake.clicks":
                return None  # leave the others to the default rules
            seen.append([p.span.index for p in parts])
            times = [e["time"] for p in parts for e in p.outputs["clicks"]]  # keep overlap doubles
            return {"clicks": [{"time": t} for t in sorted(times)], "rate": {"value": -1.0, "confidence": 1.0}}

    pm.register(Aggregator())
    audio, truth = write_clicks(70.0, period=0.5)
    _, (result,) = run(pm, registry, write_pipeline(PIPELINE), [audio], tmp_path / "o")
    assert seen == [[0, 1, 2, 3, 4]]
    assert result["summary"]["rate"]["value"] == -1.0
    assert len(result["timeline"]["beats"]) > len(truth)  # its own rule (no dedup) was used
    assert result["steps"]["sections"]["outputs"]["chords"][0]["label"] == "A:min"  # defaults for the rest


def test_a_descriptor_without_an_answer_is_not_taken_from_another_step(registry, write_pipeline):
    """The chosen tempo step found none: the other step's tempo is listed under its step id,
    not as the song's tempo (and `mirflow run`'s summary printing does not trip over it)."""
    from mirflow.results import summarize

    pipeline = load_pipeline(write_pipeline("""
        steps: [{analyzer: fake.level, id: chosen}, {analyzer: fake.level, id: other}]
        timeline: {tempo: chosen, key: chosen.level}
    """), registry)
    outputs = {"chosen": {"tempo": {"value": None, "confidence": 0.0}, "level": {"label": "loud", "confidence": 1.0}},
               "other": {"tempo": {"value": 120.0, "confidence": 0.5}, "level": {"label": "quiet", "confidence": 1.0}}}
    summary, _ = summarize(pipeline, outputs, registry)
    assert "tempo" not in summary and summary["other.tempo"]["value"] == 120.0
