"""Viterbi decoding for madmom's beat and bar HMMs: several times faster than a generic
sparse Viterbi, in memory that does not grow with the states, and the same path.

madmom's own ``HiddenMarkovModel.viterbi`` keeps a back-pointer for every state at every
frame: 5,617 states x 4 bytes per frame at 100 fps is 8 GB for 60 minutes. In the beat and
bar state spaces almost every state has exactly one predecessor, the state before it, with
probability 1: the states form *chains* (one beat at one tempo), and only each chain's first
state (a *head*) chooses among predecessors (the last states of the chains it may follow:
a run of consecutive chains, the neighbouring tempi). So:

- only heads need back-pointers, one byte each (an index into the head's predecessors):
  memory per frame is one byte per head (240 for 4/4 bars), not four per state;
- every other state's new score is its predecessor's (the state before it) plus the frame's
  observation log density: one pass over the scores, shifted by one place, with the density
  picked per state among the model's (at most three) columns, which the compiler vectorizes;
- each head takes the first best of its predecessors (the chains' last scores, contiguous),
  kept in four independent lanes so that no comparison waits for the one before it.

The arithmetic is the generic recursion's, operation for operation (a chain state's score is
``previous + log(1) + density``, a head's the first best of ``previous + log p + density``),
so the path and its probability are madmom's exactly; the tests compare them.
"""

from __future__ import annotations

import threading
import zlib
from typing import NamedTuple

import numpy as np

MAX_PREDECESSORS = 255  # a head's choice is kept in one byte
DENSITY_COLUMNS = 3  # columns in order: beat models (none, beat), bar models (none, beat, downbeat)


class ChainModel(NamedTuple):
    """An HMM laid out for the kernel: the transition model's arrays, its chains (first state,
    length, first predecessor chain), per head the column of its back-pointers (-1: a head
    with one predecessor keeps none), per state its chain and its density column, and the
    initial distribution's logarithm."""

    prev_states: np.ndarray
    pointers: np.ndarray
    log_probs: np.ndarray
    first: np.ndarray
    length: np.ndarray
    band: np.ndarray
    chosen: np.ndarray
    chain_of: np.ndarray
    column: np.ndarray
    log_initial: np.ndarray
    columns: int  # how many back-pointer columns a frame has (at least one)


def chain_model(hmm) -> ChainModel | None:
    """``hmm`` laid out for the kernel, or None where it is not a beat or bar state space (then
    madmom's own Viterbi is the right one)."""
    tm, om = hmm.transition_model, hmm.observation_model
    chains = chain_layout(tm.states, tm.pointers, tm.log_probabilities)
    if chains is None:
        return None
    first, length, band = chains
    pointers = tm.pointers.astype(np.int64)
    multi = np.diff(pointers)[first] > 1
    chosen = np.where(multi, np.cumsum(multi) - 1, -1).astype(np.int64)
    chain_of = np.repeat(np.arange(len(first), dtype=np.int64), length)
    with np.errstate(divide="ignore"):
        log_initial = np.log(hmm.initial_distribution).astype(np.float64)
    return ChainModel(tm.states.astype(np.int64), pointers, tm.log_probabilities.astype(np.float64), first, length,
                      band, chosen, chain_of, om.pointers.astype(np.int32), log_initial, max(int(multi.sum()), 1))


def log_densities(hmm, observations: np.ndarray) -> np.ndarray | None:
    """The observation model's log densities per frame, padded to DENSITY_COLUMNS columns; None
    where the model has more columns than the kernel picks from. Frame by frame the same
    numbers whether the observations are the whole track or a stretch of it (madmom computes
    them element by element)."""
    densities = np.ascontiguousarray(hmm.observation_model.log_densities(observations), dtype=np.float64)
    if densities.ndim != 2 or densities.shape[1] > DENSITY_COLUMNS:
        return None
    return np.pad(densities, ((0, 0), (0, DENSITY_COLUMNS - densities.shape[1])))


