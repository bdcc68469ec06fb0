"""The Viterbi kernels (:mod:`.viterbi`) in C, compiled once per machine with the system's C
compiler into a small shared library in the user's cache, so that a worker loads them in a
millisecond instead of importing numba (~0.7 s of CPU per worker that decodes).

The C is :func:`.viterbi.viterbi_forward` and :func:`.viterbi.viterbi_trace` line for line
but for the search of a chain head's predecessors, which runs in eight vector lanes instead of
four scalar ones and finds the same first best: additions and comparisons of doubles in the
same order, no multiplications to contract into fused ones and no ``-ffast-math``, so the
scores, back-pointers and paths are numba's JIT's to the bit (the tests compare them, ties
included) and madmom's (so are those). It builds in ~0.2 s; until 3
December 2026 numba's ahead-of-time compiler (``numba.pycc``, deprecated) built an extension
module from the Python source, ~4 s on a first run.

Built the first time a worker needs the kernels, in a child process under a file lock
(:func:`build`), keyed by the C source, the compiler and the CPU (``-march=native``). Where the
build fails (no C compiler), the failure is kept beside it (tried once per key, not per run)
and the kernels come from numba's JIT (:func:`.viterbi._compile_shared`). The LSTM kernel
(:mod:`.ensemble`) is built the same way (:func:`c_library`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

LIBRARY = "mirflow_viterbi.so"
BUILD_TIMEOUT = 600  # seconds; a build takes well under a second
# A build killed by these was stopped from outside, not a failure (Windows lacks some of them).
STOPPED = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGKILL", "SIGHUP") if hasattr(signal, name)}

SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Eight doubles and eight 64-bit integers, the compiler's vector types (GCC and Clang): one
   AVX-512 register each, or two AVX or four SSE/NEON ones. */
typedef double v8d __attribute__((vector_size(64)));
typedef long long v8l __attribute__((vector_size(64)));
static const v8l LANES = {0, 1, 2, 3, 4, 5, 6, 7};
#define MINUS_INF ((v8d){-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY})
/* Lane by lane, a where `up` is set (all ones), else b. */
#define CHOOSE(up, a, b) ((v8d)(((v8l)(a) & (up)) | ((v8l)(b) & ~(up))))
#if defined(__clang__)
#define PERMUTE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define PERMUTE(v, ...) __builtin_shuffle(v, (v8l){__VA_ARGS__})
#endif
/* Each lane's best and index against those of the lane the permutation brings to it. */
#define FOLD_LANES(best, index, ...) do { \
        v8d other_ = PERMUTE(best, __VA_ARGS__); \
        v8l at_ = PERMUTE(index, __VA_ARGS__); \
        v8l up_ = (other_ > best) | ((other_ == best) & (at_ < index)); \
        best = CHOOSE(up_, other_, best); \
        index = (at_ & up_) | (index & ~up_); \
    } while (0)

/* viterbi.viterbi_forward: the recursion over `frames` frames of `densities` (frames x 3),
   from `scores` (the scores after the frame before them), which it leaves holding the scores
   after the last frame; `back` (frames x columns) gets each frame's back-pointers. `shifted`
   (states) and `tails` (chains) are work space. */
void viterbi_forward(const int64_t *prev_states, const int64_t *pointers, const double *log_probs,
                     const int64_t *first, const int64_t *length, const int64_t *band, const int64_t *chosen,
                     const int32_t *column, long states, long chains, long frames, long columns,
                     const double *densities, double *scores, double *shifted, double *tails, uint8_t *back) {
    double *now = scores, *next = shifted;
    (void)prev_states;
    for (long frame = 0; frame < frames; frame++) {
        const double *d = densities + frame * 3;
        double none = d[0], beat = d[1], down = d[2];
        for (long chain = 0; chain < chains; chain++) tails[chain] = now[first[chain] + length[chain] - 1];
        /* Every state moves one place along its chain (a head's value is replaced below). */
        for (long state = 1; state < states; state++) {
            int32_t c = column[state];
            next[state] = now[state - 1] + 0.0 + (c == 0 ? none : (c == 1 ? beat : down));
        }
        for (long chain = 0; chain < chains; chain++) {
            long head = first[chain];
            double density = d[column[head]];
            long start = pointers[head], size = pointers[head + 1] - start, base = band[chain];
            /* First best of the predecessors, in eight lanes (lane j: predecessors j, j + 8,
               j + 16, ...): each lane keeps its first best, so the earliest of the lanes' equal bests is the
               first best of all, as the Python's four lanes find it. The lanes are compared
               and chosen with vector operations, without branches: the four lanes reduced
               with branches made the pass ~1.5x slower (~420 chain heads a frame in the two
               bar models). */
            v8d dv = {density, density, density, density, density, density, density, density};
            v8d best = MINUS_INF, t, p;
            v8l index = {0, 0, 0, 0, 0, 0, 0, 0};
            for (long k = 0; k < size; k += 8) {
                if (k + 8 <= size) {
                    memcpy(&t, tails + base + k, sizeof t);
                    memcpy(&p, log_probs + start + k, sizeof p);
                } else {  /* the last few: lanes past the end hold -inf, never a best */
                    for (int j = 0; j < 8; j++) {  /* all eight: a loop to size - k made the pass ~15 % slower */
                        t[j] = k + j < size ? tails[base + k + j] : -INFINITY;
                        p[j] = k + j < size ? log_probs[start + k + j] : 0.0;
                    }
                }
                v8d v = t + p + dv;
                v8l up = v > best;
                best = CHOOSE(up, v, best);
                index = ((LANES + k) & up) | (index & ~up);
            }
            /* The lanes' bests: the larger, and of equal ones the earlier predecessor (each lane
               against the one 4, 2 and 1 away, so that every lane ends holding the answer). */
            FOLD_LANES(best, index, 4, 5, 6, 7, 0, 1, 2, 3);
            FOLD_LANES(best, index, 2, 3, 0, 1, 6, 7, 4, 5);
            FOLD_LANES(best, index, 1, 0, 3, 2, 5, 4, 7, 6);
            next[head] = best[0];
            if (chosen[chain] >= 0) back[frame * columns + chosen[chain]] = (uint8_t)index[0];
        }
        double *swap = now; now = next; next = swap;
    }
    if (now != scores) memcpy(scores, now, sizeof(double) * states);
}

/* viterbi.viterbi_trace: back through one stretch's `frames` rows of back-pointers from
   `state` (the path's state at its last frame), writing `path`; returns the state at the
   frame before its first. */
long viterbi_trace(const int64_t *prev_states, const int64_t *pointers, const int64_t *first, const int64_t *chosen,
                   const int64_t *chain_of, const uint8_t *back, long frames, long columns, long state,
                   uint32_t *path) {
    path[frames - 1] = (uint32_t)state;
    for (long frame = frames - 1; frame >= 0; frame--) {
        long chain = chain_of[state];
        long offset = (state == first[chain] && chosen[chain] >= 0) ? back[frame * columns + chosen[chain]] : 0;
        state = prev_states[pointers[state] + offset];
        if (frame > 0) path[frame - 1] = (uint32_t)state;
    }
    return state;
}
"""


