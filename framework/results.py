"""The result of one file: its JSON model, file names and atomic writes (formats: exports.py).

Format (``schema_version`` 1): ``source``, ``pipeline``, ``chunks``, ``steps`` (per
step: analyzer, version, params, status, device, seconds, cpu_seconds, outputs, error),
``summary`` (tempo, key, time signature, other scalars and labels), ``timeline``
(beats, downbeats, chords, keys, tempo, sections) and ``errors``. docs/results.md has it all.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import vote_labels
from .analyzer import LABEL, SCALAR
from .io import write_together
from .spelling import spell_chords

SCHEMA_VERSION = 1


def mirflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mirflow")
    except PackageNotFoundError:
        return "0+unknown"


def build_result(*, pipeline, path, source, content_hash, spans, records, registry) -> dict[str, Any]:
    """Assemble the result dict for one file from its step records. A summary that fails
    (a descriptor bound to an output it cannot read) is an error in the result, not a lost file."""
    outputs = {sid: r.outputs for sid, r in records.items() if r.status == "ok"}
    errors = [
        {"step": sid, "analyzer": r.analyzer, "file": path, **(r.error or {})}
        for sid, r in records.items() if r.status != "ok"
    ]
    try:
        summary, timeline = summarize(pipeline, outputs, registry)
    except Exception as err:
        summary, timeline = {}, empty_timeline()
        errors.append({"stage": "summarize", "file": path, "message": f"{type(err).__name__}: {err}"})
    return to_jsonable({
        "schema_version": SCHEMA_VERSION,
        "mirflow_version": mirflow_version(),
        "source": {
            "path": str(Path(path).resolve()),
            "name": Path(path).name,
            "duration": source.duration,
            "sample_rate": source.sample_rate,
            "channels": source.channels,
            "sha256": content_hash,
            "notes": list(getattr(source, "notes", ())),
        },
        "pipeline": {"name": pipeline.name, "path": str(pipeline.path), "hash": pipeline.hash},
        "chunks": [asdict(span) for span in spans],
        # Each record's fields as they are: to_jsonable copies them anyway (asdict deep-copied
        # every output first, ~0.5 s for a 60-minute result).
        "steps": {sid: {f.name: getattr(r, f.name) for f in fields(r)} for sid, r in records.items()},
        "summary": summary,
        "timeline": timeline,
        "errors": errors,
    })


def empty_timeline() -> dict[str, list]:
    return {"beats": [], "downbeats": [], "chords": [], "keys": [], "tempo": [], "sections": []}


def summarize(pipeline, outputs: dict[str, dict], registry) -> tuple[dict, dict]:
    """Fill ``summary`` and ``timeline`` from the steps the pipeline chose for each descriptor."""

    def pick(descriptor):
        spec = pipeline.timeline.get(descriptor)
        if not spec:
            return None
        if "vote" in spec:
            found = [outputs[s][o] for s, o in spec["vote"] if s in outputs and o in outputs[s]]
            if not found:
                return None
            voted = vote_labels(found)
            voted["timeline"] = found[0].get("timeline", [])
            return voted
        step_id, output = spec["from"]
        return outputs.get(step_id, {}).get(output)

    summary: dict[str, Any] = {}
    timeline: dict[str, Any] = empty_timeline()
    tempo = pick("tempo")
    if tempo and tempo.get("value") is not None:
        extra = {k: v for k, v in tempo.items() if k not in ("value", "confidence")}
        summary["tempo"] = {"bpm": tempo["value"], "confidence": tempo.get("confidence"), **extra}
    key = pick("key")
    if key and key.get("label"):
        summary["key"] = {"label": key["label"], "confidence": key.get("confidence")}
        timeline["keys"] = [{k: s[k] for k in ("start", "end", "label", "confidence") if k in s}
                            for s in key.get("timeline", [])]
    signature = pick("time_signature")
    if signature and signature.get("label"):
        summary["time_signature"] = {"label": signature["label"], "confidence": signature.get("confidence")}
        if signature.get("subdivision"):  # pulses per beat: 3 in 6/8, 12/8 and shuffles, else 2
            summary["time_signature"]["subdivision"] = int(signature["subdivision"])
    if (keys := pick("keys")) is not None:
        timeline["keys"] = keys
    beats = pick("beats") or []
    timeline["beats"] = [{"time": b["time"], "position": b.get("position")} for b in beats]
    if (summary.get("time_signature") or {}).get("subdivision") and len(beats) > 1:
        timeline["subdivisions"] = subdivision_grid([b["time"] for b in beats],
                                                    summary["time_signature"]["subdivision"])
    downbeats = pick("downbeats")
    if downbeats is not None:
        timeline["downbeats"] = [d["time"] for d in downbeats]
    else:
        timeline["downbeats"] = [b["time"] for b in beats if b.get("position") == 1]
    # Spelled in the key where each starts (D#:maj in Eb major reads Eb:maj): spelling.py.
    timeline["chords"] = spell_chords(pick("chords") or [], timeline["keys"], (summary.get("key") or {}).get("label"))
    timeline["sections"] = pick("sections") or []
    form = pick("form")
    if form and form.get("label"):
        summary["form"] = {k: v for k, v in form.items() if k != "timeline"}
    curve = pick("tempo_curve")
    if curve is not None:
        timeline["tempo"] = [{"time": t, "bpm": v} for t, v in zip(curve["times"], curve["values"])]

    # Every other scalar and label a step gives, named by output (step.output when shared).
    chosen = {tuple(spec["from"]) for spec in pipeline.timeline.values() if "from" in spec}
    extras = [(sid, name, value) for sid, outs in outputs.items() for name, value in outs.items()
              if (sid, name) not in chosen
              and registry.get(pipeline.step(sid).analyzer).outputs.get(name) in (SCALAR, LABEL)]
    counts = Counter(name for _, name, _ in extras)
    for sid, name, value in extras:
        # A descriptor's name (tempo, key, ...) is only ever the chosen step's, even when that
        # step had no answer: another step's tempo must not pass for it.
        bare = counts[name] == 1 and name not in summary and name not in pipeline.timeline
        label = name if bare else f"{sid}.{name}"
        summary[label] = {k: v for k, v in value.items() if k != "timeline"}
    return summary, timeline


def subdivision_grid(beats: list[float], parts: int) -> list[float]:
    """The pulses between the beats: each interval split into ``parts`` equal steps (the beats
    themselves included), so a 6/8 timeline shows its eighths."""
    grid = [a + (b - a) * k / parts for a, b in zip(beats[:-1], beats[1:]) for k in range(parts)]
    return [round(t, 6) for t in grid] + [beats[-1]]


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy arrays to lists, numpy scalars to numbers, NaN to null.

    A list's plain floats are converted in place of a call each (a 60-minute result holds
    ~100,000 of them: ~0.8 s in the coordinator, before the file's export could start)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_float(v) if type(v) is float else to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return _json_float(value)
    return value


def _json_float(value: float) -> float | None:
    """6 decimals (microseconds, and no 0.6000000000000001); NaN and infinities to null."""
    return round(value, 6) if math.isfinite(value) else None


def output_names(paths: list[str]) -> dict[str, str]:
    """Result base names: the input's stem, plus a short path hash where stems clash."""
    stems = Counter(Path(p).stem for p in paths)
    names = {}
    for path in paths:
        stem = Path(path).stem
        if stems[stem] > 1:
            digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
            stem = f"{stem}.{digest}"
        names[path] = stem
    return names


