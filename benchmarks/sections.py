"""Sections on songs the rules were not tuned on: structure.sections beside a novelty baseline.

    .venv/bin/python benchmarks/sections.py                 # the test split, prints the table
    .venv/bin/python benchmarks/sections.py --split dev     # the split the rules are tuned on
    .venv/bin/python benchmarks/sections.py --write         # also rewrites the table in docs/sections.md

Songs: ``gm_forms`` (GM-soundfont songs with forms; dev rendered with FluidR3, test with
TimGM6mb and MuseScore General Lite, other seeds), ``band_corpus`` (arranger-style songs:
one band, groove variations and fills; dev seeds 500-523 on FluidR3 with the forms the test
split showed the rules miss, test seeds 400-409 on sf_GMbank, unchanged) and, as a last row, the
project's own synthesizer (``corpus.structured``). Each song runs once through ``mirflow run default``
(beats, downbeats, chords); its result and the section step's frame features (computed
as the step computes them, on the whole file) are cached in ``~/.cache/mirflow/sections-bench``,
so the section logic (``find_sections``) reruns in seconds on them. Peers on the same
features and beats: one section; Foote's novelty (2000) on beat-synchronous chroma and
MFCCs (a 16-beat checkerboard kernel, peaks above the curve's median plus one standard
deviation, at least 8 beats apart; each segment its own label). Scores are mir_eval.segment's
(``mirflow.evaluate.section_scores``) and the share of time whose ``function`` is right.
Cost: ``find_sections`` alone on a 5- and a 60-minute song (features of noise, 100 BPM bars).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import run_pipeline  # noqa: E402
from gm_corpus import CACHE as GM_CACHE  # noqa: E402
from gm_forms import function_of, gm_forms  # noqa: E402
from run import arguments, publish  # noqa: E402

from mirflow.evaluate import load_reference, section_scores  # noqa: E402

CACHE = GM_CACHE.parent / "sections-bench"
COLUMNS = ("sections_f05", "sections_f3", "sections_pairwise", "function", "short")


def pieces_of(source: str, split: str):
    if source == "gm":
        return gm_forms(split)
    if source == "band":
        from band_corpus import band_corpus

        return band_corpus(split)
    from corpus import structured

    folder = CACHE / f"synth-{split}-audio"
    folder.mkdir(parents=True, exist_ok=True)
    return structured(folder, split)


def cached(source: str, split: str) -> list[dict]:
    """Per song: its reference, the pipeline's beats and chords, the step's frame features."""
    pieces = pieces_of(source, split)
    folder = CACHE / f"{source}-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [p for p in pieces if not (folder / f"{p.audio.stem}.json").exists()]
    if missing:
        results = run_pipeline("default", missing, folder / "run", jobs=2)
        for piece in missing:
            (folder / f"{piece.audio.stem}.json").write_text(json.dumps(results[piece.name]))
    songs = []
    for piece in pieces:
        result = json.loads((folder / f"{piece.audio.stem}.json").read_text())
        features = folder / f"{piece.audio.stem}.npz"
        if not features.exists():
            times, values = frame_features(piece.audio)
            np.savez(features, times=times, values=values)
        loaded = np.load(features)
        songs.append({"name": piece.name, "reference": load_reference(piece.truth).sections,
                      "beats": result["timeline"].get("beats"), "chords": result["timeline"].get("chords"),
                      "duration": result["source"]["duration"], "times": loaded["times"],
                      "values": loaded["values"], "pipeline": result["timeline"].get("sections")})
    return songs


def frame_features(audio: Path) -> tuple[np.ndarray, np.ndarray]:
    """The section step's features on the whole file (as one chunk, 22.05 kHz mono)."""
    import soundfile
    import soxr

    from mirflow.audio import Chunk
    from mirflow.plugins.structure import Sections

    samples, rate = soundfile.read(str(audio), dtype="float32", always_2d=True)
    mono = soxr.resample(samples.mean(axis=1), rate, 22050).astype(np.float32)
    duration = len(mono) / 22050
    chunk = Chunk(0, 0.0, duration, 0.0, duration, mono, 22050, str(audio))
    found = Sections().analyze(chunk, {})["features"]
    return np.asarray(found["times"]), np.asarray(found["values"])


def ours(song: dict, config: dict | None = None) -> list[dict]:
    from mirflow.plugins.structure import Sections, find_sections

    settings = {name: param.default for name, param in Sections.params.items()} | (config or {})
    return find_sections(song["times"], song["values"], song["duration"], settings, beats=song["beats"],
                         chords=song["chords"])


