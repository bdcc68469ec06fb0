"""Chunked vs. whole-file timelines on every song of the GM corpus's test split.

    .venv/bin/python benchmarks/seams.py            # prints the table
    .venv/bin/python benchmarks/seams.py --write    # also rewrites the table in docs/accuracy.md

The ``default`` pipeline's beats, downbeats and chords run three times over the split (one
``mirflow run`` each): whole files, chunked as ``default`` chunks (120 s with 10 s of overlap,
for files over 60 s), and chunked into 30 s pieces. Agreement with the whole-file run: beats
and downbeats as an F-measure with a 10 ms window, chords as the share of time with the same
major/minor label. A song shorter than the chunk length is one chunk, equal by construction:
the table counts the songs that were really cut.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import run_pipeline  # noqa: E402
from gm_corpus import gm_corpus  # noqa: E402
from run import arguments, publish  # noqa: E402

from mirflow.evaluate import chord_scores, event_agreement, predicted  # noqa: E402

STEPS = "steps:\n  - {analyzer: madmom_fast.downbeats, id: beats}\n  - {analyzer: chords.cnn_crf, id: chords}\n"
CHUNKINGS = {"whole": "chunking: {enabled: false}\n",
             "default (120 s)": "chunking: {min_duration: 60, length: 120, overlap: 10}\n",
             "30 s": "chunking: {min_duration: 0, length: 30, overlap: 10}\n"}


def main() -> None:
    args = arguments(__doc__, "docs/accuracy.md").parse_args()
    pieces = gm_corpus("test")
    work = Path(tempfile.mkdtemp(prefix="mirflow-seams-"))
    results = {}
    for n, (name, chunking) in enumerate(CHUNKINGS.items()):
        pipeline = work / f"seams{n}.yaml"
        pipeline.write_text(f"name: seams{n}\n{chunking}{STEPS}")
        results[name] = run_pipeline(str(pipeline), pieces, work / f"out{n}", jobs=2)
    rows = []
    for name in list(CHUNKINGS)[1:]:
        cut = [p for p in pieces if len(results[name][p.name]["chunks"]) > 1]
        scores = {"beats": [], "downbeats": [], "chords": []}
        for piece in cut:
            chunked, whole = predicted(results[name][piece.name]), predicted(results["whole"][piece.name])
            scores["beats"].append(event_agreement(chunked.beats, whole.beats))
            scores["downbeats"].append(event_agreement(chunked.downbeats, whole.downbeats))
            scores["chords"].append(chord_scores(chunked.chords or [], whole.chords)["chords_majmin"])
        chunks = np.mean([len(results[name][p.name]["chunks"]) for p in cut]) if cut else 0
        cells = [f"{np.mean(v):.4f} (lowest {np.min(v):.4f}, {cut[int(np.argmin(v))].name[:5]})" if v else "-"
                 for v in scores.values()]
        rows.append(f"| {name} | {len(cut)} of {len(pieces)} | {chunks:.1f} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    text = "\n".join([
        f"GM corpus, `test` split ({len(pieces)} songs): `default`'s beats, downbeats and chords, chunked vs. whole "
        "file (mean over the songs that were cut, and the lowest song).", "",
        "| chunks | songs cut | chunks per song | beats agree (10 ms) | downbeats agree (10 ms) | same chord (time) |",
        "|---|---|---|---|---|---|", *rows])
    publish(text, "seams", args.write)


if __name__ == "__main__":
    main()