def viterbi(hmm, observations: np.ndarray) -> tuple[np.ndarray, float]:
    """(best state path, its log probability), as ``hmm.viterbi(observations)`` returns: the
    forward pass over every frame, then the backtrace."""
    model = chain_model(hmm)
    densities = log_densities(hmm, observations) if model is not None else None
    if densities is None:
        return hmm.viterbi(observations)  # not a beat state space: fall back to madmom's
    scores, back = forward(model, model.log_initial, densities)
    return backtrace(model, [back], scores)


def forward(model: ChainModel, scores: np.ndarray, densities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forward recursion over ``densities``' frames from ``scores`` (the scores after the
    frame before them; ``model.log_initial`` before the first frame): the scores after its last
    frame, and the frames' back-pointers (frames x ``model.columns``, one byte each).

    Called on consecutive stretches of frames, each with the scores the one before returned,
    it does the whole-track pass's arithmetic frame for frame: the same scores, the same
    back-pointers (how ``madmom_fast`` folds a track's decode chunk by chunk)."""
    return _kernel().forward(model.prev_states, model.pointers, model.log_probs, model.first, model.length,
                             model.band, model.chosen, model.column, np.ascontiguousarray(scores, dtype=np.float64),
                             np.ascontiguousarray(densities, dtype=np.float64), model.columns)


class Packed(NamedTuple):
    """A stretch's back-pointers compressed (zlib's fastest level, ~4x smaller on the bar
    models): what a fold keeps for the merge, held and sent until then (``pack``, ``unpack``)."""

    shape: tuple
    data: bytes


def pack(back: np.ndarray) -> Packed:
    return Packed(tuple(back.shape), zlib.compress(np.ascontiguousarray(back, dtype=np.uint8).tobytes(), 1))


def unpack(packed: Packed) -> np.ndarray:
    return np.frombuffer(zlib.decompress(packed.data), dtype=np.uint8).reshape(packed.shape).copy()  # writable


def backtrace(model: ChainModel, blocks: list, scores: np.ndarray) -> tuple[np.ndarray, float]:
    """(best state path, its log probability) from the final ``scores`` and the back-pointer
    ``blocks`` of every frame, in order (what :func:`forward` returned per stretch, or that
    :func:`pack`-ed: unpacked one at a time); an impossible track (no finite score) has an
    empty path."""
    state = int(np.argmax(scores))
    log_probability = float(scores[state])
    if not np.isfinite(log_probability):
        return np.empty(0, dtype=np.uint32), log_probability
    frames = sum(block.shape[0] for block in blocks)
    path = np.empty(frames, np.uint32)
    trace = _kernel().trace
    stop = frames
    for block in reversed(blocks):
        if block.shape[0]:
            back = unpack(block) if isinstance(block, Packed) else np.ascontiguousarray(block, dtype=np.uint8)
            state = trace(model.prev_states, model.pointers, model.first, model.chosen, model.chain_of, back, state,
                          path[stop - len(back):stop])
            stop -= len(back)
    return path, log_probability


def chain_layout(prev_states: np.ndarray, pointers: np.ndarray, log_probs: np.ndarray):
    """(first state, length, first predecessor chain) of each chain, or None where the model
    is not made of chains whose heads follow a run of consecutive chains' last states, in
    order (or a head has more predecessors than a byte can index): then the generic decode
    is the right one."""
    counts = np.diff(pointers)
    states = np.arange(len(counts))
    single = counts == 1
    follows = np.zeros(len(counts), dtype=bool)
    follows[single] = (prev_states[pointers[:-1][single]] == states[single] - 1) & (log_probs[pointers[:-1][single]] == 0)
    follows[0] = False
    heads = np.flatnonzero(~follows)
    if (counts == 0).any() or counts[heads].max(initial=0) > MAX_PREDECESSORS:
        return None
    length = np.diff(np.append(heads, len(counts)))
    chain_of_last = np.full(len(counts), -1)
    chain_of_last[heads + length - 1] = np.arange(len(heads))
    band = np.empty(len(heads), dtype=np.int64)
    for chain, head in enumerate(heads):
        chains = chain_of_last[prev_states[pointers[head]: pointers[head + 1]]]
        if (chains < 0).any() or (np.diff(chains) != 1).any():
            return None
        band[chain] = chains[0]
    return heads.astype(np.int64), length.astype(np.int64), band


_compiled = None
_compiling = threading.Lock()  # the 3/4 and 4/4 decodes start in two threads


class Kernels(NamedTuple):
    """The compiled halves of the recursion (:func:`_define`)."""

    forward: object
    trace: object


def _kernel() -> Kernels:
    """The compiled recursion (forward pass and backtrace), once per process: built in C for
    this machine (:mod:`.native`: loads without numba), else numba's JIT compiled
    once per machine (:func:`_compile_shared`)."""
    global _compiled
    with _compiling:
        if _compiled is None:
            from . import native

            built = native.kernels()
            _compiled = Kernels(*built) if built is not None else _compile_shared()
    return _compiled


def prepare_in_background() -> None:
    """Build the kernels in a thread while the worker analyzes its first chunks, when this
    machine has not built them yet (~0.2 s in C; ~4 s for numba's JIT where there is no C
    compiler, which the first run would otherwise wait for at the merge). Once they are built, loading them is left to the first decode that needs it (a
    millisecond ahead of time; with numba's JIT ~0.6 s of CPU, which a background load in every
    worker took from the chunks on two cores). Not a daemon: a process that ends sooner waits
    for the build rather than leaving a compiler mid-way. A failure here is left for the
    decode's own call to raise."""
    if compiled_here():
        return

    def prepare():
        try:
            _kernel()
        except Exception:  # noqa: BLE001 - the decode calls _kernel() again and reports it
            pass

    threading.Thread(target=prepare, name="viterbi-compile").start()


def compiled_here() -> bool:
    """Whether the kernels need no compiling here: built in C (:mod:`.native`), or, where
    that build failed, in numba's shared cache, written after this module's source last changed (numba's index files;
    a stale one only costs a compile at the first decode)."""
    from pathlib import Path

    from mirflow.caches import numba_shared_cache

    from . import native

    if native.ready():
        return True
    if not native.failed():
        return False  # never tried here: build it
    source = Path(__file__).stat().st_mtime
    indexes = {name: False for name in ("viterbi_forward", "viterbi_trace")}
    for index in numba_shared_cache().glob("*/viterbi.*.nbi"):
        for name in indexes:
            if f".{name}-" in index.name and index.stat().st_mtime >= source:
                indexes[name] = True
    return all(indexes.values())


def _compile_shared() -> Kernels:
    """The kernels (:func:`_define`) compiled by numba's JIT for the one signature each is called
    with, in the shared cache folder while holding its lock (the slot's own cache on Windows):
    where the C build (:mod:`.native`) cannot be made.

    Each worker slot has a numba cache of its own (librosa's ~50 functions compiling into
    one cache from two processes corrupted it), so this kernel, cached there, compiled ~4 s
    in every slot: the first run paid it, and so did the next run whose merge landed on
    the other worker. It is cached in a folder the slots share instead, compiled (or loaded)
    for its one signature while holding a file lock, so one worker compiles and the others
    load what it wrote. Later calls use those signatures only (``disable_compile``)."""
    from numba import config, types

    vector, values, back = types.int64[::1], types.float64[::1], types.uint8[:, ::1]
    signatures = Kernels(
        forward=(vector, vector, values, vector, vector, vector, vector, types.int32[::1], values,
                 types.float64[:, ::1], types.int64),
        trace=(vector, vector, vector, vector, vector, back, types.int64, types.uint32[::1]))
    try:
        import fcntl
    except ImportError:
        kernels = _define()
        for kernel, signature in zip(kernels, signatures):
            kernel.compile(signature)
    else:
        from mirflow.caches import numba_shared_cache

        folder = numba_shared_cache()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "compile.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            saved, config.CACHE_DIR = config.CACHE_DIR, str(folder)  # read when the dispatchers are made
            try:
                kernels = _define()
            finally:
                config.CACHE_DIR = saved
            for kernel, signature in zip(kernels, signatures):
                kernel.compile(signature)  # loads what another worker compiled, if it did
    for kernel in kernels:
        kernel.disable_compile()  # a call with other types fails instead of compiling unlocked
    return kernels


def _define() -> Kernels:
    """The recursion as numba dispatchers (made with the cache folder in force at the time):
    ``forward`` over a stretch of frames, ``trace`` back through one stretch's back-pointers."""
    from numba import njit

    return Kernels(njit(cache=True, nogil=True)(viterbi_forward), njit(cache=True, nogil=True)(viterbi_trace))


# The kernels' source: plain Python over arrays, compiled by numba (``_define``) where the C
# build (:mod:`.native`, the same recursion line for line but for the predecessor search, in
# eight vector lanes there, which finds the same first best) cannot be made; called uncompiled
# it is the same recursion, only far slower. A change here is a change there too.


def viterbi_forward(prev_states, pointers, log_probs, first, length, band, chosen, column, initial, densities,
                    columns):
    states = len(pointers) - 1
    chains = len(first)
    frames = densities.shape[0]
    back = np.zeros((frames, columns), np.uint8)
    scores = initial.copy()  # the scores after the frame before the first
    shifted = np.empty(states)
    tails = np.empty(chains)
    for frame in range(frames):
        none, beat, down = densities[frame, 0], densities[frame, 1], densities[frame, 2]
        for chain in range(chains):
            tails[chain] = scores[first[chain] + length[chain] - 1]
        # Every state moves one place along its chain (a head's value is replaced below).
        for state in range(1, states):
            c = column[state]
            shifted[state] = scores[state - 1] + 0.0 + (none if c == 0 else (beat if c == 1 else down))
        for chain in range(chains):
            head = first[chain]
            density = densities[frame, column[head]]
            start = pointers[head]
            size = pointers[head + 1] - start
            base = band[chain]
            # First best of the predecessors, in four lanes (k, k+1, k+2, k+3 apart).
            b0 = b1 = b2 = b3 = -np.inf
            c0 = c1 = c2 = c3 = 0
            k = 0
            while k + 4 <= size:
                v0 = tails[base + k] + log_probs[start + k] + density
                v1 = tails[base + k + 1] + log_probs[start + k + 1] + density
                v2 = tails[base + k + 2] + log_probs[start + k + 2] + density
                v3 = tails[base + k + 3] + log_probs[start + k + 3] + density
                u0, u1, u2, u3 = v0 > b0, v1 > b1, v2 > b2, v3 > b3
                c0 = k if u0 else c0
                c1 = k + 1 if u1 else c1
                c2 = k + 2 if u2 else c2
                c3 = k + 3 if u3 else c3
                b0 = v0 if u0 else b0
                b1 = v1 if u1 else b1
                b2 = v2 if u2 else b2
                b3 = v3 if u3 else b3
                k += 4
            while k < size:
                v0 = tails[base + k] + log_probs[start + k] + density
                u0 = v0 > b0
                c0 = k if u0 else c0
                b0 = v0 if u0 else b0
                k += 1
            # The lanes' bests: the larger, and of equal ones the earlier predecessor.
            if b1 > b0 or (b1 == b0 and c1 < c0):
                b0, c0 = b1, c1
            if b2 > b0 or (b2 == b0 and c2 < c0):
                b0, c0 = b2, c2
            if b3 > b0 or (b3 == b0 and c3 < c0):
                b0, c0 = b3, c3
            shifted[head] = b0
            if chosen[chain] >= 0:
                back[frame, chosen[chain]] = c0
        scores, shifted = shifted, scores
    return scores, back


def viterbi_trace(prev_states, pointers, first, chosen, chain_of, back, state, path):
    # ``state`` is the path's state at the stretch's last frame; returns the state at the
    # frame before its first (the previous stretch's last).
    frames = back.shape[0]
    path[frames - 1] = state
    for frame in range(frames - 1, -1, -1):
        chain = chain_of[state]
        offset_in = back[frame, chosen[chain]] if state == first[chain] and chosen[chain] >= 0 else 0
        state = prev_states[pointers[state] + offset_in]
        if frame > 0:
            path[frame - 1] = state
    return state