def folder() -> Path:
    """This machine's build: one folder per key (the source, the compiler, the CPU)."""
    return key_folder("native", SOURCE)


def key_folder(kind: str, source: str) -> Path:
    """``~/.cache/mirflow/KIND/KEY``: what a C library's build depends on, its source, the
    compiler asked for, the platform and the CPU (it is built with ``-march=native``: code
    built for one CPU's features must not be loaded on another sharing the cache)."""
    from mirflow.caches import cache_root

    parts = [source.encode(), " ".join(compiler()).encode(), sys.platform.encode(), platform.machine().encode(),
             cpu_identity().encode()]
    return cache_root() / kind / hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]


def compiler() -> list[str]:
    """The C compiler: ``CC`` as the user set it, else the one Python was built with, else ``cc``."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def c_library(where: Path, name: str, source: str) -> Path | None:
    """``where/name`` built from ``source`` (optimized for this CPU's vector instructions,
    ``errno`` left alone by the math) where this key never tried; None where the build failed."""
    def command(temporary: Path) -> list[str]:
        written = temporary / f"{Path(name).stem}.c"
        written.write_text(source)
        return [*compiler(), "-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-o",
                str(temporary / name), str(written)]

    return built(where, name, command)


def cpu_identity() -> str:
    """The CPU's model and instruction-set flags: code built for one CPU's features must not
    be loaded on another (a cache folder shared by machines of a cluster, say)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(wanted))  # the first core's lines (the others repeat them)


def ready() -> bool:
    """Whether this machine has the built library (the kernels need no compiling)."""
    return (folder() / LIBRARY).exists()


def failed() -> bool:
    """Whether the build was tried for this key and failed (``failed.txt`` says why)."""
    return (folder() / "failed.txt").exists()


def kernels():
    """(forward, trace) from the built library, building it first where it was never tried for
    this key; None where it cannot be built or loaded here (the JIT's kernels are then the ones
    to use). Each takes and returns what :func:`.viterbi.viterbi_forward` and
    :func:`.viterbi.viterbi_trace` do; ctypes releases the GIL while they run (the 3/4 and 4/4
    decodes run in two threads)."""
    path = c_library(folder(), LIBRARY, SOURCE)
    if path is None:
        return None
    try:
        library = ctypes.CDLL(str(path))
        forward, trace = library.viterbi_forward, library.viterbi_trace
    except (OSError, AttributeError) as err:  # a build this process cannot load: the JIT's then
        unloadable(path, err)
        return None
    pointer, number = ctypes.c_void_p, ctypes.c_long
    forward.argtypes, forward.restype = [pointer] * 8 + [number] * 4 + [pointer] * 5, None
    trace.argtypes, trace.restype = [pointer] * 6 + [number] * 3 + [pointer], number
    return _forward(forward), _trace(trace)


