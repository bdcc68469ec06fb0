"""Shared fixtures: fresh plugin managers, fake analyzers, synthesized audio files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

import fakes


@pytest.fixture
def pm():
    """A fresh plugin manager with the fake plugin and no installed plugins."""
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(fakes.FakePlugin(), name="fake")
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


@pytest.fixture(scope="session")
def example_results(tmp_path_factory) -> Path:
    """The bundled example run once through ``mirflow run default`` (json and mid): a folder of
    real results that the export and table tests share."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("example-results")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(Path(sys.executable).with_name("mirflow")), "-q", "run", "default",
                           str(root / "examples" / "example.ogg"), "--format", "json,mid", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out
