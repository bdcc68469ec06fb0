"""Key (and chords) per class of music: mirflow's pipelines beside Essentia's and madmom's key.

    .venv/bin/python benchmarks/accuracy_key.py                     # key-corpus test split, prints
    .venv/bin/python benchmarks/accuracy_key.py --corpus key-dev    # the split choices were made on
    .venv/bin/python benchmarks/accuracy_key.py --corpus gm-test    # benchmarks/gm_corpus.py's test split
    .venv/bin/python benchmarks/accuracy_key.py --corpus all --write  # every table into docs/accuracy-key.md

Corpora: ``key-test``/``key-dev`` (``benchmarks/key_corpus.py``: minor keys with modal mixture,
relative-major passages, songs that open on IV, V or vi; the test split in soundfonts and seeds
the code was never tuned on), ``gm-test`` (``benchmarks/gm_corpus.py``), ``synth`` (the project's
own synthesizer, ``benchmarks/corpus.py``) and ``real`` (the key excerpts in ``../shared/realdata``,
read in place). Methods, in one run on the same audio: ``mirflow run`` of the ``default`` and
``fast`` pipelines, ``librosa_enhanced.key`` alone (chroma only, no chords), Essentia's
KeyExtractor (``edma``, ``bgate``, through ``essentia_gpu.key``) and madmom's key CNN. Scores:
MIREX weighted key score (``key``), the key timeline's duration-weighted score on songs that
modulate (``key over time``), chords major/minor WCSR; per class of music and overall.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402
from accuracy import run_pipeline  # noqa: E402
from corpus import modulating, realdata, synthesized  # noqa: E402
from independent import essentia_keys  # noqa: E402
from run import MIRFLOW, arguments, measure as measure_command, publish, write_song  # noqa: E402

from mirflow.evaluate import Reference, load_reference, predicted, score  # noqa: E402

DOCS = ROOT / "docs" / "accuracy-key.md"
MARKERS = {"key-test": "key-test", "gm-test": "key-gm-test", "synth": "key-synth", "real": "key-real"}
CHROMA_ONLY = "name: chroma_key\nsteps: [librosa_enhanced.key]\noutput: {formats: [json]}\n"


if "MIRFLOW_REALDATA" in os.environ:  # a worktree outside the checkout that holds ../shared
    corpus.REALDATA = Path(os.environ["MIRFLOW_REALDATA"])


def pieces_of(name: str, work: Path) -> tuple[list, str]:
    """(pieces, caption) of one corpus."""
    if name.startswith("key-"):
        from key_corpus import key_corpus

        split = name[4:]
        return key_corpus(split), f"Key corpus, `{split}` split (`benchmarks/key_corpus.py`)"
    if name == "gm-test":
        from gm_corpus import gm_corpus

        return gm_corpus("test"), "GM corpus, `test` split (`benchmarks/gm_corpus.py`, FluidR3)"
    folder = work / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    if name == "synth":
        return synthesized(folder) + modulating(folder), "The project's own synthesizer (`benchmarks/corpus.py`)"
    return ([p for p in realdata(folder) if p.name.endswith("key")],
            "Real key excerpts (`../shared/realdata`: GiantSteps, Beatport, a classical recording)")


def classes(name: str, reference: Reference) -> list[str]:
    """The classes of music a piece counts in: its mode, and for the key corpus its kind."""
    found = ["all"]
    if reference.key:
        found.append(reference.key.split()[-1])
    elif reference.keys:
        found.append("modulating")
    if name.startswith("key"):  # key007_opens-V_rock_...: its kind, without the opening chord
        found.append(name.split("_")[1].split("-")[0])
    return found


def mirex(reference: Reference, label: str | None) -> dict[str, float]:
    import mir_eval

    if reference.key:
        return {"key": mir_eval.key.weighted_score(reference.key, label) if label else 0.0}
    return {}


def madmom_keys(pieces) -> dict[str, str]:
    """madmom's CNNKeyRecognitionProcessor on each whole file."""
    from key import madmom_key, mono44

    return {p.name: madmom_key(mono44(p.audio)) for p in pieces}


def measure(name: str, peers: bool = True) -> str:
    work = Path(tempfile.mkdtemp(prefix="mirflow-accuracy-key-"))
    pieces, caption = pieces_of(name, work)
    if not pieces:
        return f"{caption}: not found here."
    references = {p.name: load_reference(p.truth) for p in pieces}
    rows: dict[str, dict[str, dict]] = {}  # method -> piece -> scores
    for pipeline in ("default", "fast"):
        results = run_pipeline(pipeline, pieces, work / pipeline, jobs=2)
        rows[f"mirflow `{pipeline}`"] = {p.name: score(predicted(results[p.name]), references[p.name]) for p in pieces}
        print(pipeline, "done", flush=True)
    chroma = work / "chroma_key.yaml"
    chroma.write_text(CHROMA_ONLY)
    results = run_pipeline(str(chroma), pieces, work / "chroma", jobs=2)
    rows["`librosa_enhanced.key` alone (chroma only)"] = {  # no chord step: no chord score
        p.name: {k: v for k, v in score(predicted(results[p.name]), references[p.name]).items() if k.startswith("key")}
        for p in pieces}
    if not peers:
        return table(caption, pieces, references, rows)
    keys = essentia_keys(pieces, work)
    for profile in ("edma", "bgate"):
        rows[f"Essentia KeyExtractor `{profile}`"] = {
            p.name: mirex(references[p.name], keys[p.name][profile]) for p in pieces}
    try:
        madmom = madmom_keys(pieces)
        rows["madmom key CNN"] = {p.name: mirex(references[p.name], madmom[p.name]) for p in pieces}
    except ImportError as error:
        print(f"madmom key CNN left out: {error}", flush=True)
    return table(caption, pieces, references, rows)