def _address(array: np.ndarray, dtype) -> int:
    """The data of ``array``, which must already be C-contiguous ``dtype`` (the numba kernels'
    signatures enforce the same: a copy here would hide a caller's mistake, or lose an output)."""
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise TypeError(f"the Viterbi kernel needs C-contiguous {np.dtype(dtype).name}, not {array.dtype} "
                        f"({'contiguous' if array.flags.c_contiguous else 'strided'})")
    return array.ctypes.data


def _forward(function):
    def viterbi_forward(prev_states, pointers, log_probs, first, length, band, chosen, column, initial, densities,
                        columns):
        states, chains, frames = len(pointers) - 1, len(first), densities.shape[0]
        if densities.ndim != 2 or densities.shape[1] != 3 or len(initial) != states:
            raise ValueError("the Viterbi kernel needs frames x 3 densities and a score per state")
        back = np.zeros((frames, columns), np.uint8)
        scores = np.array(initial, dtype=np.float64)  # a copy: the kernel leaves the last frame's scores in it
        shifted, tails = np.empty(states), np.empty(chains)
        i8, f8 = np.int64, np.float64
        function(_address(prev_states, i8), _address(pointers, i8), _address(log_probs, f8), _address(first, i8),
                 _address(length, i8), _address(band, i8), _address(chosen, i8), _address(column, np.int32),
                 states, chains, frames, columns, _address(densities, f8), scores.ctypes.data, shifted.ctypes.data,
                 tails.ctypes.data, back.ctypes.data)
        return scores, back

    return viterbi_forward


def _trace(function):
    def viterbi_trace(prev_states, pointers, first, chosen, chain_of, back, state, path):
        frames = back.shape[0]
        if frames == 0:
            return state
        if len(path) != frames or back.ndim != 2:
            raise ValueError("the Viterbi backtrace needs a path as long as its back-pointers")
        i8 = np.int64
        return function(_address(prev_states, i8), _address(pointers, i8), _address(first, i8), _address(chosen, i8),
                        _address(chain_of, i8), _address(back, np.uint8), frames, back.shape[1], int(state),
                        _address(path, np.uint32))

    return viterbi_trace


def built(where: Path, name: str, command) -> Path | None:
    """``where/name``, built first where this key never tried: ``command(temporary)`` is the
    command line that writes ``name`` into the folder ``temporary``. None where the build
    failed, now or before (``failed.txt`` beside it says why; tried once per key, not per run)."""
    path = where / name
    if not path.exists() and not (where / "failed.txt").exists():
        build(where, name, command)
    return path if path.exists() else None


def unloadable(path: Path, err: Exception) -> None:
    """A build this process cannot load: kept as failed (the fallback runs from now on)."""
    (path.parent / "failed.txt").write_text(f"built but not loadable: {type(err).__name__}: {err}\n")
    path.unlink(missing_ok=True)


def build(where: Path, name: str, command) -> None:
    """Build ``name`` into ``where`` under a file lock (another worker may be building it:
    then wait and use its build), or write ``failed.txt`` saying why it could not be built.
    The command writes into a folder of its own, moved into place whole when it succeeds."""
    from mirflow.caches import locked

    where.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":  # no build there (the compilers need MSVC set up by hand)
        (where / "failed.txt").write_text("no C build on this platform\n")
        return
    with locked(where / "build.lock"):
        if (where / name).exists() or (where / "failed.txt").exists():
            return
        temporary = where / f"building-{os.getpid()}"
        temporary.mkdir(exist_ok=True)
        try:
            line = command(temporary)
            done = subprocess.run(line, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if done.returncode == 0 and (temporary / name).exists():
                os.replace(temporary / name, where / name)
            elif -done.returncode in STOPPED:
                pass  # stopped from outside (Ctrl-C, a service stopping): not this machine's failure, built next time
            else:
                said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-20:]
                tail = said or [f"{line[0]} exited with status {done.returncode}, saying nothing"]
                (where / "failed.txt").write_text("\n".join(tail) + "\n")
        except (OSError, subprocess.SubprocessError) as err:
            (where / "failed.txt").write_text(f"{type(err).__name__}: {err}\n")
        finally:
            for leftover in temporary.glob("*") if temporary.exists() else ():
                leftover.unlink()
            if temporary.exists():
                temporary.rmdir()
