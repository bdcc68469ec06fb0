"""The light install: a wheel without extras runs the default pipeline; heavy backends stay out."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_declares_python_3_11_to_3_13():
    """The versions benchmarks/install.py --pythons installs and runs the example under."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {c.rsplit(" ", 1)[-1] for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")}
    assert {"3.11", "3.12", "3.13"} <= declared and project["requires-python"] == ">=3.11"


def test_the_default_pipeline_never_imports_tensorflow_or_essentia(tmp_path):
    """In a fresh interpreter (the test process may have imported them for other tests)."""
    code = f"""
import sys
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.pipeline import load_pipeline
from mirflow.cli.common import bundled_pipelines
from mirflow.scheduler import run_pipeline
pm = make_plugin_manager()
registry = collect_analyzers(pm)
pipeline = load_pipeline(bundled_pipelines()["default"], registry)
outcomes, _ = run_pipeline(pipeline, registry, pm, [{str(ROOT / 'examples' / 'example.ogg')!r}], inline=True,
                           output_dir={str(tmp_path)!r}, formats=["json"])
assert all(o.ok for o in outcomes), outcomes
print(sorted({{name.split(".")[0] for name in sys.modules}} & {{"tensorflow", "essentia", "matplotlib", "mir_eval"}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(dist), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = dist.glob("mirflow-*.whl")
    return found


@pytest.mark.install
def test_the_wheel_holds_every_package_pipeline_and_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in config["packages"]:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for pipeline in (ROOT / "pipelines").glob("*.yaml"):
        assert f"mirflow/bundled_pipelines/{pipeline.name}" in names
    assert {"mirflow/server/static/app.js", "mirflow/plugins/structure/segment.py"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for plugin in ("madmom_fast", "librosa_enhanced", "chords", "essentia_gpu", "structure", "midi", "formats"):
        assert f"{plugin} = mirflow.plugins.{plugin}" in text


def install_and_run_example(python: str, wheel: Path, tmp_path: Path) -> Path:
    """A fresh virtual environment of ``python`` with the core only (the wheel, no extras);
    ``mirflow run default`` on the example there gives its known tempo and key. Its venv."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert not installed & {"tensorflow", "essentia-tensorflow", "essentia", "matplotlib", "fastapi"}
    run = subprocess.run([str(venv / "bin" / "mirflow"), "run", "default", str(ROOT / "examples" / "example.ogg"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "example.json").read_text())
    assert result["summary"]["tempo"]["bpm"] == pytest.approx(100, abs=1) and result["summary"]["key"]["label"] == "A minor"
    assert all(step["status"] == "ok" for step in result["steps"].values())
    return venv


@pytest.mark.install
@pytest.mark.slow
def test_the_wheel_without_extras_runs_the_example_and_says_what_full_needs(wheel, tmp_path):
    venv = install_and_run_example(sys._base_executable, wheel, tmp_path)
    mirflow = str(venv / "bin" / "mirflow")
    validate = subprocess.run([mirflow, "validate", "full"], capture_output=True, text=True, timeout=120)
    assert validate.returncode == 0, validate.stderr
    skipped = [line for line in validate.stdout.splitlines() if "will be skipped" in line]
    assert skipped and all("pip install 'mirflow[models]'" in line for line in skipped)
    doctor = subprocess.run([mirflow, "doctor", "--json"], capture_output=True, text=True, timeout=300)
    assert doctor.returncode == 0 and set(json.loads(doctor.stdout)) == {"onnxruntime"}  # only what it has
    plugins = subprocess.run([mirflow, "plugins"], capture_output=True, text=True, timeout=300)
    line = next(line for line in plugins.stdout.splitlines() if line.startswith("essentia_gpu.key"))
    assert "essentia" in line.split() and line.endswith("MISSING")