def render_outputs(result: dict, formats, exporters, audio=None) -> tuple[list[tuple[str, str | bytes]], list[dict]]:
    """Each format's files as ``(suffix, content)``, and the errors of the exporters that
    failed (stage ``export``, with the format: the others go on). ``result`` is not changed:
    the JSON is rendered last, from a copy whose ``errors`` hold the exporters' too. ``audio``:
    the run's decoded track, for exporters that take it (:func:`call_exporter`)."""
    files: list[tuple[str, str | bytes]] = []
    errors: list[dict] = []
    for fmt in [f for f in formats if f != "json"]:
        try:
            produced = list(call_exporter(exporters[fmt], result, audio))
            for suffix, content in produced:
                if not (isinstance(suffix, str) and suffix.startswith(".") and "/" not in suffix
                        and isinstance(content, (str, bytes))):
                    raise TypeError(f"expected (suffix like '.txt', text or bytes), "
                                    f"got ({suffix!r}, {type(content).__name__})")
        except Exception as err:
            errors.append({"stage": "export", "format": fmt, "file": result["source"]["path"],
                           "message": f"{fmt} exporter failed: {type(err).__name__}: {err}"})
            continue
        files.extend(produced)
    if "json" in formats:
        files.insert(0, exporters["json"](with_errors(result, errors))[0])
    return files, errors


def call_exporter(exporter, result: dict, audio=None) -> list:
    """``exporter(result)``, or ``exporter(result, audio=audio)`` for an exporter that takes an
    ``audio`` parameter: the track the run already decoded (a :class:`mirflow.audio.Decoded`
    view of its mapped raw samples), so that a format drawing or measuring the sound does not
    decode the source again. Opt-in by signature, so exporters written for ``exporter(result)``
    keep working; ``audio`` is None where the caller has no decoded track (``Result.save``)."""
    import inspect

    try:
        takes_audio = "audio" in inspect.signature(exporter).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        takes_audio = False
    return exporter(result, audio=audio) if takes_audio else exporter(result)


def with_errors(result: dict, errors: list[dict]) -> dict:
    """``result`` with more ``errors`` (a new dict; the original is left as it is)."""
    return {**result, "errors": [*result["errors"], *errors]} if errors else result


def write_outputs(result: dict, directory: Path, name: str, formats, exporters, audio=None) -> tuple[list[str], list[dict]]:
    """Write the result in every format, all files or none (mirflow.io.write_together; the
    JSON, which resume reads, is renamed last); return the paths written and the exporters'
    errors (the caller adds them to its result: this changes nothing in place)."""
    rendered, errors = render_outputs(result, formats, exporters, audio)
    files = [(Path(directory) / f"{name}{suffix}", content) for suffix, content in rendered]
    write_together(sorted(files, key=lambda item: item[0].name == f"{name}.json"))
    return [str(path) for path, _ in files], errors


def expected_files(result: dict, directory: Path, name: str, formats, exporters) -> list[Path] | None:
    """The files ``write_outputs`` gives for ``result`` in ``formats`` (None when an exporter
    fails on it): what resume checks before it trusts an existing result."""
    suffixes = [".json"] if "json" in formats else []
    for fmt in (f for f in formats if f != "json"):
        try:
            suffixes += [suffix for suffix, _ in exporters[fmt](result)]
        except Exception:  # noqa: BLE001 - a format that cannot be rendered is not complete
            return None
    return [Path(directory) / f"{name}{suffix}" for suffix in suffixes]