def table(caption: str, pieces, references: dict, rows: dict[str, dict[str, dict]]) -> str:
    """Key per class (MIREX, mean over the class's songs), key over time and chords overall."""
    groups: dict[str, list[str]] = {}
    for piece in pieces:
        for group in classes(piece.name, references[piece.name]):
            groups.setdefault(group, []).append(piece.name)
    order = [g for g in groups if g != "all"] + ["all"]
    counts = {g: sum(1 for n in groups[g] if references_have_key(references, n)) for g in order}
    order = [g for g in order if counts[g]]
    header = ["method"] + [f"key: {g} ({counts[g]})" for g in order] + ["key over time", "chords (maj/min)"]
    lines = [f"{caption}: {len(pieces)} songs. Key: MIREX weighted score, mean over the songs of each class "
             "(`-`: no song of the class has a single key); key over time: each song's key timeline against the annotated one (duration-weighted MIREX score, every song that has one); "
             "`-` where a method gives no such answer.", "",
             "| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for method, scores in rows.items():
        cells = []
        for group in order:
            values = [scores[n]["key"] for n in groups[group] if "key" in scores.get(n, {})]
            cells.append(f"{np.mean(values):.3f}" if values else "-")
        for measure_name in ("key_timeline", "chords_majmin"):
            values = [s[measure_name] for s in scores.values() if measure_name in s]
            cells.append(f"{np.mean(values):.3f}" if values else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    wrong = []
    for method in [m for m in rows if m.startswith("mirflow `default`")]:
        for piece in pieces:
            value = rows[method].get(piece.name, {}).get("key")
            if value is not None and value < 1.0:
                wrong.append(f"{piece.name} ({value:g})")
    if wrong:
        lines += ["", "Songs `default` does not get fully right: " + ", ".join(wrong) + "."]
    return "\n".join(lines)


def cost(minutes: float = 5.0, pairs: int = 2) -> str:
    """``fast`` with its chord CNN beside ``fast`` with the template chords it had, alternating
    on one synthesized song (side by side in one run: the machine's load hits both alike)."""
    import json

    work = Path(tempfile.mkdtemp(prefix="mirflow-fast-cost-"))
    song = work / "song.wav"
    write_song(song, minutes, seed=3)
    bundled = (ROOT / "pipelines" / "fast.yaml").read_text()
    variants = {"`chords.templates` (before)": work / "fast_templates.yaml", "`chords.cnn_crf` (now)": work / "fast.yaml"}
    variants["`chords.templates` (before)"].write_text(bundled.replace("chords.cnn_crf", "chords.templates"))
    variants["`chords.cnn_crf` (now)"].write_text(bundled)
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in variants}
    for _ in range(pairs):
        for name, pipeline in variants.items():
            out = work / pipeline.stem
            wall, peak, _ = measure_command([MIRFLOW, "run", str(pipeline), str(song), "-o", str(out), "--force"])
            step = json.loads((out / "song.json").read_text())["steps"]["chords"]
            runs[name].append((wall, peak, step["seconds"], step.get("cpu_seconds") or float("nan")))
            print(name, runs[name][-1], flush=True)
    lines = [f"`mirflow run fast` on one {minutes:g}-minute synthesized song, {pairs} alternating runs each (median), "
             "on a machine other jobs were loading: compare the rows, not the seconds with other tables.", "",
             "| fast's chord step | whole run, seconds | peak MB | chord step, seconds | chord step, CPU seconds |",
             "|---|---|---|---|---|"]
    for name, values in runs.items():
        wall, peak, seconds, cpu = np.median(np.array(values), axis=0)
        lines.append(f"| {name} | {wall:.1f} | {peak:.0f} | {seconds:.1f} | {cpu:.1f} |")
    return "\n".join(lines)


def references_have_key(references: dict, name: str) -> bool:
    return bool(references[name].key)


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy-key.md")
    parser.add_argument("--corpus", choices=("key-test", "key-dev", "gm-test", "synth", "real", "all"),
                        default="key-test")
    parser.add_argument("--cost", action="store_true", help="also time fast's chord CNN beside its old templates")
    parser.add_argument("--no-peers", action="store_true", help="mirflow's pipelines only (a quick before/after)")
    args = parser.parse_args()
    for name in ("key-test", "gm-test", "synth", "real") if args.corpus == "all" else (args.corpus,):
        publish(measure(name, not args.no_peers), MARKERS.get(name, ""), args.write and name in MARKERS, DOCS)
    if args.cost:
        publish(cost(), "key-fast-cost", args.write, DOCS)


if __name__ == "__main__":
    main()
