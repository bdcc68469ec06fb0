"""The bundled pipelines' accuracy: the pipeline table in docs/accuracy.md (speed and memory by song
length: ``benchmarks/lengths.py``).

    .venv/bin/python benchmarks/pipelines.py            # prints the table
    .venv/bin/python benchmarks/pipelines.py --write    # also rewrites it in docs/accuracy.md

Accuracy: each pipeline through ``mirflow run`` on the synthesized corpus (24 steady songs,
6 modulating two-minute songs) and the real annotated excerpts, scored with
``mirflow.evaluate``; the mean of each measure over the pieces that have it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import run_pipeline  # noqa: E402
from corpus import modulating, realdata, synthesized  # noqa: E402
from run import arguments, publish  # noqa: E402

from mirflow.evaluate import load_reference, predicted, score  # noqa: E402

PIPELINES = ("fast", "default", "full", "commercial")
MEASURES = ("beat_f", "downbeat_f", "tempo_acc1", "tempo_acc2", "key", "key_timeline", "chords_majmin")


def accuracy(pipeline: str, pieces, out: Path) -> dict[str, float]:
    results = run_pipeline(pipeline, pieces, out, jobs=os.cpu_count() or 1)
    rows = [score(predicted(results[p.name]), load_reference(p.truth)) for p in pieces]
    return {m: float(np.mean([r[m] for r in rows if m in r])) for m in MEASURES if any(m in r for r in rows)}


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for name in ("synth", "real"):
            (temp / name).mkdir()
        synth = synthesized(temp / "synth") + modulating(temp / "synth")
        real = realdata(temp / "real")
        rows = []
        for pipeline in PIPELINES:
            synthetic = accuracy(pipeline, synth, temp / f"acc-{pipeline}-s")
            measured = accuracy(pipeline, real, temp / f"acc-{pipeline}-r") if real else {}
            rows.append((pipeline, synthetic, measured))
            print(rows[-1], flush=True)
    lines = [f"Accuracy on the synthesized corpus (30 songs) / on the real excerpts (`../shared/realdata`); "
             f"`-` where a pipeline gives no such answer or no piece has it. Machine: {os.cpu_count()} cores.", "",
             "| pipeline | beat F | downbeat F | tempo Acc1 | tempo Acc2 | key | key over time | chords (maj/min WCSR) |",
             "|---|---|---|---|---|---|---|---|"]
    for pipeline, synthetic, measured in rows:
        cells = []
        for m in MEASURES:
            a = f"{synthetic[m]:.3f}" if m in synthetic else "-"
            b = f"{measured[m]:.3f}" if m in measured else "-"
            cells.append(f"{a} / {b}")
        lines.append(f"| `{pipeline}` | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    publish(table, "pipelines", args.write)


if __name__ == "__main__":
    main()
