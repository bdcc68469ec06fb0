"""Viterbi decoding for madmom's beat and bar HMMs: several times faster than a generic
sparse Viterbi, in memory that does not grow with the states, and the same path.

madmom's own ``HiddenMarkovModel.viterbi`` keeps a back-pointer for every state at every
frame: 5,617 states x 4 bytes per frame at 100 fps is 8 GB for 60 minutes. In the beat and
bar state spaces almost every state has exactly one predecessor, the state before it, with
probability 1: the states form *chains* (one beat at one tempo), and only each chain's first
state (a *head*) chooses among predecessors (the last states of the chains it may follow).
So:

- only heads need back-pointers, one byte each (an index into the head's predecessors):
  memory per frame is one byte per head (240 for 4/4 bars), not four per state;
- a chain is kept as a ring buffer: moving every state's score one position along the chain
  is a change of the ring's offset, not a copy, and each frame adds the frame's observation
  log density to contiguous runs of the ring (vectorized), then writes the heads.

The arithmetic is the generic recursion's, operation for operation (a chain state's score is
``previous + log(1) + density``, a head's the first best of ``previous + log p + density``),
so the path and its probability are madmom's exactly; the tests compare them.
"""

from __future__ import annotations

import threading

import numpy as np

MAX_PREDECESSORS = 255  # a head's choice is kept in one byte


def viterbi(hmm, observations: np.ndarray) -> tuple[np.ndarray, float]:
    """(best state path, its log probability), as ``hmm.viterbi(observations)`` returns."""
    tm, om = hmm.transition_model, hmm.observation_model
    rings = chain_rings(tm.states, tm.pointers, tm.log_probabilities)
    if rings is None:
        return hmm.viterbi(observations)  # not a beat state space: fall back to madmom's
    first, length = rings
    densities = np.ascontiguousarray(om.log_densities(observations), dtype=np.float64)
    density_of = om.pointers.astype(np.int64)
    run_ring, run_start, run_stop, run_column = density_runs(first, length, density_of)
    with np.errstate(divide="ignore"):
        log_initial = np.log(hmm.initial_distribution).astype(np.float64)
    path, log_probability = _kernel()(
        tm.states.astype(np.int64), tm.pointers.astype(np.int64), tm.log_probabilities.astype(np.float64),
        first, length, run_ring, run_start, run_stop, run_column, density_of, log_initial, densities)
    if not np.isfinite(log_probability):
        return np.empty(0, dtype=np.uint32), log_probability
    return path, log_probability


def chain_rings(prev_states: np.ndarray, pointers: np.ndarray, log_probs: np.ndarray):
    """(first state, length) of each chain, or None where the model is not made of chains
    whose heads follow only the chains' last states (or a head has more predecessors than a
    byte can index): then the generic decode is the right one."""
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
    last = set((heads + length - 1).tolist())
    for head in heads:
        if not last.issuperset(prev_states[pointers[head]: pointers[head + 1]].tolist()):
            return None
    return heads.astype(np.int64), length.astype(np.int64)


def density_runs(first: np.ndarray, length: np.ndarray, density_of: np.ndarray):
    """Runs of consecutive chain positions (after the head) that share an observation
    density column: (ring, first position, position after the last, column) each."""
    rings, starts, stops, columns = [], [], [], []
    for ring, (head, size) in enumerate(zip(first, length)):
        column = density_of[head + 1: head + size]
        if not len(column):
            continue
        edges = np.flatnonzero(np.diff(column)) + 1
        for a, b in zip(np.append(0, edges), np.append(edges, len(column))):
            rings.append(ring)
            starts.append(a + 1)
            stops.append(b + 1)
            columns.append(column[a])
    return (np.array(rings, np.int64), np.array(starts, np.int64), np.array(stops, np.int64),
            np.array(columns, np.int64))


_compiled = None
_compiling = threading.Lock()  # the 3/4 and 4/4 decodes start in two threads


def _kernel():
    """The numba-compiled recursion: compiled once per machine, not once per worker slot.

    Each worker slot has a numba cache of its own (librosa's ~50 functions compiling into
    one cache from two processes corrupted it), so this kernel, cached there, compiled ~4 s
    in every slot: the first run paid it, and so did the next run whose merge landed on
    the other worker. It is cached in a folder the slots share instead, compiled (or loaded)
    for its one signature while holding a file lock, so one worker compiles and the others
    load what it wrote. Later calls use that signature only (``disable_compile``)."""
    global _compiled
    with _compiling:
        if _compiled is None:
            _compiled = _compile_shared()
    return _compiled


def prepare_in_background() -> None:
    """Compile (or load) the kernel in a thread while the worker analyzes its first chunks,
    so that a machine's first run does not wait ~4 s for it at the merge. Not a daemon: a
    process that ends sooner waits for the compile rather than leaving LLVM mid-way. A
    failure here is left for the decode's own call to raise."""

    def prepare():
        try:
            _kernel()
        except Exception:  # noqa: BLE001 - the decode calls _kernel() again and reports it
            pass

    threading.Thread(target=prepare, name="viterbi-compile").start()


