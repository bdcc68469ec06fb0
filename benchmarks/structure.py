"""Sections: mirflow's structure.sections against peers on songs with known sections; its cost.

    .venv/bin/python benchmarks/structure.py              # the test split, prints the tables
    .venv/bin/python benchmarks/structure.py --split dev  # the split the defaults were tuned on
    .venv/bin/python benchmarks/structure.py --write      # also rewrites the tables in docs/sections.md

Songs: ``corpus.structured`` (seeded forms such as intro-verse-chorus-verse-chorus-bridge-
chorus-outro, each kind of section with its own chord loop and arrangement, 72-160 BPM,
3/4 and 4/4). The defaults were chosen on the ``dev`` seeds; docs/sections.md reports ``test``.
mirflow runs as users run it (``mirflow run default``); the peers run on the same audio:
one section; a fixed 8-bar grid on mirflow's own downbeats; librosa's Laplacian
segmentation recipe (McFee & Ellis 2014, as in librosa's gallery: beat-synchronous CQT,
recurrence and path-enhanced MFCC sequence matrices, spectral clustering, k = 5). Scores
are mir_eval.segment's (``mirflow.evaluate.section_scores``) and the share of time whose
``function`` is right. Cost: the default pipeline with and without the step on a 5-minute
song, and the merge's memory on 60 minutes of features.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import run_pipeline  # noqa: E402
from corpus import structured  # noqa: E402
from run import MIRFLOW, arguments, measure, publish, write_song  # noqa: E402

from mirflow.evaluate import load_reference, section_scores  # noqa: E402

COLUMNS = ("sections_f05", "sections_f3", "sections_pairwise", "sections_nce", "function")


def function_accuracy(estimate: list[dict], reference: list) -> float:
    """Share of the reference's time where the estimated section's function is the annotated one."""
    total = reference[-1][1] - reference[0][0]
    right = sum(max(0.0, min(end, s["end"]) - max(start, s["start"]))
                for start, end, name in reference for s in estimate if s.get("function") == name)
    return right / total


def fixed_grid(result: dict, bars: int = 8) -> list[tuple[float, float, str]]:
    """Boundaries every ``bars`` bars on the result's downbeats, each section its own letter."""
    downbeats, duration = result["timeline"]["downbeats"], result["source"]["duration"]
    edges = [0.0] + [t for n, t in enumerate(downbeats) if n and n % bars == 0] + [duration]
    return [(a, b, f"S{n}") for n, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def laplacian(path: Path, k: int = 5) -> list[tuple[float, float, str]]:
    """librosa's Laplacian segmentation example (McFee & Ellis 2014), k clusters."""
    import librosa
    import scipy.linalg
    import scipy.ndimage
    from sklearn.cluster import KMeans

    y, sr = librosa.load(str(path), sr=22050)
    bins_per_octave, n_octaves = 12 * 3, 7
    cqt = librosa.amplitude_to_db(np.abs(librosa.cqt(y=y, sr=sr, bins_per_octave=bins_per_octave,
                                                     n_bins=n_octaves * bins_per_octave)), ref=np.max)
    _, beats = librosa.beat.beat_track(y=y, sr=sr, trim=False)
    sync = librosa.util.sync(cqt, beats, aggregate=np.median)
    times = librosa.frames_to_time(librosa.util.fix_frames(beats, x_min=0), sr=sr)
    recurrence = librosa.segment.recurrence_matrix(sync, width=3, mode="affinity", sym=True)
    filtered = librosa.segment.timelag_filter(scipy.ndimage.median_filter)(recurrence, size=(1, 7))
    mfcc = librosa.util.sync(librosa.feature.mfcc(y=y, sr=sr), beats)
    path_distance = np.sum(np.diff(mfcc, axis=1) ** 2, axis=0)
    sigma = np.median(path_distance)
    path_sim = np.exp(-path_distance / sigma)
    sequence = np.diag(path_sim, k=1) + np.diag(path_sim, k=-1)
    degree_rec, degree_path = np.sum(filtered, axis=1), np.sum(sequence, axis=1)
    mu = degree_path.dot(degree_path + degree_rec) / np.sum((degree_path + degree_rec) ** 2)
    affinity = mu * filtered + (1 - mu) * sequence
    laplace = scipy.sparse.csgraph.laplacian(affinity, normed=True)
    _, vectors = scipy.linalg.eigh(laplace)
    vectors = scipy.ndimage.median_filter(vectors, size=(9, 1))
    cumulative = np.cumsum(vectors ** 2, axis=1) ** 0.5
    x = vectors[:, :k] / cumulative[:, k - 1:k]
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)
    changes = 1 + np.flatnonzero(labels[:-1] != labels[1:])
    changes = librosa.util.fix_frames(changes, x_min=0)
    bounds = list(times[changes[:-1]]) + [len(y) / sr]
    segment_labels = [f"L{labels[i]}" for i in changes[:-1]]
    edges = [0.0] + bounds[1:-1] + [len(y) / sr]
    return [(a, b, label) for a, b, label in zip(edges[:-1], edges[1:], segment_labels)]


