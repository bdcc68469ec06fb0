"""``mirflow.analyze``: the one call a notebook or a script needs, and the results it returns.

    import mirflow
    song = mirflow.analyze("song.flac")            # the default pipeline
    song.tempo, song.key, song.beats[:4], song.chords[0], song.sections
    song.to_json(); song.to_jams(); song.plot("song.png")
    songs = mirflow.analyze(["a.flac", "b.mp3"], pipeline="fast", output_dir="results")

It runs the same scheduler as ``mirflow run``: plugins from the installed entry points, one
worker process per core (``jobs=1`` runs everything in the calling process), and nothing is
written unless ``output_dir`` is given. Worker processes are spawned and import the calling
script: a script (not a notebook) must call ``analyze`` under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AnalysisError(Exception):
    """A file that could not be analyzed at all (not decodable, say); the message names it."""


@dataclass
class Result:
    """One file's result: the strict-JSON dict of docs/results.md (``data``) with the timeline
    as attributes. ``errors`` lists the steps that failed; ``ok`` is False when one did."""

    path: str
    data: dict[str, Any]
    ok: bool = True
    written: list[str] = field(default_factory=list)

    # -- the timeline -------------------------------------------------------------------
    @property
    def summary(self) -> dict[str, Any]:
        return self.data["summary"]

    @property
    def timeline(self) -> dict[str, Any]:
        return self.data["timeline"]

    @property
    def duration(self) -> float:
        return self.data["source"]["duration"]

    @property
    def tempo(self) -> float | None:
        """The song's tempo in BPM."""
        return (self.summary.get("tempo") or {}).get("bpm")

    @property
    def key(self) -> str | None:
        """The song's key, e.g. 'A minor'."""
        return (self.summary.get("key") or {}).get("label")

    @property
    def beats(self) -> list[float]:
        return [beat["time"] for beat in self.timeline["beats"]]

    @property
    def downbeats(self) -> list[float]:
        return list(self.timeline["downbeats"])

    @property
    def chords(self) -> list[dict[str, Any]]:
        """Chord segments: start, end, label (Harte, e.g. 'A:min'), confidence."""
        return self.timeline["chords"]

    @property
    def keys(self) -> list[dict[str, Any]]:
        """Key segments (key changes), like ``chords``."""
        return self.timeline["keys"]

    @property
    def sections(self) -> list[dict[str, Any]]:
        """Sections: start, end, label (A, B, ...), function (verse, chorus, ...)."""
        return self.timeline["sections"]

    @property
    def tempo_curve(self) -> list[dict[str, float]]:
        return self.timeline["tempo"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.data["errors"]

    # -- the formats ----------------------------------------------------------------------
    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.data, indent=indent, allow_nan=False)

    def to_jams(self) -> dict[str, Any]:
        """The timeline as a JAMS document (a dict; ``jams.JAMS.loads(json.dumps(...))`` reads it)."""
        from .exports import to_jams

        return to_jams(self.data)

    def plot(self, target: str | Path | None = None, **options) -> bytes | Path:
        """The timeline drawn as a PNG (``mirflow[plot]``): its bytes, or written to ``target``."""
        from .plot import plot_result, render

        return plot_result(self.data, target, **options) if target is not None else render(self.data, **options)

    def save(self, directory: str | Path, formats=("json",), name: str | None = None) -> list[str]:
        """Write the result in ``formats`` (json, jams, lab, csv, png, a plugin's such as mid) into
        ``directory``. Plugins (mirflow's ``formats`` among them) are loaded only for a format
        other than ``json``."""
        from .exports import CORE_EXPORTERS
        from .results import write_outputs

        exporters = CORE_EXPORTERS
        if set(formats) - set(CORE_EXPORTERS):  # the other formats come from plugins
            from .plugin_manager import collect_analyzers, make_plugin_manager

            exporters = collect_analyzers(make_plugin_manager()).exporters
            unknown = [f for f in formats if f not in exporters]
            if unknown:
                raise ValueError(f"unknown format {unknown[0]!r} (choose from {', '.join(exporters)})")
        written, _ = write_outputs(self.data, Path(directory), name or Path(self.path).stem, formats, exporters)
        return written

    def __repr__(self) -> str:
        facts = [f"{self.duration:.1f} s"]
        if self.tempo is not None:
            facts.append(f"{self.tempo:.1f} BPM")
        if self.key:
            facts.append(self.key)
        facts += [f"{len(self.beats)} beats", f"{len(self.chords)} chords", f"{len(self.sections)} sections"]
        if self.errors:
            facts.append(f"{len(self.errors)} error(s)")
        return f"<mirflow.Result {Path(self.path).name}: {', '.join(facts)}>"


