"""madmom's ensembles of bidirectional LSTMs (the beat and downbeat networks: eight members of
three layers of 25 units each) run by one small C kernel, their sequences side by side in SIMD
lanes.

onnxruntime runs each member's LSTM on its own, one direction at a time: 48 sequences of
12,000 steps per 120 s chunk, each step a 25-wide matrix-vector product and its gates, bound by
the per-step overhead (~0.5-0.8 s per chunk on one core, as long as the features that feed it).
The kernel here steps all sixteen sequences of a layer (eight members, both directions) at once,
one 16-wide vector per unit: the recurrence is 2,500 vector multiply-adds per step and the gates
are computed with the rational approximations onnxruntime's MLAS library uses (Eigen's), to
~2e-7. The input projections are matrix products (NumPy's BLAS), the output layers and the
ensemble's average NumPy, as madmom computes them. Both trackers' networks took ~27-31 % less
time than onnxruntime's on four corpora; the averaged output differs from onnxruntime's by
~1e-6 mostly, by up to ~0.04 in a few frames of sparse arrangements, which moved 5 of 194 beat
lists by more than 1 ms and no downbeat (``benchmarks/features.py --compare networks``).

Built once per machine with the system's C compiler into the user's cache (:mod:`.native`'s
builder: keyed by the source and the CPU, under a lock, a failure kept and not retried) and
loaded with ctypes (no Python headers needed). Where it cannot be built, or a network is not a
stack of bidirectional LSTMs with one output layer, onnxruntime runs the networks as before.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

LANES = 16  # sequences the kernel steps together: one 64-byte vector of float32 per unit
LIBRARY = "mirflow_lstm.so"
GATES = ("input_gate", "output_gate", "forget_gate", "cell")  # the kernel's (and ONNX's) order

SOURCE = r"""
#include <string.h>
#define L 16
/* The gates' sums are made ROWS rows at a time: ROWS independent chains of multiply-adds in
   registers (one chain per row is bound by the adds' latency): ten 16-wide accumulators where
   there are 32 vector registers (AVX-512), four elsewhere (two registers each with AVX). */
#if defined(__AVX512F__)
#define ROWS 10
#else
#define ROWS 4
#endif
typedef float v16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));