def scores_row(name: str, per_piece: list[dict]) -> str:
    means = [np.mean([p[c] for p in per_piece if c in p]) if any(c in p for p in per_piece) else None for c in COLUMNS]
    return f"| {name} | " + " | ".join("-" if m is None else f"{m:.3f}" for m in means) + " |"


def accuracy_table(split: str, work: Path) -> str:
    pieces = structured(work, split)
    results = run_pipeline("default", pieces, work / "out", jobs=2)
    rows: dict[str, list[dict]] = {"mirflow `default` (structure.sections)": [], "one section": [],
                                   "fixed 8-bar grid (mirflow's downbeats)": [],
                                   "librosa Laplacian segmentation (k=5)": []}
    for piece in pieces:
        reference = load_reference(piece.truth).sections
        result = results[piece.name]
        ours = result["timeline"]["sections"]
        duration = result["source"]["duration"]
        found = {
            "mirflow `default` (structure.sections)": [(s["start"], s["end"], s["label"]) for s in ours],
            "one section": [(0.0, duration, "A")],
            "fixed 8-bar grid (mirflow's downbeats)": fixed_grid(result),
            "librosa Laplacian segmentation (k=5)": laplacian(piece.audio),
        }
        for name, estimate in found.items():
            rows[name].append(section_scores(estimate, reference))
        rows["mirflow `default` (structure.sections)"][-1]["function"] = function_accuracy(ours, reference)
        print(f"{piece.name}: {result['summary'].get('form', {}).get('label')}", flush=True)
    minutes = sum(r["source"]["duration"] for r in results.values()) / 60
    lines = [f"{len(pieces)} synthesized songs with known sections, `{split}` split ({minutes:.0f} min in all).",
             "", "| method | boundary F (0.5 s) | boundary F (3 s) | pairwise F | NCE F | function right (time) |",
             "|---|---|---|---|---|---|"]
    lines += [scores_row(name, per_piece) for name, per_piece in rows.items()]
    return "\n".join(lines)


def cost_table(work: Path) -> str:
    """Wall time of `default` with and without the step on one 5-minute song (three times each,
    interleaved, the fastest kept), the step's own seconds, and the merge's peak memory on 60 minutes."""
    song = work / "five.wav"
    write_song(song, 5, seed=5)
    without = work / "without.yaml"
    text = (ROOT / "pipelines" / "default.yaml").read_text()
    without.write_text("\n".join(line for line in text.splitlines() if "structure.sections" not in line) + "\n")
    runs: dict[str, list[float]] = {"default": [], "without": []}
    for _ in range(3):  # interleaved, the fastest of three kept: what the machine did meanwhile cancels out
        for name, pipeline in (("default", "default"), ("without", str(without))):
            runs[name].append(measure([MIRFLOW, "run", pipeline, str(song), "-o", str(work / name), "--force"])[0])
    walls = {name: min(times) for name, times in runs.items()}
    result = json.loads((work / "default" / "five.json").read_text())
    step = result["steps"]["sections"]["seconds"]
    total = sum(s["seconds"] for s in result["steps"].values())
    peak = merge_memory_mb(60)
    return "\n".join([
        "| measure | value |", "|---|---|",
        f"| `default` on a 5-minute song, wall | {walls['default']:.1f} s (without the step: {walls['without']:.1f} s, "
        f"{100 * (walls['default'] / walls['without'] - 1):+.1f} %) |",
        f"| the step's own CPU time (features + merge) | {step:.2f} s of {total:.1f} s for all steps "
        f"({100 * step / total:.1f} %) |",
        f"| the merge on 60 minutes (1,500 bars), peak memory | {peak:.0f} MB |",
    ])


def merge_inputs(minutes: float) -> tuple:
    """(times, frame features, beats, default config) of ``minutes`` of random section
    features and 100 BPM 4/4 bars: what the section step's merge gets on a song that long."""
    from mirflow.plugins.structure import Sections

    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * 22050 / 2048)
    times = np.arange(frames) * 2048 / 22050
    values = rng.random((frames, 25))
    values[:, -1] = -20.0
    beats = [{"time": 0.5 + n * 0.6, "position": n % 4 + 1} for n in range(int((minutes * 60 - 1) / 0.6))]
    return times, values, beats, {name: param.default for name, param in Sections.params.items()}


def merge_memory_mb(minutes: int) -> float:
    """tracemalloc peak of find_sections on ``minutes`` of frame features and 100 BPM 4/4 bars."""
    from mirflow.plugins.structure import find_sections

    times, values, beats, config = merge_inputs(minutes)
    tracemalloc.start()
    began = time.perf_counter()
    find_sections(times, values, minutes * 60.0, config, beats=beats)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"merge on {minutes} min: {seconds:.1f} s, peak {peak:.0f} MB", flush=True)
    return peak


def main() -> None:
    parser = arguments(__doc__, "docs/sections.md")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--skip-cost", action="store_true", help="only the accuracy table")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-structure-"))
    table = accuracy_table(args.split, work)
    if not args.skip_cost:
        table += "\n\nCost (machine: 2 cores):\n\n" + cost_table(work)
    publish(table, "structure", args.write)


if __name__ == "__main__":
    main()
