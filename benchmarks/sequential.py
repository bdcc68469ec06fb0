"""Baseline: the default pipeline's analyzers called one after another in one process,
each on the whole file, as the old app did (no chunks, no workers).

    python benchmarks/sequential.py FILE...
"""

import sys
import time

import numpy as np
import soundfile


def analyze(path: str) -> None:
    from madmom.audio.signal import Signal
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor
    import librosa
    import soxr

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 44100:
        mono = soxr.resample(mono, rate, 44100)
    signal = Signal(mono, sample_rate=44100)
    DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(signal))
    CRFChordRecognitionProcessor()(CNNChordFeatureProcessor()(signal))
    chroma = librosa.feature.chroma_cqt(y=soxr.resample(mono, 44100, 22050), sr=22050, hop_length=2048)
    chroma.mean(axis=1)


if __name__ == "__main__":
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    began = time.perf_counter()
    for path in sys.argv[1:]:
        analyze(path)
    print(f"seconds {time.perf_counter() - began:.2f}")
