"""essentia_gpu zoo models with tiny graphs that carry the zoo's real node names and shapes.

TensorFlow is only ever imported in other processes (the tiny-zoo builder, a runner
script, the scheduler's GPU-lane worker): this test process imports Essentia, and
TensorFlow before Essentia aborts a process.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mirflow.pipeline import PipelineError, load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.plugins.essentia_gpu.zoo import CATALOGUE, EFFNET, MUSICNN, TEMPOCNN, read_metadata
from mirflow.scheduler import run_pipeline
from mirflow.synth import make_song

HERE = Path(__file__).resolve().parent
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


pytestmark = pytest.mark.slow  # TensorFlow in the GPU lane's worker


@pytest.fixture
def zoo(tiny_zoo):
    return tiny_zoo


@pytest.fixture
def models_env(zoo, monkeypatch):
    monkeypatch.setenv("MIRFLOW_MODELS", str(zoo))
    return zoo


def test_metadata_of_each_family(zoo):
    musicnn, effnet, tempo = (read_metadata(zoo / f"{name}.json") for name in (MUSICNN, EFFNET, TEMPOCNN))
    assert (musicnn.family, musicnn.input, musicnn.output, musicnn.embeddings, musicnn.sample_rate) == (
        MUSICNN, "model/Placeholder", "model/Sigmoid", "model/dense/BiasAdd", 16000)
    assert (effnet.input, effnet.output, effnet.embeddings) == (
        "serving_default_melspectrogram", "PartitionedCall:0", "PartitionedCall:1")
    assert (tempo.family, tempo.input, tempo.output, tempo.sample_rate, len(tempo.classes)) == (
        TEMPOCNN, "input", "output", 11025, 256)
    head = read_metadata(zoo / "danceability-msd-musicnn-1.json")
    assert (head.family, head.input, head.output, head.embedding_model, head.classes) == (
        "head", "model/Placeholder", "model/Softmax", MUSICNN, ["danceable", "not_danceable"])
    genre = read_metadata(zoo / "genre_discogs400-discogs-effnet-1.json")
    assert (genre.input, genre.output, genre.embedding_model, len(genre.classes)) == (
        "serving_default_model_Placeholder", "PartitionedCall:0", EFFNET, 400)


RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mirflow.plugins.essentia_gpu.models import Model, Patches
    from mirflow.plugins.essentia_gpu.runner import Graph
    rng = np.random.default_rng(1)
    report = {}
    for model, shape in (("danceability-msd-musicnn-1", (187, 96)), ("mood_sad-discogs-effnet-1", (128, 96))):
        analyzer = Model(model=model)
        analyzer.setup("auto")
        items = [Patches("f.wav", i, rng.standard_normal((n,) + shape).astype(np.float32), np.arange(n) * 1.5)
                 for i, n in enumerate((3, 70, 1))]  # 74 patches: two fixed effnet batches of 64
        together = analyzer.analyze_batch(items, [{}] * 3)
        type(analyzer).embedding_cache.clear()
        alone = [analyzer.analyze_batch([item], [{}])[0] for item in items]
        report[model] = {
            "equal": all(np.allclose(a["activations"]["values"], b["activations"]["values"], atol=1e-5)
                         for a, b in zip(together, alone)),
            "shapes": [list(np.shape(o["activations"]["values"])) for o in together],
            "device": analyzer.device}
    report["loads"] = Graph.loads  # two models, each an extractor and a head: 4, for all those batches
    print(json.dumps(report))
""")