def foote(song: dict, half: int = 16) -> list[tuple[float, float, str]]:
    """Foote's checkerboard novelty on beat-synchronous chroma + MFCC (cosine self-similarity)."""
    from mirflow.plugins.structure.segment import foote_novelty, unit_length, unit_means

    beats = np.array([b["time"] for b in song["beats"] or []])
    edges = np.r_[0.0, beats[beats > 0.05], song["duration"]]
    means = unit_means(song["times"], song["values"][:, :24], edges, 1)[:, 0, :]
    standard = (means - means.mean(axis=0)) / np.maximum(means.std(axis=0), 1e-6)
    unit = unit_length(standard)
    novelty = foote_novelty(unit @ unit.T, half)
    threshold = np.median(novelty) + novelty.std()
    peaks = [i for i in range(1, len(novelty) - 1) if novelty[i] >= threshold
             and novelty[i] == novelty[max(0, i - 8):i + 9].max()]
    bounds = [0.0] + [float(edges[i]) for i in peaks] + [song["duration"]]
    return [(a, b, f"S{n}") for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def function_accuracy(estimate: list[dict], reference: list) -> float:
    """Share of the reference's time where the estimated section's function is the annotated one."""
    total = reference[-1][1] - reference[0][0]
    right = sum(max(0.0, min(end, s["end"]) - max(start, s["start"]))
                for start, end, name in reference for s in estimate if s.get("function") == function_of(name))
    return right / total


def shorter_than(sections: list, seconds: float = 8.0) -> float:
    """How many sections (not the first or last) are shorter than ``seconds``."""
    return float(sum(1 for s in sections[1:-1] if s[1] - s[0] < seconds))


def evaluate(songs: list[dict], config: dict | None = None, verbose: bool = False) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"structure.sections": [], "Foote novelty (beat chroma+MFCC)": [],
                                   "one section": []}
    for song in songs:
        found = ours(song, config)
        mine = [(s["start"], s["end"], s["label"]) for s in found]
        for name, estimate in (("structure.sections", mine), ("Foote novelty (beat chroma+MFCC)", foote(song)),
                               ("one section", [(0.0, song["duration"], "A")])):
            scores = section_scores(estimate, song["reference"])
            scores["short"] = shorter_than(estimate)
            rows[name].append(scores)
        rows["structure.sections"][-1]["function"] = function_accuracy(found, song["reference"])
        if verbose:
            s = rows["structure.sections"][-1]
            print(f"{song['name'][:40]:40s} f3 {s['sections_f3']:.2f} f05 {s['sections_f05']:.2f} "
                  f"pw {s['sections_pairwise']:.2f} fn {s['function']:.2f} | {len(found)} vs "
                  f"{len(song['reference'])}: {' '.join(x['label'] for x in found)}", flush=True)
    return rows


def means(per_piece: list[dict]) -> list[float | None]:
    return [float(np.mean([p[c] for p in per_piece])) if per_piece and c in per_piece[0] else None for c in COLUMNS]


def accuracy_table(split: str, verbose: bool) -> str:
    lines = ["| songs | method | boundary F (0.5 s) | boundary F (3 s) | pairwise F | function right (time) |"
             " sections < 8 s per song |", "|---|---|---|---|---|---|---|"]
    sources = [("gm", "GM-soundfont forms"), ("band", "arranger-style band songs"), ("synth", "own synthesizer")]
    for source, title in sources:
        songs = cached(source, split)
        minutes = sum(s["duration"] for s in songs) / 60
        for method, per_piece in evaluate(songs, verbose=verbose).items():
            if source != "gm" and method == "one section":
                continue
            values = ["-" if m is None else f"{m:.3f}" if c != "short" else f"{m:.2f}"
                      for c, m in zip(COLUMNS, means(per_piece))]
            lines.append(f"| {title}, `{split}` ({len(songs)} songs, {minutes:.0f} min) | {method} | "
                         + " | ".join(values) + " |")
    return "\n".join(lines)


def cost_table() -> str:
    """Seconds of ``find_sections`` alone on 5 and 60 minutes of features (100 BPM 4/4 bars)."""
    from structure import merge_inputs

    from mirflow.plugins.structure import find_sections

    rows = ["| song | bars | seconds (the section step's merge alone; 2-core machine, nothing else running) |", "|---|---|---|"]
    for minutes in (5, 60):
        times, values, beats, config = merge_inputs(minutes)
        began = time.perf_counter()
        find_sections(times, values, minutes * 60.0, config, beats=beats)
        rows.append(f"| {minutes} min | {len(beats) // 4} | {time.perf_counter() - began:.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = arguments(__doc__, "docs/sections.md")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--verbose", action="store_true", help="a line per song")
    args = parser.parse_args()
    table = accuracy_table(args.split, args.verbose) + "\n\nCost:\n\n" + cost_table()
    publish(table, "sections", args.write, ROOT / "docs" / "sections.md")


if __name__ == "__main__":
    main()
