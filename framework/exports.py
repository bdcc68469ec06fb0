"""Export formats beside the JSON result, each one read back by a real reader in the tests.

- ``json``: the result itself (docs/results.md);
- ``jams``: namespaces beat, chord, key_mode, tempo, segment_open (``jams.load``, mir_eval);
- ``lab``: one ``start<TAB>end<TAB>label`` file per segment timeline (chords, keys, sections
  and any other segment output), as mir_eval and Sonic Visualiser read them;
- ``csv``: beats with bar positions, the tempo curve, the sections (letter, function, bar)
  and every curve output, with a header row, for spreadsheets and Sonic Visualiser's layer import;
- ``png``: the timeline drawn (``mirflow[plot]``).

Each exporter takes a result (a strict-JSON dict; and, if it has an ``audio`` parameter, the
run's decoded track: mirflow.results.call_exporter) and returns ``[(suffix, text or bytes)]``;
the caller (mirflow.results.render_outputs) writes them atomically. Only ``json`` is the
core's; the built-in plugin ``formats`` (plugins/formats) registers the others through the
``register_exporters`` hook, as any plugin adds a format.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Callable


def export_json(result: dict) -> list[tuple[str, str]]:
    return [(".json", json.dumps(result, indent=1, allow_nan=False) + "\n")]


def export_jams(result: dict) -> list[tuple[str, str]]:
    return [(".jams", json.dumps(to_jams(result), indent=1, allow_nan=False) + "\n")]


def export_lab(result: dict) -> list[tuple[str, str]]:
    """``.chords.lab``, ``.keys.lab``, ``.sections.lab`` (the letters) and ``.<step>.<output>.lab``
    for other segment outputs."""
    files = []
    timeline = result["timeline"]
    named = ("chords", "keys", "sections")
    for name in named:
        if timeline.get(name):
            files.append((f".{name}.lab", _lab(timeline[name])))
    # A step's segments that are a timeline lane already (same times; the timeline's chords are
    # only spelled in the key) are not written twice.
    lanes = [[(s["start"], s["end"]) for s in timeline.get(name) or []] for name in named]
    for step_id, step in result["steps"].items():
        for output, value in (step.get("outputs") or {}).items():
            if _is_segments(value) and [(s["start"], s["end"]) for s in value] not in lanes:
                files.append((f".{step_id}.{output}.lab", _lab(value)))
    return files


def export_csv(result: dict) -> list[tuple[str, str]]:
    """``.beats.csv`` (time, position, downbeat), ``.tempo.csv`` and one file per curve output."""
    files = []
    timeline = result["timeline"]
    if timeline["beats"]:
        downbeats = set(timeline["downbeats"])
        rows = [(b["time"], "" if b.get("position") is None else b["position"], int(b["time"] in downbeats))
                for b in timeline["beats"]]
        files.append((".beats.csv", _csv(("time", "position", "downbeat"), rows)))
    if timeline.get("subdivisions"):  # the pulse grid: each pulse's beat (index from 0) and part (1 = on the beat)
        parts = result["summary"]["time_signature"]["subdivision"]
        files.append((".subdivisions.csv", _csv(("time", "beat", "part"), [
            (t, n // parts, n % parts + 1) for n, t in enumerate(timeline["subdivisions"])])))
    if timeline.get("sections"):
        files.append((".sections.csv", _csv(("start", "end", "label", "function", "confidence", "start_bar"), [
            (s["start"], s["end"], s["label"], s.get("function") or "", s.get("confidence"),
             "" if s.get("start_bar") is None else s["start_bar"]) for s in timeline["sections"]])))
    if timeline["tempo"]:
        files.append((".tempo.csv", _csv(("time", "bpm"), [(t["time"], t["bpm"]) for t in timeline["tempo"]])))
    for step_id, step in result["steps"].items():
        for output, value in (step.get("outputs") or {}).items():
            if isinstance(value, dict) and set(value) >= {"times", "values"}:
                columns = _curve_columns(value["values"])
                rows = [(t, *(v if isinstance(v, list) else [v])) for t, v in zip(value["times"], value["values"])]
                files.append((f".{step_id}.{output}.csv", _csv(("time", *columns), rows)))
    return files


def _is_segments(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(s, dict) and {"start", "end", "label"} <= set(s) for s in value)


def _lab(segments) -> str:
    return "".join(f"{s['start']:.6f}\t{s['end']:.6f}\t{s['label']}\n" for s in segments)


def _csv(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _curve_columns(values) -> tuple[str, ...]:
    if values and isinstance(values[0], list):
        return tuple(f"value{i}" for i in range(len(values[0])))
    return ("value",)


def key_to_jams(label: str) -> str:
    """'A minor' -> 'A:minor' (JAMS key_mode)."""
    tonic, _, mode = label.partition(" ")
    return f"{tonic}:{mode}" if mode else tonic


def to_jams(result: dict) -> dict:
    """The timeline as a JAMS document: namespaces beat, chord, key_mode, tempo, segment_open
    (the sections' letters; their functions in the annotation's sandbox)."""
    duration = result["source"]["duration"]
    timeline, summary = result["timeline"], result["summary"]

    def annotation(namespace, data, sandbox=None):
        return {
            "annotation_metadata": {
                "curator": {"name": "", "email": ""}, "annotator": {}, "version": result["mirflow_version"],
                "corpus": "", "annotation_tools": "mirflow", "annotation_rules": "",
                "validation": "", "data_source": f"mirflow pipeline {result['pipeline']['name']}",
            },
            "namespace": namespace, "data": data, "sandbox": sandbox or {}, "time": 0, "duration": duration,
        }

    def obs(time, dur, value, confidence=None):
        return {"time": time, "duration": dur, "value": value, "confidence": confidence}

    annotations = []
    if timeline["beats"]:
        metre = {k: v for k, v in (summary.get("time_signature") or {}).items() if k in ("label", "subdivision")}
        if timeline.get("subdivisions"):
            metre["subdivisions"] = timeline["subdivisions"]
        annotations.append(annotation("beat", [obs(b["time"], 0.0, b.get("position")) for b in timeline["beats"]],
                                      {"time_signature": metre} if metre else None))
    if timeline["chords"]:
        annotations.append(annotation("chord", [obs(c["start"], c["end"] - c["start"], c["label"], c.get("confidence"))
                                                for c in timeline["chords"]]))
    if timeline["keys"]:
        annotations.append(annotation("key_mode", [obs(k["start"], k["end"] - k["start"], key_to_jams(k["label"]), k.get("confidence"))
                                                   for k in timeline["keys"]]))
    elif "key" in summary:
        annotations.append(annotation("key_mode", [obs(0.0, duration, key_to_jams(summary["key"]["label"]), summary["key"]["confidence"])]))
    if timeline.get("sections"):
        sections = timeline["sections"]
        annotations.append(annotation("segment_open", [obs(s["start"], s["end"] - s["start"], s["label"], s.get("confidence"))
                                                       for s in sections],
                                      {"functions": [s.get("function") for s in sections]}))
    if "tempo" in summary:
        confidence = min(1.0, max(0.0, summary["tempo"].get("confidence") or 0.0))
        annotations.append(annotation("tempo", [obs(0.0, duration, summary["tempo"]["bpm"], confidence)]))
    return {
        "file_metadata": {"title": result["source"]["name"], "artist": "", "release": "", "duration": duration,
                          "identifiers": {"sha256": result["source"]["sha256"]}, "jams_version": "0.3.4"},
        "annotations": annotations,
        "sandbox": {"mirflow": {"schema_version": result["schema_version"], "pipeline": result["pipeline"]}},
    }


def export_png(result: dict, audio=None) -> list[tuple[str, bytes]]:
    """``.png``: the timeline drawn by mirflow.plot (needs ``mirflow[plot]``), its waveform
    from the run's decoded ``audio`` when the run hands it over (see mirflow.results.call_exporter)."""
    from .plot import render

    return [(".png", render(result, audio=audio))]


Exporter = Callable[[dict], list[tuple[str, str | bytes]]]

# The result itself, the one format of the core; the others come through the
# ``register_exporters`` hook (mirflow's own jams, lab, csv and png: the ``formats`` plugin).
CORE_EXPORTERS: dict[str, Exporter] = {"json": export_json}
