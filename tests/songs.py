"""Synthesized songs the tests share, and running pipelines of installed analyzers over them."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import run_pipeline
from mirflow.synth import Material, make_structured_song

# A B A B C B: verse, chorus, verse, chorus, bridge, chorus; each its own chords and arrangement.
MATERIALS = {
    "verse": Material(("A:min", "F:maj", "C:maj", "G:maj"), drums="light", texture="stabs", gain=0.8),
    "chorus": Material(("F:maj", "G:maj", "E:min", "A:min"), drums="full", texture="pad", gain=1.1, register=67),
    "bridge": Material(("D:min", "E:maj", "D:min", "E:maj"), drums="none", texture="arp", gain=0.9),
}
FORM = [("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 8), ("chorus", 8)]
# The chunking of the shared analysis's chunked run: four seams in the 97 s song.
CHUNKED = "{min_duration: 0, length: 30, overlap: 5}"


def structured_song():
    """The song the shared analysis is of (conftest's ``analyzed_song``): 48 bars at 120 BPM in
    A minor, sections A B A B C B, with exact beats, chords, key and sections."""
    return make_structured_song(FORM, MATERIALS, bpm=120, key="A minor", seed=3)


def with_chunking(text: str, chunking: str) -> str:
    """A pipeline's YAML with its ``chunking`` section replaced."""
    lines, kept, skipping = text.splitlines(), [], False
    for line in lines:
        if line.startswith("chunking:"):
            kept.append(f"chunking: {chunking}")
            skipping = True
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept) + "\n"


def run_songs(tmp_path, songs: dict, steps: str, chunking: str = "off", formats=("json",), **options) -> dict:
    """Results by name of one inline run of ``steps`` over ``songs`` (Songs or 44.1 kHz arrays)."""
    paths = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, song in songs.items():
        paths.append(tmp_path / f"{name}.flac")
        soundfile.write(paths[-1], song if isinstance(song, np.ndarray) else song.samples, 44100)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"chunking: {chunking}\nsteps: {steps}\n")
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    outcomes, _ = run_pipeline(load_pipeline(pipeline, registry), registry, pm, [str(p) for p in paths],
                               output_dir=tmp_path / "out", formats=list(formats), **({"inline": True} | options))
    assert all(o.ok for o in outcomes), outcomes
    return {name: json.loads((tmp_path / "out" / f"{name}.json").read_text()) for name in songs}


def drawn_result(duration: float, bpm: float) -> dict:
    """A result document as the page receives it, without analysing audio (the page's tests and
    benchmarks/page.py): beats at ``bpm`` in 4/4, a chord every two beats' bar-half, the loop
    C G Am F, one key, a section every 30 s (A verse, B chorus, ...), a tempo curve."""
    period = 60.0 / bpm
    times = np.arange(0.0, duration - 0.01, period)
    beats = [{"time": round(float(t), 4), "position": i % 4 + 1} for i, t in enumerate(times)]
    loop = ["C:maj", "G:maj", "A:min", "F:maj"]
    chords = [{"start": round(float(t), 4), "end": round(float(min(t + 2 * period, duration)), 4),
               "label": loop[i % 4], "confidence": 1.0} for i, t in enumerate(times[::2])]
    names = [("A", "verse"), ("B", "chorus"), ("A", "verse"), ("B", "chorus"), ("C", "bridge"), ("B", "chorus")]
    sections = [{"start": float(s), "end": float(min(s + 30.0, duration)), "label": names[i % 6][0],
                 "function": names[i % 6][1], "confidence": 1.0} for i, s in enumerate(np.arange(0, duration, 30.0))]
    return {
        "schema_version": 1,
        "source": {"path": "drawn.wav", "name": "drawn.wav", "duration": duration, "sample_rate": 44100, "channels": 1},
        "summary": {"tempo": {"bpm": bpm, "confidence": 1.0}, "key": {"label": "C major", "confidence": 1.0}},
        "steps": {},
        "timeline": {"beats": beats, "downbeats": [b["time"] for b in beats if b["position"] == 1], "chords": chords,
                     "keys": [{"start": 0.0, "end": duration, "label": "C major", "confidence": 1.0}],
                     "tempo": [{"time": b["time"], "bpm": bpm} for b in beats[1:]], "sections": sections},
        "errors": [],
    }
