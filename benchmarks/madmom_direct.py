"""Baseline: madmom's own processors called directly on a whole file, in one process.

    python benchmarks/madmom_direct.py beats FILE        # RNNBeatProcessor + DBNBeatTrackingProcessor
    python benchmarks/madmom_direct.py downbeats FILE    # RNNDownBeatProcessor + DBNDownBeatTrackingProcessor
    python benchmarks/madmom_direct.py all FILE          # downbeats + CNN key + CNN chord features and CRF

fps 100 and the models as trained, as ``madmom_fast`` uses them; prints the beat count.
"""

import sys

import numpy as np
import soundfile


def main(mode: str, path: str) -> None:
    import onnxruntime
    import soxr
    from madmom.audio.signal import Signal

    onnxruntime.set_default_logger_severity(3)
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 44100:
        mono = soxr.resample(mono, rate, 44100).astype(np.float32)
    signal = Signal(mono, sample_rate=44100)
    if mode == "beats":
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

        beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(signal))
    else:
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

        beats = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(RNNDownBeatProcessor()(signal))
    if mode == "all":  # what the default pipeline gives, the way madmom computes it
        from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor
        from madmom.features.key import CNNKeyRecognitionProcessor

        CNNKeyRecognitionProcessor()(signal)
        chords = CRFChordRecognitionProcessor()(CNNChordFeatureProcessor()(signal))
        print(f"chords {len(chords)}")
    print(f"beats {len(beats)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
