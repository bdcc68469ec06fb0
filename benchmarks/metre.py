"""The metre stage on grooves that are not straight 4/4, per class of music, beside madmom.

    .venv/bin/python benchmarks/metre.py                       # groove test split: table per class
    .venv/bin/python benchmarks/metre.py --corpus groove-dev   # the split the stage was tuned on
    .venv/bin/python benchmarks/metre.py --corpus gm-test      # the GM corpus' test split
    .venv/bin/python benchmarks/metre.py --corpus real         # ../shared/realdata
    .venv/bin/python benchmarks/metre.py --corpus synth        # the project's own synthesizer
    .venv/bin/python benchmarks/metre.py --corpus all --write  # every table into docs/accuracy-metre.md
    .venv/bin/python benchmarks/metre.py --songs               # also one line per song
    .venv/bin/python benchmarks/metre.py --pipeline            # also through mirflow run (the scheduler)
    .venv/bin/python benchmarks/metre.py --write               # also rewrites docs/accuracy-metre.md

Each song's downbeat activations and pitch classes come from ``benchmarks/activations.py``'s
cache (madmom's RNNDownBeatProcessor on the whole file, as ``madmom_fast.downbeats`` computes
it for a file shorter than its chunks). On them, in one run: mirflow's bar decode without the
metre stage (``Downbeats.decode`` and ``bar_phase``, what the merge did before), with it
(``Downbeats.bars``, what the merge does now), and madmom's own DBNBeatTracker (beats, tempo)
and DBNDownBeatTracker (downbeats, bar length), cached beside the activations. Tempo is
``madmom_fast.tempo`` on each method's beats (madmom's: the median interval). Scores:
mir_eval through ``mirflow.evaluate``; "written metre" is the share of songs whose reported
time signature is the one written (6/8 and 12/8 count only as such; 3/4 and 4/4 as such).
With ``--pipeline`` the songs also go through ``mirflow run`` (the downbeat and tempo steps,
chunked as ``default``): the scheduler decodes the audio itself, and a decision on a boundary
can fall the other way than on the cached activations.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from activations import cached, pieces_of  # noqa: E402
from run import arguments, publish  # noqa: E402

from mirflow.evaluate import Reference, load_reference, score  # noqa: E402

METHODS = ("mirflow (metre stage)", "mirflow (before)", "madmom DBN trackers")
RUN = "mirflow run (downbeats + tempo)"  # --pipeline: the same songs through the scheduler
PIPELINE = ("name: metre\nsteps:\n  - {analyzer: madmom_fast.downbeats, id: beats}\n"
            "  - {analyzer: madmom_fast.tempo}\ntimeline: {tempo: tempo}\n")
MEASURES = ("beat_f", "downbeat_f", "tempo_acc1", "metre")
HEADERS = ("beat F", "downbeat F", "tempo Acc1", "written metre")


def tempo_of(times: np.ndarray) -> float | None:
    from mirflow.plugins.madmom_fast import Tempo

    value = Tempo().analyze(None, {"beats": [{"time": float(t)} for t in times]})["tempo"]["value"]
    return value


def answers(data: dict) -> dict[str, tuple]:
    """(beats, downbeats, tempo, time signature) per method for one song."""
    from mirflow.plugins.madmom_fast import Downbeats, bar_phase

    tracker = Downbeats()
    activation, chroma = data["activation"], data["chroma"]
    times, positions, signature, _ = tracker.decode(activation)
    positions = bar_phase(times, positions, chroma)  # what the merge did before the metre stage
    before = (times, times[positions == 1], tempo_of(times), signature)
    bars = tracker.bars(activation, chroma, data["onsets"])
    now = (bars.times, bars.times[bars.positions == 1], tempo_of(bars.times), bars.signature)
    peer_bars, peer_beats = data["peer_bars"], data["peer_beats"]
    peer_signature = f"{int(peer_bars[:, 1].max())}/4" if len(peer_bars) else None
    peer_tempo = 60 / float(np.median(np.diff(peer_beats))) if len(peer_beats) > 2 else None
    peer = (peer_beats, peer_bars[peer_bars[:, 1] == 1, 0], peer_tempo, peer_signature)
    return dict(zip(METHODS, (now, before, peer)))


def written(reference: Reference, piece) -> str | None:
    """The written time signature: the corpus says it (groove), else the bar length of the truth."""
    if getattr(piece, "signature", None):
        return piece.signature
    if reference.beats is None or reference.downbeats is None or len(reference.downbeats) < 2:
        return None
    per_bar = np.median(np.diff(np.searchsorted(reference.beats, reference.downbeats)))
    return f"{3 * int(per_bar)}/8" if "sixeight" in piece.name else f"{int(per_bar)}/4"


def run_answers(pieces, work: Path) -> dict[str, tuple]:
    """(beats, downbeats, tempo, time signature) per piece from one ``mirflow run`` of the
    downbeat and tempo steps (chunked as ``default`` chunks: files over 60 s are cut)."""
    from accuracy import run_pipeline

    (work / "metre.yaml").write_text(PIPELINE)
    results = run_pipeline(str(work / "metre.yaml"), pieces, work / "run", jobs=2)
    found = {}
    for piece in pieces:
        summary, timeline = results[piece.name]["summary"], results[piece.name]["timeline"]
        found[piece.name] = (np.array([b["time"] for b in timeline["beats"]]), np.array(timeline["downbeats"]),
                             (summary.get("tempo") or {}).get("bpm"), (summary.get("time_signature") or {}).get("label"))
    return found


def measure(corpus: str, songs: bool, pipeline: bool = False) -> str:
    work = Path(tempfile.mkdtemp(prefix="mirflow-metre-"))
    pieces = pieces_of(corpus, work)
    methods = (RUN,) * pipeline + METHODS
    ran = run_answers(pieces, work) if pipeline else {}
    rows: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    lines = []
    for piece in pieces:
        reference = load_reference(piece.truth)
        truth = Reference(beats=reference.beats, downbeats=reference.downbeats, tempo=reference.tempo)
        signature = written(reference, piece)
        kind = getattr(piece, "kind", None) or corpus
        found = answers(cached(corpus, piece))
        if pipeline:
            found[RUN] = ran[piece.name]
        for method, (beats, downbeats, tempo, label) in found.items():
            scores = score(Reference(beats=beats, downbeats=downbeats, tempo=tempo), truth)
            if signature:
                scores["metre"] = float(label == signature)
            for group in (kind, "all"):
                rows[group][method].append(scores)
            if songs:
                lines.append(f"{piece.name:60s} {method:24s} {label!s:5s} (written {signature}) "
                             + " ".join(f"{m}={scores[m]:.2f}" for m in MEASURES if m in scores))
    if songs:
        print("\n".join(lines))
    table = ["| class | songs | method | " + " | ".join(HEADERS) + " |", "|---|---|---|" + "---|" * len(HEADERS)]
    for group in sorted(rows, key=lambda g: (g == "all", g)):
        for method in methods:
            found = rows[group][method]
            cells = []
            for m in MEASURES:
                values = [r[m] for r in found if m in r]
                cells.append(f"{np.mean(values):.3f}" if values else "-")
            name = f"**{group}**" if group == "all" else group
            table.append(f"| {name} | {len(found)} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(table)


MARKERS = {"groove-test": "metre_groove_test", "gm-test": "metre_gm_test", "real": "metre_real",
           "groove-dev": "metre_groove_dev", "synth": "metre_synth"}


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy-metre.md")
    parser.add_argument("--corpus", choices=("groove-test", "groove-dev", "gm-test", "gm-dev", "real", "synth", "all"),
                        default="groove-test")
    parser.add_argument("--songs", action="store_true", help="also print one line per song and method")
    parser.add_argument("--pipeline", action="store_true", help="also run the songs through mirflow run")
    args = parser.parse_args()
    names = ("groove-test", "groove-dev", "gm-test", "real", "synth") if args.corpus == "all" else (args.corpus,)
    for name in names:
        publish(measure(name, args.songs, args.pipeline), MARKERS.get(name, ""), args.write and name in MARKERS,
                ROOT / "docs" / "accuracy-metre.md")


if __name__ == "__main__":
    main()
