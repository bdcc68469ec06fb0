"""Reference annotations: read, checked and reported before any audio is analyzed.

Reads JAMS, plain ``.beats``/``.txt`` beat lists, ``.lab`` chords (``.sections.lab`` the
form), ``.keys`` key changes, ``.bpm``/``.tempo`` and one-line ``.key`` files. Every value
mir_eval would reject (a reversed or NaN interval, an unknown chord label, a beat time
that is not a number, text that is not UTF-8) is a problem naming the file and line, so that
``mirflow evaluate`` stops with all of them before it runs the pipeline, not with a library's
exception after it. mir_eval (for the label checks) is imported only here when present.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Reference:
    """What is known about one piece; ``None`` (or empty) where there is no annotation."""

    beats: np.ndarray | None = None  # seconds
    downbeats: np.ndarray | None = None
    tempo: float | None = None  # BPM
    key: str | None = None  # "A minor"
    chords: list[tuple[float, float, str]] | None = None  # (start, end, Harte label)
    keys: list[tuple[float, float, str]] | None = None  # (start, end, "A minor"): key changes
    sections: list[tuple[float, float, str]] | None = None  # (start, end, label): the song's form
    sources: list[str] = field(default_factory=list)

    def merge(self, other: Reference) -> None:
        for name in ("beats", "downbeats", "tempo", "key", "chords", "keys", "sections"):
            if getattr(self, name) is None and getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
        self.sources += other.sources


class ReferenceError(ValueError):
    """Annotation files that cannot be read or scored; one problem a line, each naming the
    file and line (a JAMS row by the line its object starts on)."""


def load_reference(paths) -> Reference:
    """A reference from every annotation file in ``paths`` (the first file to give a field wins),
    every problem of every file checked first and reported together."""
    reference, problems = Reference(), []
    for path in map(Path, paths):
        try:
            reference.merge(_read_one(path))
        except ReferenceError as error:
            problems.append(str(error))
    if problems:
        raise ReferenceError("\n".join(problems))
    return reference


def references_for(audio: str | Path, truth_dir: str | Path) -> list[Path]:
    """The annotation files in ``truth_dir`` that belong to ``audio`` (same stem, any suffix)."""
    stem = Path(audio).stem
    return sorted(p for p in Path(truth_dir).iterdir()
                  if p.is_file() and (p.name.startswith(stem + ".") or p.stem == stem) and p.suffix in READERS)


class _Problems(list):
    """Problems of one file, raised together once it is read."""

    def check(self):
        if self:
            raise ReferenceError("\n".join(self))


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ReferenceError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x})") from None


def _lines(path: Path):
    """(line number, stripped text) of each line that is not blank or a comment."""
    for n, line in enumerate(_text(path).splitlines(), 1):
        if line.strip() and not line.strip().startswith("#"):
            yield n, line.strip()


def _numbers(path: Path, finite: int | None = None) -> list[list[float]]:
    """Each line's numbers (and its line number last); the first ``finite`` columns (all by
    default) must be finite numbers."""
    rows, problems = [], _Problems()
    for n, line in _lines(path):
        try:
            row = [float(x) for x in re.split(r"[\s,]+", line)]
        except ValueError:
            problems.append(f"{path}:{n}: expected numbers, got {line!r}")
            continue
        if not all(math.isfinite(x) for x in row[:finite]):
            problems.append(f"{path}:{n}: expected finite numbers, got {line!r}")
            continue
        rows.append(row + [n])
    problems.check()
    return rows


def _read_beats(path: Path) -> Reference:
    rows, problems = _numbers(path), _Problems()
    for previous, row in zip([None] + rows, rows):
        if row[0] < 0 or (previous is not None and row[0] < previous[0]):
            problems.append(f"{path}:{row[-1]}: beat times must be non-negative and in order, got {row[0]:g}")
    problems.check()
    beats = np.array([row[0] for row in rows])
    downbeats = np.array([row[0] for row in rows if len(row) > 2 and row[1] == 1]) if rows and len(rows[0]) > 2 else None
    return Reference(beats=beats, downbeats=downbeats, sources=[str(path)])


def _read_tempo(path: Path) -> Reference:
    rows = _numbers(path, finite=1)  # madmom's "tempo1 tempo2 weight" has nan for no second tempo
    if not rows:
        raise ReferenceError(f"{path}: no tempo in the file")
    if rows[0][0] <= 0:
        raise ReferenceError(f"{path}:{rows[0][-1]}: a tempo must be above 0 BPM, got {rows[0][0]:g}")
    return Reference(tempo=rows[0][0], sources=[str(path)])


def _read_key(path: Path) -> Reference:
    text = " ".join(_text(path).split())
    return Reference(key=normalize_key(text, f"{path}:1"), sources=[str(path)])


def _read_lab(path: Path) -> Reference:
    chords = _read_segments(path, "start end label", lambda rest, where: _chord(rest[0], where))
    return Reference(chords=chords, sources=[str(path)])


def _read_sections(path: Path) -> Reference:
    return Reference(sections=_read_segments(path, "start end label", lambda rest, where: " ".join(rest)),
                     sources=[str(path)])


def _read_keys(path: Path) -> Reference:
    keys = _read_segments(path, "start end tonic mode", lambda rest, where: normalize_key(" ".join(rest), where))
    return Reference(keys=keys, sources=[str(path)])


def _read_segments(path: Path, expected: str, label) -> list[tuple[float, float, str]]:
    """(start, end, label) per line; ``label(rest_of_line, "file:line")`` reads (and checks) the label."""
    segments, problems = [], _Problems()
    for n, line in _lines(path):
        parts = line.split()
        try:
            start, end = float(parts[0]), float(parts[1])
            text = label(parts[2:], f"{path}:{n}")
        except ReferenceError as error:  # a label that is not one (before ValueError: it is one)
            problems.append(str(error))
            continue
        except (ValueError, IndexError):
            problems.append(f"{path}:{n}: expected '{expected}', got {line!r}")
            continue
        problem = _interval_problem(start, end)
        if problem:
            problems.append(f"{path}:{n}: {problem}")
            continue
        segments.append((start, end, text))
    problems.check()
    return segments


def _interval_problem(start, end) -> str | None:
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (start, end)):
        return f"expected finite start and end times, got {start!r} and {end!r}"
    if start < 0 or end <= start:
        return f"an interval must start at 0 or later and end after it starts, got {start:g} to {end:g}"
    return None


def _chord(label: str, where: str) -> str:
    """A Harte chord label as mir_eval reads it, or a ReferenceError naming ``where``."""
    try:
        import mir_eval
    except ImportError:  # nothing to check against: scoring needs mir_eval and says so
        return label
    try:
        mir_eval.chord.split(label)
    except mir_eval.chord.InvalidChordException as error:
        raise ReferenceError(f"{where}: not a chord label mir_eval reads ({error})") from None
    return label


def _load_json_with_lines(text: str):
    """The JSON document and, for each object in it (by id), the line its ``{`` is on."""
    import bisect
    import json.decoder
    import json.scanner

    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    lines: dict[int, int] = {}
    decoder = json.JSONDecoder()

    def parse_object(s_and_end, *args):
        found, end = json.decoder.JSONObject(s_and_end, *args)
        lines[id(found)] = bisect.bisect_left(newlines, s_and_end[1]) + 1
        return found, end

    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder.decode(text), lines


def _read_jams(path: Path) -> Reference:
    """The first annotation of each namespace we score (beat, tempo, key_mode, chord, segments)."""
    try:
        document, lines = _load_json_with_lines(_text(path))
    except json.JSONDecodeError as error:
        raise ReferenceError(f"{path}:{error.lineno}: not a JAMS file ({error.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("annotations", []), list):
        raise ReferenceError(f"{path}:1: not a JAMS file (expected an object with a list of 'annotations')")
    reference, problems = Reference(sources=[str(path)]), _Problems()
    for annotation in document.get("annotations", []):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("data", []), list):
            problems.append(f"{path}:{lines.get(id(annotation), 1)}: an annotation must be an object with a data list")
            continue
        namespace = str(annotation.get("namespace"))
        rows = []
        for row in annotation.get("data", []):
            where = f"{path}:{lines.get(id(row), lines.get(id(annotation), 1))}"
            try:
                rows.append(_jams_row(row, namespace, where))
            except ReferenceError as error:
                problems.append(str(error))
        if len(rows) < len(annotation.get("data", [])):
            continue
        _take(reference, namespace, rows, path)
    problems.check()
    return reference


def _jams_row(row, namespace: str, where: str) -> dict:
    """One observation, its time, duration and value checked for the namespace it is in."""
    if not isinstance(row, dict):
        raise ReferenceError(f"{where}: expected an observation object, got {row!r}")
    time, duration, value = row.get("time"), row.get("duration", 0.0), row.get("value")
    for name, number in (("time", time), ("duration", duration)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number < 0:
            raise ReferenceError(f"{where}: {name} must be a finite number of seconds, got {number!r}")
    if namespace.startswith("chord") or namespace.startswith("segment"):
        problem = _interval_problem(time, time + duration)
        if problem:
            raise ReferenceError(f"{where}: {problem}")
    if namespace.startswith("chord"):
        _chord(str(value), where)
    elif namespace == "key_mode":
        normalize_key(str(value).replace(":", " "), where)
    elif namespace == "tempo" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                   or not math.isfinite(value) or value <= 0):
        raise ReferenceError(f"{where}: a tempo must be a number above 0 BPM, got {value!r}")
    return row


def _take(reference: Reference, namespace: str, data: list[dict], path: Path) -> None:
    if namespace == "beat" and reference.beats is None:
        reference.beats = np.array([row["time"] for row in data])
        if data and all(isinstance(row.get("value"), (int, float)) for row in data):
            reference.downbeats = np.array([row["time"] for row in data if row["value"] == 1])
    elif namespace == "tempo" and reference.tempo is None and data:
        reference.tempo = float(max(data, key=lambda row: row.get("confidence") or 0)["value"])
    elif namespace == "key_mode" and reference.key is None and data:
        reference.key = normalize_key(str(data[0]["value"]).replace(":", " "), path)
    elif namespace in ("segment_open", "segment_salami_function") and reference.sections is None:
        reference.sections = [(row["time"], row["time"] + row["duration"], str(row["value"])) for row in data]
    elif namespace.startswith("chord") and reference.chords is None:
        reference.chords = [(row["time"], row["time"] + row["duration"], str(row["value"])) for row in data]


READERS = {".beats": _read_beats, ".txt": _read_beats, ".bpm": _read_tempo, ".tempo": _read_tempo,
           ".key": _read_key, ".keys": _read_keys, ".lab": _read_lab, ".jams": _read_jams}


def _read_one(path: Path) -> Reference:
    reader = _read_sections if path.name.endswith(".sections.lab") else READERS.get(path.suffix)
    if reader is None:
        raise ReferenceError(f"{path}: unknown annotation format (known: {', '.join(READERS)})")
    try:
        return reader(path)
    except OSError as error:
        raise ReferenceError(f"{path}: {error.strerror or error}") from None


def normalize_key(text: str, path: Path | str = "key") -> str:
    """'D major', 'd:maj', 'F#  minor' -> mir_eval's 'D major' form."""
    parts = text.strip().split()
    if len(parts) != 2:
        raise ReferenceError(f"{path}: expected '<tonic> <mode>', got {text!r}")
    tonic, mode = parts
    mode = {"maj": "major", "min": "minor"}.get(mode.lower(), mode.lower())
    key = f"{tonic[0].upper()}{tonic[1:]} {mode}"
    try:
        import mir_eval

        mir_eval.key.validate_key(key)
    except ImportError:  # nothing to check against: scoring needs mir_eval and says so
        pass
    except ValueError as error:
        raise ReferenceError(f"{path}: not a key mir_eval reads ({error})") from None
    return key
