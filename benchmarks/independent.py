"""Accuracy per corpus, mirflow's pipelines and the peers side by side in one run.

    .venv/bin/python benchmarks/independent.py                  # the GM test split, prints the table
    .venv/bin/python benchmarks/independent.py --corpus gm-dev  # the split choices were made on
    .venv/bin/python benchmarks/independent.py --corpus synth   # the project's own synthesizer
    .venv/bin/python benchmarks/independent.py --corpus real    # the real excerpts in ../shared/realdata
    .venv/bin/python benchmarks/independent.py --write          # also rewrites the table in docs/accuracy.md

(``--corpus all --write`` rewrites the three tables in docs/accuracy.md: GM test, own synth, real.)

Songs: ``gm_corpus`` (MIDI rendered by FluidSynth with the FluidR3 General MIDI soundfont; 24
thirty-second songs in ten styles and six two-minute songs with a tempo change or a
modulation). mirflow's pipelines run as users run them (``mirflow run``); in the same run,
the peers on the same audio: madmom's own DBNBeatTracker and DBNDownBeatTracker on the whole
file, and Essentia's KeyExtractor (profiles ``edma`` and ``bgate``, as ``essentia_gpu.key``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import madmom_direct, run_pipeline  # noqa: E402
from corpus import modulating, realdata, synthesized  # noqa: E402
from gm_corpus import gm_corpus  # noqa: E402
from run import arguments, publish  # noqa: E402

from mirflow.evaluate import load_reference, predicted, score  # noqa: E402

MEASURES = ("beat_f", "downbeat_f", "tempo_acc1", "tempo_acc2", "key", "key_timeline", "chords_majmin")
HEADERS = ("beat F", "downbeat F", "tempo Acc1", "tempo Acc2", "key", "key over time", "chords (maj/min)")


def essentia_keys(pieces, out: Path) -> dict[str, dict[str, str]]:
    """Essentia's KeyExtractor through mirflow's essentia_gpu.key, one step per profile."""
    pipeline = out / "keys.yaml"
    pipeline.write_text("name: essentia_keys\nsteps:\n"
                        "  - {analyzer: essentia_gpu.key, id: edma, params: {profile: edma}}\n"
                        "  - {analyzer: essentia_gpu.key, id: bgate, params: {profile: bgate}}\n"
                        "timeline: {key: edma}\n")
    results = run_pipeline(str(pipeline), pieces, out / "essentia", jobs=2)
    return {name: {sid: (step["outputs"].get("key") or {}).get("label") for sid, step in r["steps"].items()}
            for name, r in results.items()}


def mean_row(name: str, rows: list[dict]) -> str:
    cells = []
    for measure in MEASURES:
        values = [r[measure] for r in rows if measure in r]
        cells.append(f"{np.mean(values):.3f}" if values else "-")
    return f"| {name} | " + " | ".join(cells) + " |"


MARKERS = {"gm-test": "independent", "synth": "accuracy_synth", "real": "accuracy_real"}  # tables in docs/accuracy.md


def corpus(name: str, work: Path) -> tuple[list, str]:
    """(pieces, the table's caption)."""
    if name.startswith("gm-"):
        split = name[3:]
        return (gm_corpus(split), f"GM corpus, `{split}` split (FluidSynth, FluidR3 GM soundfont; ten styles, 3/4 "
                "and 6/8, tempo changes, modulations, sevenths)")
    folder = work / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    if name == "synth":
        return (synthesized(folder) + modulating(folder), "The project's own synthesizer (`benchmarks/corpus.py`, "
                "where the defaults were first chosen: not a result)")
    return (realdata(folder), "Real annotated excerpts (`../shared/realdata/`, read in place; 2-30 s each, so "
            "each song has only some of the annotations)")


def measure(name: str) -> str:
    """The table for one corpus: mirflow's pipelines, madmom's trackers and Essentia's key."""
    work = Path(tempfile.mkdtemp(prefix="mirflow-independent-"))
    pieces, caption = corpus(name, work)
    if not pieces:
        return f"{caption}: not found here."
    references = {p.name: load_reference(p.truth) for p in pieces}
    table = []
    for pipeline in ("default", "fast", "commercial"):
        results = run_pipeline(pipeline, pieces, work / pipeline, jobs=2)
        rows = [score(predicted(results[p.name]), references[p.name]) for p in pieces]
        table.append(mean_row(f"mirflow `{pipeline}`", rows))
        print(table[-1], flush=True)
    rows = []
    for piece in pieces:  # beats, downbeats, tempo only: madmom gives no key or chords here
        reference = references[piece.name]
        only = type(reference)(beats=reference.beats, downbeats=reference.downbeats, tempo=reference.tempo)
        rows.append(score(madmom_direct(piece.audio), only) if only.beats is not None or only.tempo else {})
    table.append(mean_row("madmom DBNBeatTracker + DBNDownBeatTracker (whole file)", rows))
    print(table[-1], flush=True)
    keys = essentia_keys(pieces, work)
    for profile in ("edma", "bgate"):
        rows = []
        for piece in pieces:
            reference = references[piece.name]
            if reference.key:
                import mir_eval

                label = keys[piece.name][profile]
                rows.append({"key": mir_eval.key.weighted_score(reference.key, label) if label else 0.0})
        table.append(mean_row(f"Essentia KeyExtractor `{profile}`", rows))
    minutes = sum(float(json.loads(p.read_text())["source"]["duration"])
                  for p in (work / "default").glob("*.json")) / 60
    lines = [f"{caption}: {len(pieces)} songs, {minutes:.0f} min. Means over the songs that have each annotation; "
             "`-` where a method gives no such answer.", "",
             "| method | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS), *table]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy.md")
    parser.add_argument("--corpus", choices=("gm-test", "gm-dev", "synth", "real", "all"), default="gm-test")
    args = parser.parse_args()
    for name in ("gm-test", "synth", "real") if args.corpus == "all" else (args.corpus,):
        publish(measure(name), MARKERS.get(name, ""), args.write and name in MARKERS)


if __name__ == "__main__":
    main()
