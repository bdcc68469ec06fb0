"""The Viterbi kernels (:mod:`.viterbi`) compiled ahead of time into a small extension module in
the user's cache, so that a worker loads them in a millisecond instead of importing numba.

Loading the kernels from numba's own cache still imports numba (~0.3 s) and its CPU target's
registries, which import SciPy's linear algebra for a BLAS check (~0.4 s): ~0.7 s of CPU in
every worker that decodes, on the critical path of a short file (its merge) and in both
workers of a long one (their folds). numba's ahead-of-time compiler (``numba.pycc``) turns the
same Python source into an extension module that needs only NumPy to load; built for this
machine's CPU and its instruction set (as numba's JIT does), it runs at the JIT's speed and
gives its results to the bit (the tests compare them).

Built once per machine (~4 s), the first time a worker needs the kernels, in a child process
(its compiler output stays off the user's terminal) under a file lock, keyed by the kernels' source,
numba's, NumPy's and Python's versions and the CPU. It needs a C compiler and Python's headers: where
the build fails, the failure is kept beside it (tried once per key, not per run) and the
kernels come from numba's JIT, as before (:func:`.viterbi._compile_shared`). The LSTM kernel
(:mod:`.ensemble`) is built the same way (:func:`built`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

MODULE = "mirflow_viterbi"
BUILD_TIMEOUT = 600  # seconds; a build takes ~4 s on this 2-core machine
STOPPED = {signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGHUP}  # a build killed by these was not a failure
# The exported kernels and their one signature each (the JIT's, in :func:`.viterbi._compile_shared`).
SIGNATURES = {
    "viterbi_forward": "Tuple((f8[::1], u1[:, ::1]))(i8[::1], i8[::1], f8[::1], i8[::1], i8[::1], i8[::1], "
                       "i8[::1], i4[::1], f8[::1], f8[:, ::1], i8)",
    "viterbi_trace": "i8(i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], u1[:, ::1], i8, u4[::1])",
}


def folder() -> Path:
    """This machine's build: one folder per key (see the module's docstring)."""
    from mirflow.caches import cache_root

    return cache_root() / "native" / key()


@functools.cache
def key() -> str:
    """What the build depends on: the kernels' source, numba, NumPy (whose C API the module's
    glue is compiled against), Python and the CPU."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    here = Path(__file__).parent
    parts = [(here / "viterbi.py").read_bytes(), Path(__file__).read_bytes(), installed("numba").encode(),
             installed("numpy").encode(), sys.version.encode(), platform.machine().encode(),
             cpu_identity().encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]


def cpu_identity() -> str:
    """The CPU's model and instruction-set flags: code built for one CPU's features must not
    be loaded on another (a cache folder shared by machines of a cluster, say)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(wanted))  # the first core's lines (the others repeat them)


def module_path(where: Path) -> Path:
    return where / f"{MODULE}{importlib.machinery.EXTENSION_SUFFIXES[0]}"


def ready() -> bool:
    """Whether this machine has the built module (the kernels need no compiling)."""
    return module_path(folder()).exists()


def failed() -> bool:
    """Whether the build was tried for this key and failed (``failed.txt`` says why)."""
    return (folder() / "failed.txt").exists()


def kernels():
    """(forward, trace) from the built module, building it first where it was never tried for
    this key; None where it cannot be built here (the JIT's kernels are then the ones to use)."""
    where = folder()
    # The C the module needs besides the kernels (numba's glue and array allocation) runs
    # a few times per decode: compiled without optimization, the build takes ~4 s, not ~6.
    # The kernels themselves are LLVM's, optimized as numba's JIT optimizes them.
    environment = dict(os.environ, CFLAGS=f"{os.environ.get('CFLAGS', '')} -O0".strip())
    path = built(where, module_path(where).name, lambda temporary: [sys.executable, "-c", BUILD, str(temporary)],
                 environment)
    if path is None:
        return None
    try:
        spec = importlib.util.spec_from_file_location(MODULE, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.viterbi_forward, module.viterbi_trace
    except (ImportError, OSError, AttributeError) as err:  # a build this Python cannot load: the JIT's then
        unloadable(path, err)
        return None


def built(where: Path, name: str, command, environment: dict | None = None) -> Path | None:
    """``where/name``, built first where this key never tried: ``command(temporary)`` is the
    command line that writes ``name`` into the folder ``temporary``. None where the build
    failed, now or before (``failed.txt`` beside it says why; tried once per key, not per run)."""
    path = where / name
    if not path.exists() and not (where / "failed.txt").exists():
        build(where, name, command, environment)
    return path if path.exists() else None


def unloadable(path: Path, err: Exception) -> None:
    """A build this process cannot load: kept as failed (the fallback runs from now on)."""
    (path.parent / "failed.txt").write_text(f"built but not loadable: {type(err).__name__}: {err}\n")
    path.unlink(missing_ok=True)


def build(where: Path, name: str, command, environment: dict | None = None) -> None:
    """Build ``name`` into ``where`` under a file lock (another worker may be building it:
    then wait and use its build), or write ``failed.txt`` saying why it could not be built.
    The command writes into a folder of its own, moved into place whole when it succeeds."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock, and no build (the compilers need MSVC set up by hand there)
        (where / "failed.txt").write_text("no ahead-of-time build on this platform\n")
        return
    with open(where / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (where / name).exists() or (where / "failed.txt").exists():
            return
        temporary = where / f"building-{os.getpid()}"
        temporary.mkdir(exist_ok=True)
        try:
            line = command(temporary)
            done = subprocess.run(line, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=environment)
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


# Run in the child process: numba's AOT compiler with two settings its API does not expose,
# both what numba's JIT does for these kernels: the GIL released while they run (``nogil``:
# the 3/4 and 4/4 decodes run in two threads), and this CPU's instruction-set features (the
# AOT compiler names the CPU model only, which left the kernels ~30 % slower).
BUILD = r'''
import sys
import numba.pycc.compiler as aot
from numba.core import codegen
from numba.core.compiler import Flags


class ReleaseGil(Flags):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.release_gil = True


aot.Flags = ReleaseGil
codegen.AOTCPUCodegen._customize_tm_features = lambda self: self._get_host_cpu_features()

from numba.pycc import CC

from mirflow.plugins.madmom_fast import native, viterbi

cc = CC(native.MODULE)
cc.output_dir = sys.argv[1]
cc.target_cpu = "host"
for name, signature in native.SIGNATURES.items():
    cc.export(name, signature)(getattr(viterbi, name))
cc.compile()
'''
