"""The backends the essentia_gpu analyzers run on, as ``mirflow doctor`` probes them.

TensorFlow (the zoo models, and the GPU check before a ``device: gpu`` run) and Essentia
(whose essentia-tensorflow wheel bundles TensorFlow 2.5 and opens CUDA 11.2 / cuDNN 8
libraries by name at run time).
"""

from __future__ import annotations

from mirflow.devices import PRELUDE

# CUDA libraries the TensorFlow 2.5 inside essentia-tensorflow opens at run time (CUDA 11.2, cuDNN 8).
ESSENTIA_TF_CUDA_LIBRARIES = ("libcudart.so.11.0", "libcublas.so.11", "libcublasLt.so.11", "libcufft.so.10",
                              "libcurand.so.10", "libcusolver.so.11", "libcusparse.so.11", "libcudnn.so.8")

TENSORFLOW = PRELUDE + r'''
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
'''

ESSENTIA = PRELUDE + r'''
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
''' % (ESSENTIA_TF_CUDA_LIBRARIES,)
