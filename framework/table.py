"""One row per result file: the overview of a library that ``mirflow table`` writes.

A row flattens a result's summary into fixed, stable column names (``COLUMNS``); any other
summary entry is reachable as ``summary.<name>`` (its value or label). Results of every
schema version this mirflow knows are read (there has been one, ``1``; its early files lack
later fields such as sections, which are then empty); a file that is no result, is broken
JSON or comes from a newer schema is reported by name and left out, never guessed at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .results import SCHEMA_VERSION
from .spelling import pitch_class

COLUMNS = {
    "path": "the analysed audio file",
    "name": "its file name",
    "duration": "seconds",
    "tempo": "BPM",
    "tempo_confidence": "0-1",
    "key": "e.g. A minor",
    "key_confidence": "0-1",
    "camelot": "the key's Camelot code (8A = A minor, 8B = C major)",
    "time_signature": "e.g. 4/4",
    "danceability": "Essentia's danceability, where the pipeline has it",
    "loudness": "integrated loudness (LUFS), where the pipeline has it",
    "form": "the sections' letters, e.g. A B A B C B",
    "beats": "number of beats",
    "downbeats": "number of downbeats",
    "chords": "number of chord segments",
    "sections": "number of sections",
    "key_changes": "number of key segments less one",
    "errors": "number of errors in the result (failed steps, exports)",
    "pipeline": "the pipeline's name",
    "schema_version": "the result format's version",
    "mirflow_version": "the mirflow that wrote it",
    "result": "the result JSON file",
}


class NotAResult(ValueError):
    """A file that cannot be read as a mirflow result; the message says why, in a few words."""


def find_results(inputs: list[str | Path]) -> list[Path]:
    """The ``.json`` files named or found (recursively, hidden ones left out) under the folders given."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*.json")
                            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts))
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def load_result(path: Path) -> dict:
    """The result in ``path``, or :class:`NotAResult` saying why not."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAResult("no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotAResult(f"not JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("source"), dict) or "schema_version" not in data:
        raise NotAResult("not a mirflow result (JSON with 'schema_version' and 'source')")
    version = data["schema_version"]
    if not isinstance(version, int) or version < 1:
        raise NotAResult(f"unknown schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise NotAResult(f"schema_version {version} is newer than this mirflow reads ({SCHEMA_VERSION}): "
                         f"upgrade mirflow")
    return data


def camelot(key: str | None) -> str | None:
    """'A minor' -> '8A', 'C major' -> '8B', 'F# major' -> '2B'; None for what is no major/minor key."""
    tonic, _, mode = str(key or "").partition(" ")
    pitch = pitch_class(tonic)
    if pitch is None or mode not in ("major", "minor"):
        return None
    major = (pitch + 3) % 12 if mode == "minor" else pitch  # a minor key is read by its relative major
    number = (7 * major + 8) % 12 or 12
    return f"{number}{'A' if mode == 'minor' else 'B'}"


def _value(entry: Any) -> Any:
    """A summary entry's value: the number of a scalar, the text of a label."""
    if isinstance(entry, dict):
        for field in ("value", "label", "bpm"):
            if field in entry:
                return entry[field]
        return None
    return entry


def _named(summary: dict, name: str) -> Any:
    """``name`` from the summary, or the one step's ``<step>.name`` where two steps gave it."""
    if name in summary:
        return _value(summary[name])
    found = [key for key in summary if key.endswith(f".{name}")]
    return _value(summary[found[0]]) if found else None


def row(result: dict, result_path: Path | str) -> dict[str, Any]:
    """The flat row of one result: every column of ``COLUMNS`` (None where it has no answer)
    and ``summary.<name>`` for each other summary entry."""
    source, summary = result["source"], result.get("summary") or {}
    timeline = result.get("timeline") or {}
    tempo, key = summary.get("tempo") or {}, summary.get("key") or {}
    values = {
        "path": source.get("path"), "name": source.get("name"), "duration": source.get("duration"),
        "tempo": tempo.get("bpm"), "tempo_confidence": tempo.get("confidence"),
        "key": key.get("label"), "key_confidence": key.get("confidence"), "camelot": camelot(key.get("label")),
        "time_signature": (summary.get("time_signature") or {}).get("label"),
        "danceability": _named(summary, "danceability"), "loudness": _named(summary, "loudness"),
        "form": (summary.get("form") or {}).get("label"),
        "beats": len(timeline.get("beats") or []), "downbeats": len(timeline.get("downbeats") or []),
        "chords": len(timeline.get("chords") or []), "sections": len(timeline.get("sections") or []),
        "key_changes": max(0, len(timeline.get("keys") or []) - 1),
        "errors": len(result.get("errors") or []),
        "pipeline": (result.get("pipeline") or {}).get("name"), "schema_version": result["schema_version"],
        "mirflow_version": result.get("mirflow_version"), "result": str(result_path),
    }
    for name, entry in summary.items():
        values[f"summary.{name}"] = _value(entry)
    return values


def choose_columns(wanted: str | None, rows: list[dict]) -> list[str]:
    """``wanted`` (comma-separated) checked against what exists, or every fixed column."""
    if not wanted:
        return list(COLUMNS)
    known = list(COLUMNS) + sorted({name for r in rows for name in r if name.startswith("summary.")})
    chosen = [c.strip() for c in wanted.split(",") if c.strip()]
    for column in chosen:
        if column not in known and not column.startswith("summary."):
            import difflib

            close = difflib.get_close_matches(column, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"--columns: unknown column {column!r}{hint}; columns: {', '.join(COLUMNS)} "
                             f"and summary.<name> for any summary entry")
    return chosen


def render(rows: list[dict], columns: list[str], suffix: str) -> str | bytes:
    """The table as ``.csv`` (header row; empty cells for no answer), ``.jsonl`` (one object a
    line; null for no answer) or ``.parquet`` (needs pyarrow)."""
    picked = [{c: r.get(c) for c in columns} for r in rows]
    if suffix == ".csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if r[c] is None else r[c] for c in columns] for r in picked])
        return buffer.getvalue()
    if suffix == ".jsonl":
        return "".join(json.dumps(r, allow_nan=False) + "\n" for r in picked)
    if suffix == ".parquet":
        try:
            import pyarrow
            import pyarrow.parquet
        except ImportError:
            raise ValueError("writing .parquet needs pyarrow: pip install 'mirflow[parquet]' "
                             "(or write .csv or .jsonl)") from None
        import io

        buffer = io.BytesIO()
        table = pyarrow.Table.from_pylist(picked, schema=_schema(pyarrow, picked, columns))
        pyarrow.parquet.write_table(table, buffer)
        return buffer.getvalue()
    raise ValueError(f"unknown table format {suffix!r} (write .csv, .jsonl or .parquet)")


def _schema(pyarrow, rows: list[dict], columns: list[str]):
    """Column types from the values: numbers stay numbers (float where any is), text stays text;
    a column of mixed kinds is written as text."""
    fields = []
    for column in columns:
        kinds = {type(r[column]) for r in rows if r[column] is not None}
        if kinds <= {int}:
            kind = pyarrow.int64() if kinds else pyarrow.string()
        elif kinds <= {int, float}:
            kind = pyarrow.float64()
        else:
            kind = pyarrow.string()
            for r in rows:
                if r[column] is not None and not isinstance(r[column], str):
                    r[column] = json.dumps(r[column])
        fields.append(pyarrow.field(column, kind))
    return pyarrow.schema(fields)
