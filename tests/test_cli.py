"""The command line as a user meets it: instant help, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
HEAVY = ("tensorflow", "essentia", "madmom", "librosa", "numba", "onnxruntime", "numpy")


def mirflow(*args, **kwargs):
    return subprocess.run([MIRFLOW, *map(str, args)], capture_output=True, text=True, **kwargs)


def test_importing_mirflow_and_its_cli_loads_no_heavy_library():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mirflow, mirflow.cli"],
                          capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_help_and_version():
    done = mirflow("--help")
    assert done.returncode == 0
    for command in ("run", "plugins", "pipelines", "validate"):
        assert command in done.stdout
    version = mirflow("--version")
    assert version.returncode == 0 and version.stdout.startswith("mirflow, version ")


def test_validate_reports_errors_with_locations_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - analyzer: madmom.beat\n")
    done = mirflow("validate", bad)
    assert done.returncode == 2
    assert done.stderr.strip() == ("mirflow: bad.yaml:2:15 steps[0].analyzer: unknown analyzer 'madmom.beat' "
                                   "(did you mean 'madmom_fast.beats'?)")
    assert "Traceback" not in done.stderr
    good = mirflow("validate", "default")
    assert good.returncode == 0 and "ok" in good.stdout


def test_bad_inputs_are_one_line_errors(tmp_path):
    missing = mirflow("run", "default", tmp_path / "nope.wav")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"mirflow: {tmp_path / 'nope.wav'}: no such file or directory"
    nopipe = mirflow("run", "nosuch", tmp_path)
    assert nopipe.returncode == 2 and "nosuch: no pipeline file or bundled pipeline of that name" in nopipe.stderr


def test_an_undecodable_file_fails_that_file_only(tmp_path, write_clicks):
    good, _ = write_clicks(3.0, name="good.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps: [hello_free.none]\n".replace("hello_free.none", "chords.cnn_crf"))
    done = mirflow("-q", "run", pipeline, good, corrupt, "-o", tmp_path / "out")
    assert done.returncode == 1
    assert f"mirflow: {corrupt}: cannot decode audio" in done.stderr
    assert (tmp_path / "out" / "good.json").exists() and not (tmp_path / "out" / "corrupt.json").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_the_first_run_notice_is_for_pipelines_that_compile_librosa(tmp_path, write_clicks, monkeypatch):
    """Importing librosa compiles its numba functions once per machine (~40 s on 2 cores):
    a pipeline whose steps import it is announced before a first run. The default and fast
    pipelines' steps do not (their STFT features and the chord Viterbi are ported to numpy);
    their one numba kernel, the beat decode, compiles in a few seconds, once per machine."""
    import os

    from mirflow.cli.run import _compiles
    from mirflow.pipeline import find_pipeline, load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

    registry = collect_analyzers(make_plugin_manager())
    compiles = {name: _compiles(load_pipeline(find_pipeline(name), registry), registry)
                for name in ("default", "fast", "full", "commercial")}
    assert compiles == {"default": False, "fast": False, "full": True, "commercial": True}
    cqt_key = tmp_path / "cqt.yaml"
    cqt_key.write_text("steps:\n  - analyzer: librosa_enhanced.key\n    params: {chroma: cqt}\n")
    assert _compiles(load_pipeline(cqt_key, registry), registry)

    song, _ = write_clicks(4.0)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps: [madmom_fast.beats, librosa_enhanced.key]\n")
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    first = mirflow("run", pipeline, song, "-o", tmp_path / "out", "--jobs", "2", env=environment)
    assert first.returncode == 0, first.stderr
    assert "first run" not in first.stderr
    # The beat decode's kernels, built in C (or where that fails, by numba's JIT into
    # the folder the slots share): neither counts as librosa's, so a pipeline that imports
    # librosa would still be announced on its first run after this one.
    assert (list((tmp_path / "cache" / "mirflow" / "native").glob("*/mirflow_viterbi*"))
            or list((tmp_path / "cache" / "mirflow" / "numba" / "shared").rglob("*.nbi")))
    from mirflow.caches import numba_cache_is_cold

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert numba_cache_is_cold()
    (tmp_path / "cache" / "mirflow" / "numba" / "cpu-0" / "librosa").mkdir(parents=True)  # what a slot compiles
    assert not numba_cache_is_cold()


def test_a_plugin_whose_first_run_answer_fails_only_loses_the_notice(add_analyzers, write_pipeline):
    import fakes

    from mirflow.cli.run import _compiles
    from mirflow.pipeline import load_pipeline

    class Compiles(fakes.Clicks):
        name = "thirdparty.compiles"

        def compiles_on_first_run(self):
            return True

    class Broken(fakes.Clicks):
        name = "thirdparty.broken"

        def compiles_on_first_run(self):
            raise RuntimeError("a bug in a plugin")

    registry = add_analyzers(Compiles, Broken, name="thirdparty")
    assert not _compiles(load_pipeline(write_pipeline("steps: [thirdparty.broken]\n"), registry), registry)
    assert _compiles(load_pipeline(write_pipeline("steps: [thirdparty.broken, thirdparty.compiles]\n"), registry),
                     registry)


def test_pipelines_lists_the_bundled_ones():
    done = mirflow("pipelines")
    assert done.returncode == 0
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["commercial", "default", "fast", "full"]


def test_plugins_checks_that_libraries_import():
    done = mirflow("plugins")
    assert done.returncode == 0
    line = next(line for line in done.stdout.splitlines() if line.startswith("madmom_fast.beats"))
    assert line.split()[1:4] == ["madmom_fast", "auto", "4"] and line.endswith("madmom ok")


def test_plugins_licences_name_the_code_and_model_licence_of_every_analyzer():
    done = mirflow("plugins", "--licences")
    assert done.returncode == 0
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "CC BY-NC-SA 4.0" in rows["madmom_fast.downbeats"] and "BSD-2-Clause" in rows["madmom_fast.downbeats"]
    assert rows["librosa_enhanced.beats"].endswith("no trained model")
    assert "structure.sections" in rows and "essentia_gpu.model" in rows


def test_doctor_tells_each_backends_devices_and_why_there_is_no_gpu():
    done = mirflow("doctor", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found) == {"tensorflow", "essentia", "onnxruntime", "torch"}  # torch: the chordia extra
    for backend, info in found.items():
        assert "error" not in info, (backend, info)
        assert info["devices"] and info["version"]
        if not info["gpu"]:  # the reason is never left out when there is no GPU
            assert info["reason"], backend
    if not found["essentia"]["gpu"]:
        assert "libcuda.so.1" in found["essentia"]["reason"] or "libcudart.so.11.0" in found["essentia"]["reason"]


def test_device_gpu_on_a_pipeline_without_gpu_steps_is_an_error(tmp_path):
    audio = tmp_path / "a.wav"
    import numpy as np
    import soundfile

    soundfile.write(audio, np.zeros(22050, dtype=np.float32), 22050)
    done = mirflow("run", "commercial", str(audio), "--device", "gpu", "-o", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().endswith("device gpu, but no step of pipeline 'commercial' can run on a GPU (they are "
                                        "all cpu steps); use --device cpu or auto")
    assert not (tmp_path / "out").exists()


def test_plugin_commands_load_after_global_options_and_honour_disable_plugin():
    listed = mirflow("-q", "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "models folder:" in listed.stdout
    assert "models " in mirflow("--help").stdout  # listed beside the built-in commands
    disabled = mirflow("--disable-plugin", "essentia_gpu", "models", "list")
    assert disabled.returncode == 2 and "No such command 'models'" in disabled.stderr
