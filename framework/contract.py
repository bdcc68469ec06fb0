"""The plugin contract checked at the boundary: every value an analyzer hands to mirflow.

Whatever crosses from plugin code into mirflow — what ``analyze`` and ``analyze_batch``
return per chunk, and what an ``aggregate`` hook returns per track — goes through
:func:`check_outputs`, which brings each output to its canonical form in track time or
raises :class:`ContractError`. Third-party plugins do what the docs allow, not what the
built-ins do: a shorthand the docs allow is accepted, a value that can be cleaned by a
rule below is cleaned (and the step record's ``notes`` say what was dropped), anything
else is that step's error, naming the analyzer and the output. The rest of mirflow
(merge rules, summary, exporters) can then rely on the canonical forms, and results are
strict JSON.

Canonical forms and rules, per output kind (``bound``: the chunk's or track's duration):

- ``scalar``: ``{"value": float | None, "confidence": c, ...}``; a plain number is
  accepted; a non-finite value becomes ``None`` (no answer).
- ``label``: ``{"label": str | None, "confidence": c, ...}``; a plain string or None is
  accepted; an optional ``timeline`` follows the segment rules.
- ``events``: ``[{"time": t, ...}]`` sorted by time; plain times are accepted; events
  with a non-finite time or outside ``[0, bound]`` are dropped.
- ``segments``: ``[{"start": s, "end": e, "label": str | None, "confidence": c, ...}]``
  sorted by start; segments with a non-finite edge, reversed or empty are dropped,
  and the others clipped to ``[0, bound]``.
- ``curve``: ``{"times": array, "values": array, ...}`` with one value row per time,
  times increasing; frames with a non-finite time or value, or outside ``[0, bound]``,
  are dropped.

Everywhere: a confidence must be a number and is clipped to [0, 1] (an infinite one to its
end, NaN — no confidence at all — to 0), with a note; other fields
must be plain JSON values (numbers, strings, booleans, None, lists, dicts keyed by strings
(whole-number keys become strings, as in JSON);
numpy scalars and arrays are converted, a non-finite number becomes None); a wrong type,
an unknown output name or a curve whose lengths disagree is an error. A small tolerance
(``EDGE``) lets a time a hair outside the bound be clamped instead of dropped.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from .analyzer import CURVE, EVENTS, LABEL, SCALAR, SEGMENTS

EDGE = 0.05  # seconds: times this far outside [0, bound] are clamped, further ones dropped


class ContractError(ValueError):
    """An output that breaks the analyzer contract in a way no rule can clean."""


def check_outputs(kinds: dict[str, str], outputs: Any, *, offset: float = 0.0, bound: float | None = None,
                  where: str = "", notes: list[str] | None = None) -> dict[str, Any]:
    """Every output of one ``analyze`` call or ``aggregate`` hook, checked and in canonical form,
    times shifted by ``offset``; ``where`` (e.g. "chunk 3", "aggregate") prefixes messages and
    ``notes`` collects what the rules dropped."""
    prefix = f"{where}: " if where else ""
    if not isinstance(outputs, dict):
        raise ContractError(f"{prefix}returned {type(outputs).__name__}, expected a dict of outputs")
    checked = {}
    for name, value in outputs.items():
        if name not in kinds:
            raise ContractError(f"{prefix}undeclared output {name!r} (declared: {', '.join(sorted(kinds)) or 'none'})")
        found: list[str] = []
        try:
            checked[name] = normalize(kinds[name], value, offset, bound, found)
        except ContractError as err:
            raise ContractError(f"{prefix}output {name!r} ({kinds[name]}): {err}") from None
        if notes is not None:
            notes.extend(f"{prefix}{name}: {note}" for note in found)
    return checked


def normalize(kind: str, value: Any, offset: float = 0.0, bound: float | None = None,
              notes: list[str] | None = None) -> Any:
    """One output in canonical form, times shifted by ``offset`` (see the module docstring)."""
    notes = [] if notes is None else notes
    if kind == SCALAR:
        return _scalar(value, notes)
    if kind == LABEL:
        return _label(value, offset, bound, notes)
    if kind == EVENTS:
        return _events(value, offset, bound, notes)
    if kind == SEGMENTS:
        return _segments(value, offset, bound, notes)
    if kind == CURVE:
        return _curve(value, offset, bound, notes)
    raise ContractError(f"unknown output kind {kind!r}")


# --- numbers and plain values ---------------------------------------------------------


def _number(value: Any, what: str) -> float:
    """A real number (not a bool, not a string) as a float; may be non-finite."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.integer, np.floating)):
        raise ContractError(f"{what} must be a number, got {_show(value)}")
    return float(value)


def _confidence(container: dict, notes: list[str]) -> float:
    if "confidence" not in container or container["confidence"] is None:
        return 1.0
    confidence = _number(container["confidence"], "confidence")
    if math.isnan(confidence):  # no confidence at all: cleaned like one out of range, not an error
        notes.append("confidence nan taken as 0")
        return 0.0
    if not 0.0 <= confidence <= 1.0:
        notes.append(f"confidence {confidence:g} clipped to [0, 1]")
    return min(1.0, max(0.0, confidence))


