"""The chord recognizers side by side: accuracy on the synthesized corpus, time per 5 minutes.

    .venv/bin/python benchmarks/chords.py            # prints a table
    .venv/bin/python benchmarks/chords.py --write    # also rewrite benchmarks/README.md

Accuracy: each recognizer through ``mirflow run`` (the scheduler) on the corpus of
``benchmarks/corpus.py`` (triads and sevenths, 60-190 BPM, all keys), scored with mir_eval
(major/minor weighted chord symbol recall; the recognizers' vocabulary is major/minor, so
on seventh-chord songs the triad under each seventh counts). Time: the analyzer called on a
whole 5-minute song in this process, models already loaded (median of 3).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import arguments, publish  # noqa: E402
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))

from corpus import synthesized  # noqa: E402

from mirflow.evaluate import chord_scores, load_reference  # noqa: E402

METHODS = ("chords.cnn_crf", "chords.deepchroma", "chords.templates")


def accuracy(method: str, pieces, out: Path) -> tuple[float, float]:
    pipeline = out / f"{method}.yaml"
    pipeline.write_text(f"name: {method}\nsteps: [{method}]\noutput: {{formats: [json]}}\n")
    subprocess.run([MIRFLOW, "run", str(pipeline), "-o", str(out / method), *[str(p.audio) for p in pieces]],
                   check=True, capture_output=True)
    majmin, sevenths = [], []
    for piece in pieces:
        result = json.loads((out / method / f"{piece.audio.stem}.json").read_text())
        scores = chord_scores([(c["start"], c["end"], c["label"]) for c in result["timeline"]["chords"]],
                              load_reference(piece.truth).chords)
        majmin.append(scores["chords_majmin"])
        if "chords_sevenths" in scores:  # a seventh-chord song: is the triad under each seventh right?
            sevenths.append(scores["chords_majmin"])
    return float(np.mean(majmin)), float(np.mean(sevenths)) if sevenths else float("nan")


def seconds_per_song(method: str, minutes: float = 5.0) -> float:
    from mirflow.audio import Chunk
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
    from mirflow.synth import key_progression, make_song

    cls = collect_analyzers(make_plugin_manager()).get(method)
    song = make_song(key_progression("A minor"), bpm=120, duration=minutes * 60, key="A minor")
    samples = song.samples if cls.sample_rate == 44100 else soxr.resample(song.samples, 44100, cls.sample_rate)
    samples = samples.astype(np.float32)
    analyzer = cls()
    analyzer.setup("cpu")
    chunk = Chunk(0, 0.0, minutes * 60, 0.0, minutes * 60, samples, cls.sample_rate, "song.wav")
    times = []
    for _ in range(3):
        began = time.perf_counter()
        analyzer.analyze(chunk, {})
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        (temp / "synth").mkdir()
        pieces = synthesized(temp / "synth")
        for method in METHODS:
            majmin, sevenths = accuracy(method, pieces, temp)
            rows.append((method, majmin, sevenths, seconds_per_song(method)))
            print(rows[-1], flush=True)
    lines = [f"{len(pieces)} synthesized songs of 30 s (every third in seventh chords); time for one 5-minute song,"
             " one core, models loaded:", "",
             "| recognizer | major/minor WCSR, all songs | major/minor WCSR, seventh-chord songs | seconds per 5-minute song |",
             "|---|---|---|---|"]
    lines += [f"| `{m}` | {a:.3f} | {s:.3f} | {t:.1f} |" for m, a, s, t in rows]
    table = "\n".join(lines)
    publish(table, "chords", args.write)


if __name__ == "__main__":
    main()
