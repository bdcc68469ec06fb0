"""Viterbi decoding for madmom's beat HMMs in memory that does not grow with the states.

madmom's own ``HiddenMarkovModel.viterbi`` keeps a back-pointer for every state at
every frame: 5,617 states x 4 bytes per frame at 100 fps is 8 GB for 60 minutes. In the
beat state space all but a few dozen states (the first position of each tempo) have a
single predecessor, so only those need back-pointers, and one byte each suffices
(an index into the state's predecessors). Same recursion, same tie-breaking (first
best predecessor wins), same path; memory per frame is ~80 bytes.
"""

from __future__ import annotations

import numpy as np


def viterbi(hmm, observations: np.ndarray) -> tuple[np.ndarray, float]:
    """(best state path, its log probability), as ``hmm.viterbi(observations)`` returns."""
    tm, om = hmm.transition_model, hmm.observation_model
    densities = np.ascontiguousarray(om.log_densities(observations), dtype=np.float64)
    counts = np.diff(tm.pointers)
    if counts.max() > 255:
        return hmm.viterbi(observations)  # not a beat state space: fall back to madmom's
    with np.errstate(divide="ignore"):
        log_initial = np.log(hmm.initial_distribution)
    path, log_probability = _decode(
        tm.states.astype(np.int64), tm.pointers.astype(np.int64), tm.log_probabilities.astype(np.float64),
        om.pointers.astype(np.int64), log_initial.astype(np.float64), densities)
    if not np.isfinite(log_probability):
        return np.empty(0, dtype=np.uint32), log_probability
    return path, log_probability


def _decode(prev_states, pointers, log_probs, density_of, log_initial, densities):
    return _kernel()(prev_states, pointers, log_probs, density_of, log_initial, densities)


_compiled = None


def _kernel():
    """The numba-compiled recursion (compiled once per process, cached on disk)."""
    global _compiled
    if _compiled is None:
        from numba import njit

        @njit(cache=True, nogil=True)
        def decode(prev_states, pointers, log_probs, density_of, log_initial, densities):
            states = len(pointers) - 1
            frames = densities.shape[0]
            multi = np.full(states, -1, np.int64)
            count = 0
            for state in range(states):
                if pointers[state + 1] - pointers[state] > 1:
                    multi[state] = count
                    count += 1
            back = np.zeros((frames, max(count, 1)), np.uint8)
            previous = log_initial.copy()
            current = np.empty(states)
            for frame in range(frames):
                for state in range(states):
                    best = -np.inf
                    choice = 0
                    density = densities[frame, density_of[state]]
                    for pointer in range(pointers[state], pointers[state + 1]):
                        value = previous[prev_states[pointer]] + log_probs[pointer] + density
                        if value > best:
                            best = value
                            choice = pointer - pointers[state]
                    current[state] = best
                    if multi[state] >= 0:
                        back[frame, multi[state]] = choice
                previous, current = current, previous
            state = int(np.argmax(previous))
            log_probability = previous[state]
            path = np.empty(frames, np.uint32)
            path[frames - 1] = state
            for frame in range(frames - 1, 0, -1):
                offset = back[frame, multi[state]] if multi[state] >= 0 else 0
                state = prev_states[pointers[state] + offset]
                path[frame - 1] = state
            return path, log_probability

        _compiled = decode
    return _compiled