def plain(value: Any, notes: list[str], where: str = "") -> Any:
    """``value`` as plain JSON types; non-finite numbers become None; other objects are errors."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value):
            return float(value)
        notes.append(f"non-finite number in {where or 'a field'} replaced by null")
        return None
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), notes, where)
    if isinstance(value, (list, tuple)):
        return [plain(item, notes, where) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, (str, int, np.integer)) and not isinstance(key, bool) for key in value):
            raise ContractError(f"{where or 'a field'} has a key that is neither a string nor a whole number")
        return {str(key): plain(item, notes, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
    raise ContractError(f"{where or 'a field'} is {_show(value)}, not a JSON value")


def _extras(container: dict, skip: tuple[str, ...], notes: list[str]) -> dict[str, Any]:
    return plain({key: value for key, value in container.items() if key not in skip}, notes, "")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


# --- the kinds -------------------------------------------------------------------------


def _scalar(value: Any, notes: list[str]) -> dict[str, Any]:
    container = value if isinstance(value, dict) else {"value": value}
    raw = container.get("value")
    number = None if raw is None else _number(raw, "value")
    if number is not None and not math.isfinite(number):
        notes.append(f"non-finite value {number} became no value")
        number = None
    return {"value": number, "confidence": _confidence(container, notes),
            **_extras(container, ("value", "confidence"), notes)}


def _label(value: Any, offset: float, bound: float | None, notes: list[str]) -> dict[str, Any]:
    container = value if isinstance(value, dict) else {"label": value}
    label = container.get("label")
    if label is not None and not isinstance(label, str):
        raise ContractError(f"label must be a string or null, got {_show(label)}")
    checked = {"label": label, "confidence": _confidence(container, notes),
               **_extras(container, ("label", "confidence", "timeline"), notes)}
    if "timeline" in container:
        checked["timeline"] = _segments(container["timeline"], offset, bound, notes)
    return checked


def _sequence(value: Any, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ContractError(f"{what} must be a list, got {_show(value)}")
    return list(value)


def _place(time: float, bound: float | None) -> float | None:
    """``time`` clamped into [0, bound] when within EDGE of it; None when outside."""
    if not math.isfinite(time) or time < -EDGE or (bound is not None and time > bound + EDGE):
        return None
    return min(max(time, 0.0), bound) if bound is not None else max(time, 0.0)


def _events(value: Any, offset: float, bound: float | None, notes: list[str]) -> list[dict[str, Any]]:
    events, dropped = [], 0
    for item in _sequence(value, "events"):
        event = item if isinstance(item, dict) else {"time": item}
        if "time" not in event:
            raise ContractError(f"an event has no 'time': {_show(item)}")
        time = _place(_number(event["time"], "an event's time"), bound)
        if time is None:
            dropped += 1
            continue
        events.append({"time": time + offset, **_extras(event, ("time",), notes)})
    if dropped:
        notes.append(f"{dropped} event(s) with a non-finite time or outside the audio dropped")
    events.sort(key=lambda e: e["time"])
    return events


def _segments(value: Any, offset: float, bound: float | None, notes: list[str]) -> list[dict[str, Any]]:
    segments, dropped = [], 0
    for item in _sequence(value, "segments"):
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise ContractError(f"a segment must be a dict with 'start' and 'end', got {_show(item)}")
        start, end = _number(item["start"], "a segment's start"), _number(item["end"], "a segment's end")
        label = item.get("label")
        if label is not None and not isinstance(label, str):
            raise ContractError(f"a segment's label must be a string or null, got {_show(label)}")
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            dropped += 1
            continue
        start, end = max(start, 0.0), min(end, bound) if bound is not None else end
        if end - start <= 0:
            dropped += 1
            continue
        segments.append({"start": start + offset, "end": end + offset, "label": label,
                         "confidence": _confidence(item, notes),
                         **_extras(item, ("start", "end", "label", "confidence"), notes)})
    if dropped:
        notes.append(f"{dropped} segment(s) non-finite, reversed, empty or outside the audio dropped")
    segments.sort(key=lambda s: s["start"])
    return segments


def _curve(value: Any, offset: float, bound: float | None, notes: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or "times" not in value or "values" not in value:
        raise ContractError(f"a curve must be a dict with 'times' and 'values', got {_show(value)}")
    try:
        times = np.asarray(value["times"], dtype=np.float64)
        values = np.asarray(value["values"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ContractError("a curve's times and values must be numbers") from None
    if times.ndim != 1:
        raise ContractError(f"a curve's times must be one-dimensional, got shape {times.shape}")
    if values.ndim == 0 or len(values) != len(times):
        raise ContractError(f"curve has {len(times)} times but {len(values) if values.ndim else 'no'} values")
    keep = np.isfinite(times) & (times >= -EDGE)
    if bound is not None:
        keep &= times <= bound + EDGE
    keep &= np.isfinite(values).all(axis=tuple(range(1, values.ndim))) if values.ndim > 1 else np.isfinite(values)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} curve frame(s) with a non-finite time or value, or outside the audio, "
                     "dropped")
        times, values = times[keep], values[keep]
    if len(times) > 1 and np.any(np.diff(times) < 0):
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        notes.append("curve frames sorted by time")
    return {"times": times + offset, "values": values, **_extras(value, ("times", "values"), notes)}