def analyze(paths, pipeline: Any = "default", *, output_dir: str | Path | None = None, formats=None,
            jobs: int | None = None, device: str | None = None, force: bool = False,
            disabled: tuple[str, ...] = ()) -> Result | list[Result]:
    """Analyze one file (returns a :class:`Result`) or a list of files or a folder (the audio
    files in it and below, as ``mirflow run`` finds them): a list of Results, in order.

    ``pipeline``: a bundled pipeline's name, a YAML path, or a loaded ``mirflow.pipeline.Pipeline``.
    ``output_dir``: also write each result there in ``formats`` (default: the pipeline's), and
    skip files whose result there is up to date (unless ``force``). ``jobs``: CPU worker
    processes (default one per core; 1 runs everything in this process). A file that cannot
    be analyzed at all raises :class:`AnalysisError`; in a list it gets a Result with ``ok``
    False and the reason in ``errors`` (the others go on). A failed step does not raise: it is
    in ``Result.errors``.
    """
    from .pipeline import Pipeline, find_pipeline, load_pipeline
    from .plugin_manager import collect_analyzers, make_plugin_manager
    from .scheduler import run_pipeline

    single = isinstance(paths, (str, Path)) and not Path(paths).is_dir()
    files = [str(paths)] if single else _audio_files(paths) if isinstance(paths, (str, Path)) else [str(p) for p in paths]
    pm = make_plugin_manager(disabled=disabled)
    registry = collect_analyzers(pm)
    spec = pipeline if isinstance(pipeline, Pipeline) else load_pipeline(find_pipeline(pipeline), registry)
    if output_dir is not None:
        from .io import check_writable

        try:  # before any worker starts
            check_writable(output_dir)
        except OSError as err:
            raise AnalysisError(f"{output_dir}: cannot write results there ({err.strerror or err})") from None
    outcomes, _ = run_pipeline(spec, registry, pm, files, jobs=jobs, inline=jobs == 1, device=device,
                               output_dir=output_dir, formats=formats, force=force, disabled=tuple(disabled))
    results = []
    for outcome in outcomes:
        data = outcome.result
        if data is None and outcome.skipped and outcome.written:  # up to date in output_dir
            data = json.loads(Path(outcome.written[0]).read_text(encoding="utf-8"))
        if data is None:
            message = outcome.error or f"{outcome.path}: {outcome.skipped or 'not analyzed'}"
            if single:
                raise AnalysisError(message)
            results.append(Result(outcome.path, unanalyzed(outcome.path, message), ok=False))
            continue
        results.append(Result(outcome.path, data, ok=outcome.ok, written=list(outcome.written)))
    return results[0] if single else results


def _audio_files(folder: str | Path) -> list[str]:
    """The audio files in ``folder`` and below, as ``mirflow run`` finds them."""
    from .cli.common import AUDIO_EXTENSIONS

    found = sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not found:
        raise AnalysisError(f"{folder}: the folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return found


def unanalyzed(path: str, message: str) -> dict[str, Any]:
    """The result of a file that could not be analyzed at all: nothing found, the reason in ``errors``."""
    from .results import SCHEMA_VERSION, empty_timeline, mirflow_version

    return {"schema_version": SCHEMA_VERSION, "mirflow_version": mirflow_version(),
            "source": {"path": str(Path(path).resolve()), "name": Path(path).name, "duration": 0.0},
            "pipeline": None, "chunks": [], "steps": {}, "summary": {}, "timeline": empty_timeline(),
            "errors": [{"stage": "decode", "file": path, "message": message}]}
