"""What each compute backend really sees, and why a GPU is not usable when it is not.

Each backend is probed in a fresh interpreter: importing tensorflow and essentia in one
process aborts unless essentia comes first, and a probe that crashes must not take the
caller down. ``mirflow doctor`` prints these; analyzers use ``gpu_problem`` to refuse
``device: gpu`` with the precise reason instead of silently falling back to the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

# CUDA libraries the TensorFlow 2.5 inside essentia-tensorflow opens at run time (CUDA 11.2, cuDNN 8).
ESSENTIA_TF_CUDA_LIBRARIES = ("libcudart.so.11.0", "libcublas.so.11", "libcublasLt.so.11", "libcufft.so.10",
                              "libcurand.so.10", "libcusolver.so.11", "libcusparse.so.11", "libcudnn.so.8")

_COMMON = r'''
import ctypes, json, os, sys
def loadable(name):
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False
driver = loadable("libcuda.so.1")
'''

PROBES = {
    "tensorflow": _COMMON + r'''
import io, contextlib
err = io.StringIO()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
import tensorflow as tf
gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
info = tf.sysconfig.get_build_info()
reason = None
if not gpus:
    if not info.get("is_cuda_build"):
        reason = "this TensorFlow build has no CUDA support (pip install 'mirflow[gpu]' brings tensorflow[and-cuda])"
    elif not driver:
        reason = "no NVIDIA driver: libcuda.so.1 cannot be loaded"
    else:
        reason = "TensorFlow found the driver but not its CUDA libraries (see its log above); pip install 'mirflow[gpu]'"
print(json.dumps({"version": tf.__version__, "devices": ["CPU"] + gpus, "gpu": bool(gpus), "reason": reason,
                  "cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version")}))
''',
    "essentia": _COMMON + r'''
import essentia, essentia.standard as es
libraries = %r
missing = [name for name in libraries if not loadable(name)]
has_tf = hasattr(es, "TensorflowPredict")
reasons = []
if not has_tf:
    reasons.append("this essentia build has no TensorFlow (pip install essentia-tensorflow)")
if not driver:
    reasons.append("no NVIDIA driver: libcuda.so.1 cannot be loaded")
if missing:
    reasons.append("its bundled TensorFlow 2.5 needs CUDA 11.2 / cuDNN 8 libraries that cannot be loaded: "
                   + ", ".join(missing))
reason = "; ".join(reasons) or None
gpu = has_tf and driver and not missing
print(json.dumps({"version": essentia.__version__, "devices": ["CPU"] + (["GPU"] if gpu else []), "gpu": gpu,
                  "reason": reason}))
''' % (ESSENTIA_TF_CUDA_LIBRARIES,),
    "onnxruntime": _COMMON + r'''
import onnxruntime as ort
providers = ort.get_available_providers()
gpu = "CUDAExecutionProvider" in providers
reason = None
if not gpu:
    reason = "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
elif not driver:
    gpu, reason = False, "no NVIDIA driver: libcuda.so.1 cannot be loaded"
print(json.dumps({"version": ort.__version__, "devices": providers, "gpu": gpu, "reason": reason}))
''',
}


def probe(backend: str, timeout: float = 120) -> dict:
    """{"version", "devices", "gpu", "reason"} for one backend, or {"error": ...} if it does not import."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBES[backend]], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"probe timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": tail[-1] if tail else f"exit code {done.returncode}"}
    result = json.loads(lines[-1])
    result["log"] = [line for line in done.stderr.splitlines()
                     if any(mark in line for mark in ("dlopen", "Could not load dynamic library", "CUDA", "cuda"))][-5:]
    return result


def probe_all() -> dict[str, dict]:
    """``probe`` of every backend, at once (each is its own interpreter): what doctor and the
    server's health endpoint show."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(PROBES)) as pool:
        return dict(zip(PROBES, pool.map(probe, PROBES)))


def gpu_problem(backend: str) -> str | None:
    """None when ``backend`` can use a GPU here, else the reason it cannot."""
    found = probe(backend)
    if "error" in found:
        return f"{backend} does not import: {found['error']}"
    return None if found["gpu"] else found["reason"]