def test_batched_equals_unbatched_and_models_load_once(models_env):
    done = subprocess.run([sys.executable, "-c", RUNNER], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for model in ("danceability-msd-musicnn-1", "mood_sad-discogs-effnet-1"):
        assert report[model]["equal"] and report[model]["device"] == "cpu"
        assert report[model]["shapes"] == [[3, 2], [70, 2], [1, 2]]
    assert report["loads"] == 4


def write_song(tmp_path, seconds=70.0) -> Path:
    path = tmp_path / "song.wav"
    song = make_song(["C:maj", "G:maj"], bpm=120, duration=seconds)
    soundfile.write(path, song.samples, song.sample_rate)
    return path


def run(tmp_path, steps: str, device: str = "auto"):
    pipeline = tmp_path / "models.yaml"
    pipeline.write_text(f"chunking: {{min_duration: 30, length: 30, overlap: 5}}\nresources: {{device: {device}}}\n"
                        f"steps:\n{textwrap.indent(textwrap.dedent(steps), '  ')}")
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    spec = load_pipeline(pipeline, registry)
    outcomes, _ = run_pipeline(spec, registry, pm, [str(write_song(tmp_path))], jobs=2, output_dir=tmp_path / "out",
                               formats=["json"])
    return outcomes[0], json.loads((tmp_path / "out" / "song.json").read_text())


def test_heads_tags_and_tempocnn_through_the_gpu_lane(models_env, tmp_path):
    outcome, result = run(tmp_path, """
        - {analyzer: essentia_gpu.model, id: tags, params: {model: msd-musicnn-1}}
        - {analyzer: essentia_gpu.model, id: danceable, params: {model: danceability-msd-musicnn-1}}
        - {analyzer: essentia_gpu.model, id: genre, params: {model: genre_discogs400-discogs-effnet-1}}
        - {analyzer: essentia_gpu.tempocnn, id: tempocnn}
    """)
    assert outcome.ok, result["errors"]
    assert len(result["chunks"]) == 3
    for step in result["steps"].values():
        assert step["status"] == "ok" and step["device"] == "cpu"  # what really ran: no GPU here
    danceable = result["steps"]["danceable"]["outputs"]
    times = np.array(danceable["activations"]["times"])
    assert np.all(np.diff(times) > 0) and times[-1] < 70.0 and times[0] < 3.0  # one curve over the track
    assert set(danceable["classes"]["means"]) == {"danceable", "not_danceable"}
    assert result["summary"]["danceable.label"]["label"] in ("danceable", "not_danceable")
    assert len(result["steps"]["tags"]["outputs"]["classes"]["means"]) == 50
    assert 30 <= result["summary"]["tempo"]["bpm"] <= 285


def test_device_gpu_without_a_gpu_fails_clearly(models_env, tmp_path):
    outcome, result = run(tmp_path, "- {analyzer: essentia_gpu.model, params: {model: danceability-msd-musicnn-1}}\n",
                          device="gpu")
    assert not outcome.ok
    (error,) = result["errors"]
    assert "device: gpu was asked for, but TensorFlow sees no GPU" in error["message"]


def test_a_missing_model_fails_validation_unless_the_step_is_optional(models_env, tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps:\n  - {analyzer: essentia_gpu.model, params: {model: mood_party-msd-musicnn-1}}\n")
    registry = collect_analyzers(make_plugin_manager())
    with pytest.raises(PipelineError) as caught:
        load_pipeline(pipeline, registry)
    assert str(caught.value.issues[0]) == (
        f"p.yaml:2:44 steps[0].params: essentia_gpu.model: model 'mood_party-msd-musicnn-1' is not installed in "
        f"{models_env}; get it with: mirflow models pull mood_party-msd-musicnn-1 (or mark the step optional: true)")
    outcome, result = run(tmp_path, """
        - {analyzer: essentia_gpu.model, id: party, params: {model: mood_party-msd-musicnn-1}, optional: true}
        - madmom_fast.beats
    """)
    # The folder can also come from the pipeline (params.models_dir) instead of MIRFLOW_MODELS.
    pipeline.write_text(f"steps:\n  - {{analyzer: essentia_gpu.model, params: {{model: danceability-msd-musicnn-1, "
                        f"models_dir: {models_env}}}}}\n")
    os.environ.pop("MIRFLOW_MODELS")
    assert load_pipeline(pipeline, registry).steps[0].unavailable is None
    assert outcome.ok and result["steps"]["party"]["status"] == "skipped"
    assert "mirflow models pull mood_party-msd-musicnn-1" in result["errors"][0]["message"]
    assert result["timeline"]["beats"]


def test_models_add_list_and_pull_from_a_loopback_server(zoo, tmp_path):
    site = tmp_path / "site"  # the zoo's folder layout, served on 127.0.0.1
    for name in (MUSICNN, "danceability-msd-musicnn-1"):
        target = site / CATALOGUE[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        for ext in (".pb", ".json"):
            shutil.copy(zoo / f"{name}{ext}", target.with_name(target.name + ext))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    installed = tmp_path / "installed"
    env = {**os.environ, "MIRFLOW_MODELS": str(installed),
           "MIRFLOW_MODELS_URL": f"http://127.0.0.1:{server.server_address[1]}/"}
    try:
        installed.mkdir()
        (installed / f"{MUSICNN}.pb.part").write_bytes(b"stale half download")  # restarts cleanly
        done = subprocess.run([MIRFLOW, "models", "pull", MUSICNN, "danceability-msd-musicnn-1"], env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "CC BY-NC-SA 4.0" in done.stdout
        for name in (MUSICNN, "danceability-msd-musicnn-1"):
            assert (installed / f"{name}.pb").read_bytes() == (zoo / f"{name}.pb").read_bytes()
        assert not list(installed.glob("*.part"))
        missing = subprocess.run([MIRFLOW, "models", "pull", "mood_sad-msd-musicnn-1"], env=env, capture_output=True,
                                 text=True)
        assert missing.returncode == 2 and "HTTP 404" in missing.stderr
        assert not (installed / "mood_sad-msd-musicnn-1.json").exists()
    finally:
        server.shutdown()
    added = subprocess.run([MIRFLOW, "models", "add", str(zoo / "mood_happy-msd-musicnn-1.pb")], env=env,
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    listing = subprocess.run([MIRFLOW, "models", "list"], env=env, capture_output=True, text=True).stdout
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines()[1:]}
    assert rows[MUSICNN] == rows["mood_happy-msd-musicnn-1"] == "installed" and rows[EFFNET] == "-"
    bad = subprocess.run([MIRFLOW, "models", "add", str(tmp_path / "nothing.pb")], env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "nothing.pb" in bad.stderr
