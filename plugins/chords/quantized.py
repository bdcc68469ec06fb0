"""The chord CNN in 8-bit integers (``network_precision: int8``, an option): onnxruntime's
static quantization, made once per machine.

madmom's chord CNN (seven convolutions over the log spectrogram) takes ~0.45 s per 120 s chunk
on one core in float32 (batch normalizations folded). Quantized to 8 bits (weights per output
channel, activations per tensor, onnxruntime's QDQ format, which its CPU kernels fuse into
integer convolutions) it takes ~0.2 s. It is not the default: its chords score as the float
network's, but a quieter or mono copy of a song changes ~1-2 % of them, where the float
network changes none (every activation rounded to 8 bits turns the copy's tiny differences
into different chords; measured on benchmarks/invariance.py's recordings, docs/accuracy.md).
Dynamic quantization (activation ranges measured on every call) was 5x *slower* than the float
network, so the activations' ranges are measured once, on calibration songs from mirflow's own
synthesizer (:func:`calibration_inputs`: never the corpora the accuracy tables score), and the
quantized model is written to the user's cache, keyed by the float model, onnxruntime's version
and CALIBRATION_VERSION. Building it needs the ``onnx`` package (a core dependency): where it
is missing and nothing is cached, the step's set-up fails saying what to install (the default,
``network_precision: float32``, needs none).
onnxruntime's pre-processing step is left out: it imported torch where torch is installed (~4 s)
and gave the same outputs to the bit. On the GM test split the two networks' chords score within
0.001 (benchmarks/chords_gm.py).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_VERSION = "4"  # change it when calibration_inputs changes: the cached models are rebuilt
CALIBRATION_SEED = 900  # the synthesizer's seeds 900-905: no test or corpus uses them
CALIBRATION_SONGS = (  # (key, bpm, seconds, drums, melody): keys and textures the CNN sees in songs
    ("C major", 96, 8.0, True, False), ("A minor", 128, 8.0, True, True), ("F# major", 74, 8.0, False, True),
    ("Eb minor", 140, 8.0, True, False), ("G major", 110, 8.0, False, False), ("B minor", 86, 8.0, True, True),
)


def cache_folder() -> Path:
    from mirflow.caches import cache_root

    return cache_root() / "quantized"


def calibration_inputs(prepare) -> list[np.ndarray]:
    """The network's inputs (``prepare``: the processors before it) for the calibration songs,
    each at the level the pipeline feeds the recognizer."""
    from madmom.audio.signal import Signal

    from mirflow.audio import LEVEL_TARGET, rms_db
    from mirflow.synth import key_progression, make_song

    inputs = []
    for n, (key, bpm, seconds, drums, melody) in enumerate(CALIBRATION_SONGS):
        song = make_song(key_progression(key), bpm=bpm, duration=seconds, key=key, drums=drums, melody=melody,
                         seed=CALIBRATION_SEED + n)
        samples = song.samples.astype(np.float32)
        samples *= np.float32(10 ** ((LEVEL_TARGET - rms_db(samples)) / 20))
        inputs.append(np.asarray(prepare(Signal(samples, sample_rate=song.sample_rate)), dtype=np.float32))
    return inputs


def quantized_model(model: bytes, prepare) -> bytes | None:
    """``model`` (a float ONNX network taking (frames, features)) quantized to 8 bits, from the
    cache or made now (under a file lock, so one worker makes it and the others read it); None
    where it is not cached and the onnx package is missing."""
    import onnxruntime

    digest = hashlib.sha256(model + onnxruntime.__version__.encode() + CALIBRATION_VERSION.encode()).hexdigest()
    folder = cache_folder()
    target = folder / f"network-{digest[:20]}.int8.onnx"
    if target.exists():
        return target.read_bytes()
    try:
        import onnx  # noqa: F401 - onnxruntime.quantization needs it
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        return None
    from mirflow.caches import locked

    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / f"{target.name}.lock"):
        if target.exists():  # another worker made it while this one waited
            return target.read_bytes()
        inputs = calibration_inputs(prepare)

        class Calibration(CalibrationDataReader):
            def __init__(self):
                self.left = [{"input": data} for data in inputs]

            def get_next(self):
                return self.left.pop(0) if self.left else None

        with tempfile.TemporaryDirectory(dir=folder) as work:
            source, quantized = Path(work) / "float.onnx", Path(work) / "int8.onnx"
            source.write_bytes(model)
            quantize_static(str(source), str(quantized), Calibration(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
            os.replace(quantized, target)  # whole or not at all, for the other workers
        return target.read_bytes()

