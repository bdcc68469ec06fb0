"""Run a pipeline of installed analyzers over synthesized songs: the helper the plugin tests share."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.scheduler import run_pipeline


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