def _compile_shared():
    """The kernel's dispatcher (:func:`_define`) compiled for the one signature the decode
    calls it with, in the shared cache folder while holding its lock (the slot's own cache
    on Windows)."""
    from numba import config, types

    vector, values = types.int64[::1], types.float64[::1]
    signature = (vector, vector, values, vector, vector, vector, vector, vector, vector, vector, values,
                 types.float64[:, ::1])
    try:
        import fcntl
    except ImportError:
        dispatcher = _define()
        dispatcher.compile(signature)
    else:
        from mirflow.scheduler.executors import numba_shared_cache

        folder = numba_shared_cache()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "compile.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            saved, config.CACHE_DIR = config.CACHE_DIR, str(folder)  # read when the dispatcher is made
            try:
                dispatcher = _define()
            finally:
                config.CACHE_DIR = saved
            dispatcher.compile(signature)  # loads what another worker compiled, if it did
    dispatcher.disable_compile()  # a call with other types fails instead of compiling unlocked
    return dispatcher


def _define():
    """The recursion as a numba dispatcher (made with the cache folder in force at the time)."""
    from numba import njit

    @njit(cache=True, nogil=True)
    def decode(prev_states, pointers, log_probs, first, length, run_ring, run_start, run_stop, run_column,
               density_of, log_initial, densities):
        states = len(pointers) - 1
        rings = len(first)
        frames = densities.shape[0]
        ring_of = np.empty(states, np.int64)
        for ring in range(rings):
            ring_of[first[ring]: first[ring] + length[ring]] = ring
        pred_ring = ring_of[prev_states]  # a head's predecessors are the last states of rings
        multi = np.full(rings, -1, np.int64)
        count = 0
        for ring in range(rings):
            head = first[ring]
            if pointers[head + 1] - pointers[head] > 1:
                multi[ring] = count
                count += 1
        back = np.zeros((frames, max(count, 1)), np.uint8)
        # State (ring r, position p) at frame t lives in slot first[r] + (p + offset[r]) % length[r],
        # offset[r] = -t mod length[r]. Frame -1 holds the initial distribution.
        offset = np.empty(rings, np.int64)
        scores = np.empty(states)
        for ring in range(rings):
            offset[ring] = 1 % length[ring]
            for position in range(length[ring]):
                scores[first[ring] + (position + offset[ring]) % length[ring]] = log_initial[first[ring] + position]
        heads = np.empty(rings)
        tails = np.empty(rings)
        for frame in range(frames):
            for ring in range(rings):
                offset[ring] = offset[ring] - 1 if offset[ring] > 0 else length[ring] - 1
            # A ring's last state at the previous frame sits where its head goes now.
            for ring in range(rings):
                tails[ring] = scores[first[ring] + offset[ring]]
            for ring in range(rings):
                head = first[ring]
                density = densities[frame, density_of[head]]
                best = -np.inf
                choice = 0
                start = pointers[head]
                for pointer in range(start, pointers[head + 1]):  # selects, not branches; the first best wins
                    value = tails[pred_ring[pointer]] + log_probs[pointer] + density
                    better = value > best
                    choice = pointer - start if better else choice
                    best = value if better else best
                heads[ring] = best
                if multi[ring] >= 0:
                    back[frame, multi[ring]] = choice
            # Every other state moved one place along its ring; position 0 is the head's slot.
            for ring in range(rings):
                scores[first[ring] + offset[ring]] = heads[ring]
            for run in range(len(run_ring)):
                ring = run_ring[run]
                base, size = first[ring], length[ring]
                density = densities[frame, run_column[run]]
                start = run_start[run] + offset[ring]
                stop = run_stop[run] + offset[ring]
                if start >= size:
                    start -= size
                    stop -= size
                if stop <= size:
                    for slot in range(base + start, base + stop):
                        scores[slot] = scores[slot] + 0.0 + density
                else:
                    for slot in range(base + start, base + size):
                        scores[slot] = scores[slot] + 0.0 + density
                    for slot in range(base, base + stop - size):
                        scores[slot] = scores[slot] + 0.0 + density
        final = np.empty(states)
        for ring in range(rings):
            for position in range(length[ring]):
                final[first[ring] + position] = scores[first[ring] + (position + offset[ring]) % length[ring]]
        state = int(np.argmax(final))
        log_probability = final[state]
        path = np.empty(frames, np.uint32)
        path[frames - 1] = state
        for frame in range(frames - 1, 0, -1):
            ring = ring_of[state]
            offset_in = back[frame, multi[ring]] if state == first[ring] and multi[ring] >= 0 else 0
            state = prev_states[pointers[state] + offset_in]
            path[frame - 1] = state
        return path, log_probability

    return decode