static inline v16 load(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 splat(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static inline v16 clamp(v16 x, float low, float high) {
    i16 below = x < splat(low), above = x > splat(high);
    i16 bits = (below & (i16)splat(low)) | (above & (i16)splat(high)) | (~(below | above) & (i16)x);
    return (v16)bits;
}

/* tanh and the logistic function as MLAS computes them (Eigen's rational approximations). */
static inline v16 tanh16(v16 x) {
    x = clamp(x, -9.0f, 9.0f);
    v16 x2 = x * x;
    v16 p = x2 * splat(-2.76076847742355e-16f) + splat(2.00018790482477e-13f);
    p = p * x2 + splat(-8.60467152213735e-11f);
    p = p * x2 + splat(5.12229709037114e-08f);
    p = p * x2 + splat(1.48572235717979e-05f);
    p = p * x2 + splat(6.37261928875436e-04f);
    p = p * x2 + splat(4.89352455891786e-03f);
    v16 q = x2 * splat(1.19825839466702e-06f) + splat(1.18534705686654e-04f);
    q = q * x2 + splat(2.26843463243900e-03f);
    q = q * x2 + splat(4.89352518554385e-03f);
    return p * x / q;
}

static inline v16 logistic16(v16 x) {
    x = clamp(x, -18.0f, 18.0f);
    v16 x2 = x * x;
    v16 p = x2 * splat(4.37031012579801e-11f) + splat(1.15627324459942e-07f);
    p = p * x2 + splat(6.08574864600143e-05f);
    p = p * x2 + splat(8.51377133304701e-03f);
    p = p * x2 + splat(2.48287947061529e-01f);
    v16 q = x2 * splat(6.10247389755681e-13f) + splat(5.76102136993427e-09f);
    q = q * x2 + splat(6.29106785017040e-06f);
    q = q * x2 + splat(1.70198817374094e-03f);
    q = q * x2 + splat(1.16817656904453e-01f);
    q = q * x2 + splat(9.93151921023180e-01f);
    return p * x / q + splat(0.5f);
}

static inline v16 blend(v16 a, v16 b, i16 take_b) { return (v16)((take_b & (i16)b) | (~take_b & (i16)a)); }

/* One layer of an ensemble of bidirectional LSTMs (peepholes, H units) over T frames, a lane
   per sequence: member m's forward sequence in lane m, its backward one in lane M + m (M =
   members <= L / 2); the lanes from 2M on have zero weights and are never written out. Every
   lane's gates (rows: input, output, forget gate, cell; 4H of them) sum its input projection,
   its biases b (4H x L) and its recurrent weights r times its previous output: r holds the
   rows in blocks of ROWS (the last may be shorter), block by block, each unit k's weights of
   the block's rows side by side (H x n x L for a block of n rows), so a block streams them in
   order (:func:`lstm_rows` says ROWS; ``LaneEnsemble.pack`` lays them out).
   The input projections: with offsets NULL, gx is T x 4H x L (lane last, in time order); else
   lane s's 4H values of frame f are at gx + offsets[s] + f * strides[s] (every lane's offset
   and stride given, the idle ones any valid row). p: peepholes (3 x H x L: input, output,
   forget gate). out (M x T x 2H): each member's forward outputs, then its backward ones, in
   time order (a backward lane writes frame T-1-t at its step t), as madmom stacks them.
   work: 6H x L floats. */
void lstm_lanes(const float *gx, const long *offsets, const long *strides, long members, const float *b,
                const float *r, const float *p, long T, long H, float *out, float *work) {
    float *h = work, *c = work + H * L, *g = work + 2 * H * L;
    float lanes[L];
    for (long s = 0; s < L; s++) lanes[s] = (s >= members && s < 2 * members) ? 1.0f : 0.0f;
    i16 back = load(lanes) != splat(0.0f);  /* the lanes that run backwards in time */
    memset(work, 0, sizeof(float) * 6 * H * L);
    for (long t = 0; t < T; t++) {
        long forward_row = t, backward_row = T - 1 - t;
        if (offsets) {  /* each lane's 4H values, copied into its place in g */
            for (long s = 0; s < L; s++) {
                const float *row = gx + offsets[s] + (lanes[s] != 0.0f ? backward_row : forward_row) * strides[s];
                for (long j = 0; j < 4 * H; j++) g[j * L + s] = row[j];
            }
        }
        for (long j0 = 0; j0 < 4 * H; j0 += ROWS) {
            long n = 4 * H - j0 < ROWS ? 4 * H - j0 : ROWS;
            const float *rb = r + j0 * H * L;
            v16 sum[ROWS];
            for (long jj = 0; jj < n; jj++) {
                long j = j0 + jj;
                sum[jj] = offsets ? load(g + j * L)
                                  : blend(load(gx + (forward_row * 4 * H + j) * L), load(gx + (backward_row * 4 * H + j) * L), back);
                sum[jj] += load(b + j * L);
            }
            if (n == ROWS) {  /* a whole block: a constant count, so the sums stay in registers */
                for (long k = 0; k < H; k++) {
                    v16 hk = load(h + k * L);
                    for (long jj = 0; jj < ROWS; jj++) sum[jj] += hk * load(rb + (k * ROWS + jj) * L);
                }
            } else {
                for (long k = 0; k < H; k++) {
                    v16 hk = load(h + k * L);
                    for (long jj = 0; jj < n; jj++) sum[jj] += hk * load(rb + (k * n + jj) * L);
                }
            }
            for (long jj = 0; jj < n; jj++) store(g + (j0 + jj) * L, sum[jj]);
        }
        for (long j = 0; j < H; j++) {
            long a = j * L;
            v16 previous = load(c + a);
            v16 in = logistic16(load(g + a) + load(p + a) * previous);
            v16 forget = logistic16(load(g + 2 * H * L + a) + load(p + 2 * H * L + a) * previous);
            v16 state = forget * previous + in * tanh16(load(g + 3 * H * L + a));
            v16 output = logistic16(load(g + H * L + a) + load(p + H * L + a) * state);
            store(c + a, state);
            store(h + a, output * tanh16(state));
        }
        for (long s = 0; s < 2 * members; s++) {
            long backward = s >= members;
            float *o = out + ((s % members) * T + (backward ? backward_row : forward_row)) * 2 * H + backward * H;
            for (long j = 0; j < H; j++) o[j] = h[j * L + s];
        }
    }
}

/* The rows per block of r (lstm_lanes). */
long lstm_rows(void) { return ROWS; }
"""


@functools.cache
def kernel():
    """The compiled ``lstm_lanes`` (ctypes), built first where this machine never tried; None
    where it cannot be built or loaded here (onnxruntime runs the networks then)."""
    from . import native

    path = native.c_library(folder(), LIBRARY, SOURCE)
    if path is None:
        return None
    try:
        library = ctypes.CDLL(str(path))
        function, rows = library.lstm_lanes, library.lstm_rows
    except (OSError, AttributeError) as err:
        native.unloadable(path, err)
        return None
    rows.argtypes, rows.restype = [], ctypes.c_long
    function.rows = int(rows())  # how the recurrent weights are laid out for it (LaneEnsemble.pack)
    function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] + [ctypes.c_void_p] * 3 + [ctypes.c_long] * 2 \
        + [ctypes.c_void_p] * 2
    function.restype = None
    return function


def folder() -> Path:
    """This machine's build: one folder per key (the source, the compiler asked for, the CPU)."""
    from .native import key_folder

    return key_folder("lstm", SOURCE)


class LaneEnsemble:
    """A madmom ensemble of bidirectional LSTM networks run by :func:`kernel`: a drop-in for
    the ``NeuralNetworkEnsemble`` processor (features in, the members' averaged output out).

    Lanes: member m's forward sequence is lane m, its backward one lane M + m (M members, at
    most LANES / 2). The input projections are matrix products (NumPy's BLAS, which reuses the
    weights across frames; projected inside the kernel, each step streamed its lanes' weights
    from the L2 cache and took ~3x longer): the first layer's, the same input for every lane,
    one product laid out as the kernel reads it; a later layer's, the member's own previous
    layer (its forward outputs, then its backward ones, as madmom stacks them), one product per
    member, gathered by the kernel. The kernel writes each member's outputs in that stacked
    layout, which is also what the output layer reads."""

    def __init__(self, networks: list, function):
        self.function, self.members = function, len(networks)
        self.layers = [self.pack([network.layers[index] for network in networks], first=index == 0,
                                 rows=function.rows)
                       for index in range(len(networks[0].layers) - 1)]
        dense = [network.layers[-1] for network in networks]
        self.dense_weights = np.stack([layer.weights for layer in dense]).astype(np.float32)
        self.dense_bias = np.stack([np.ravel(layer.bias) for layer in dense]).astype(np.float32)
        self.dense_activation = _output_activation(dense[0].activation_fn)

    @staticmethod
    def pack(layers: list, first: bool, rows: int) -> dict:
        """One layer's weights in lanes: (..., LANES) arrays, idle lanes zero; the recurrent
        weights in blocks of ``rows`` gate rows, as the kernel streams them."""
        lstms = [layer.fwd_layer for layer in layers] + [layer.bwd_layer for layer in layers]  # lane order

        def lanes_last(per_lane):
            array = np.stack(per_lane)
            padded = np.zeros((LANES,) + array.shape[1:], dtype=np.float32)
            padded[:len(per_lane)] = array
            return np.ascontiguousarray(np.moveaxis(padded, 0, -1))

        weights = lanes_last([np.hstack([getattr(lstm, gate).weights for gate in GATES]).T for lstm in lstms])
        packed = {"hidden": lstms[0].cell.bias.size, "first": first,
                  "bias": lanes_last([np.concatenate([np.ravel(getattr(lstm, gate).bias) for gate in GATES])
                                      for lstm in lstms]),
                  "recurrent": blocked(lanes_last([np.hstack([getattr(lstm, gate).recurrent_weights
                                                              for gate in GATES]).T for lstm in lstms]), rows),
                  "peepholes": lanes_last([np.stack([np.ravel(getattr(lstm, gate).peephole_weights)
                                                     for gate in GATES[:3]]) for lstm in lstms])}
        if first:  # (inputs, 4H x LANES): the product with the features is laid out as the kernel reads it
            packed["projection"] = np.ascontiguousarray(weights.transpose(1, 0, 2).reshape(weights.shape[1], -1))
        else:  # per member (inputs, 8H): its forward lane's 4H columns, then its backward lane's
            members = len(layers)
            packed["projection"] = np.ascontiguousarray(np.stack([
                np.hstack([weights[:, :, m].T, weights[:, :, members + m].T]) for m in range(members)]))
        return packed

    def __call__(self, features: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(features, dtype=np.float32)
        frames, members = len(data), self.members
        previous = offsets = strides = None
        for layer in self.layers:
            hidden = layer["hidden"]
            if layer["first"]:
                projected = data @ layer["projection"]  # frames x 4H x LANES
            else:  # members x frames x 8H: lane (d, m) in m's rows, from column d * 4H
                projected = np.matmul(previous, layer["projection"])
                lane = np.arange(LANES) % (2 * members)  # the idle lanes read lane 0's rows
                offsets = (lane % members) * frames * 8 * hidden + (lane // members) * 4 * hidden
                strides = np.full(LANES, 8 * hidden, dtype=np.int64)
            outputs = np.empty((members, frames, 2 * hidden), dtype=np.float32)
            work = np.empty(6 * hidden * LANES, dtype=np.float32)
            self.function(projected.ctypes.data, _pointer(offsets), _pointer(strides), members,
                          layer["bias"].ctypes.data, layer["recurrent"].ctypes.data, layer["peepholes"].ctypes.data,
                          frames, hidden, outputs.ctypes.data, work.ctypes.data)
            previous = outputs
        total = None
        for member in range(members):  # madmom's average_predictions: the sum in member order, then / M
            prediction = self.dense_activation(previous[member] @ self.dense_weights[member] + self.dense_bias[member])
            prediction = prediction.squeeze()  # as a network's output is
            total = prediction if total is None else total + prediction
        return total / np.float32(members) if members > 1 else total


def blocked(recurrent: np.ndarray, rows: int) -> np.ndarray:
    """Recurrent weights (4H x H x LANES) as the kernel reads them: blocks of ``rows`` gate rows
    (the last may be shorter), each block unit-major (H x rows x LANES), one after the other."""
    blocks = [recurrent[first:first + rows].transpose(1, 0, 2) for first in range(0, len(recurrent), rows)]
    return np.ascontiguousarray(np.concatenate([block.reshape(-1) for block in blocks]))


def _pointer(array) -> int | None:
    return None if array is None else array.ctypes.data


def _softmax(x: np.ndarray) -> np.ndarray:
    out = np.exp(x - x.max(axis=1, keepdims=True))
    out /= out.sum(axis=1, keepdims=True)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (np.tanh(np.float32(0.5) * x) * np.float32(0.5) + np.float32(0.5)).astype(np.float32)


def _output_activation(function):
    return {"softmax": _softmax, "sigmoid": _sigmoid, "linear": lambda x: x}[_name(function)]


def lane_ensemble(ensemble) -> LaneEnsemble | None:
    """``ensemble`` (madmom's ``NeuralNetworkEnsemble`` of numpy networks) on :func:`kernel`,
    or None where its networks are not all stacks of bidirectional LSTMs (sigmoid gates, tanh
    cells) ending in one softmax, sigmoid or linear layer of one shape, or the kernel is not
    built here (then onnxruntime runs them)."""
    children = getattr(ensemble, "processors", None)
    if type(ensemble).__name__ != "NeuralNetworkEnsemble" or not isinstance(children, list) or len(children) != 2:
        return None
    networks = getattr(children[0], "processors", None)
    if not networks or getattr(children[1], "__name__", None) != "average_predictions":
        return None
    if len(networks) > LANES // 2 or not all(_lstm_stack(network) for network in networks) \
            or len({_shape(n) for n in networks}) != 1:
        return None
    function = kernel()
    return None if function is None else LaneEnsemble(list(networks), function)


def _lstm_stack(network) -> bool:
    layers = getattr(network, "layers", None)
    if type(network).__name__ != "NeuralNetwork" or not layers or len(layers) < 2:
        return False
    *recurrent, dense = layers
    for layer in recurrent:
        if type(layer).__name__ != "BidirectionalLayer":
            return False
        for lstm in (layer.fwd_layer, layer.bwd_layer):
            if type(lstm).__name__ != "LSTMLayer" or _name(lstm.activation_fn) != "tanh" \
                    or _name(lstm.cell.activation_fn) != "tanh" \
                    or any(_name(getattr(lstm, gate).activation_fn) != "sigmoid" for gate in GATES[:3]):
                return False
    return type(dense).__name__ == "FeedForwardLayer" and _name(dense.activation_fn) in ("softmax", "sigmoid", "linear")


def _name(function) -> str:
    return getattr(function, "__name__", "") if function is not None else "linear"


def _shape(network) -> tuple:
    """Every weight's shape: the members of one kernel call must agree."""
    shapes = []
    for layer in network.layers[:-1]:
        for lstm in (layer.fwd_layer, layer.bwd_layer):
            shapes += [getattr(lstm, gate).weights.shape for gate in GATES]
    return tuple(shapes) + (network.layers[-1].weights.shape,)
