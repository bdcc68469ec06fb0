"""A picture of one result: waveform, beats, chords, keys, sections, tempo and chunk seams.

matplotlib is an optional extra (``pip install 'mirflow[plot]'``), imported only here.
Lanes share one time axis; labels that would not fit their segment are left out, so a
20-minute set stays readable, and ``start``/``end`` zoom into a range.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .io import write_atomic

PITCHES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6,
           "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


class PlotError(Exception):
    """A plot that cannot be made (missing matplotlib, empty range)."""


def label_colour(label: str):
    """Colour by root (hue around the circle of fifths) and mode (minor darker); N is grey."""
    import matplotlib.colors as colors

    root = label.replace(":", " ").split(" ")[0]
    if root not in PITCHES:
        return (0.85, 0.85, 0.85)
    hue = (PITCHES[root] * 7 % 12) / 12
    minor = "min" in label
    return colors.hsv_to_rgb((hue, 0.45 if minor else 0.35, 0.75 if minor else 0.95))


def envelope(result: dict, start: float, end: float, columns: int, audio=None):
    """(times, low, high) of the waveform in ``columns`` bins, or None if the audio is gone.

    ``audio`` (a :class:`mirflow.audio.Decoded`) is the track the run already decoded, read
    without a copy (a mapped file: a 60-minute song is not held twice); without it the source
    is decoded again (``mirflow plot`` on a result file)."""
    from .audio import DecodeError, decode

    if audio is None:
        try:
            audio = decode(result["source"]["path"])
        except DecodeError:
            return None
    first = int(start * audio.sample_rate)
    last = int(min(end, audio.duration) * audio.sample_rate)
    if last - first < columns:
        return None
    usable = (last - first) // columns * columns
    segment = audio.samples[first:first + usable]
    mono = segment[:, 0] if audio.channels == 1 else segment.mean(axis=1)
    bins = np.asarray(mono).reshape(columns, -1)
    times = start + (np.arange(columns) + 0.5) * (usable / columns) / audio.sample_rate
    return times, bins.min(axis=1), bins.max(axis=1)


def render(result: dict, *, start: float | None = None, end: float | None = None,
           width: int = 1600, height: int = 900, dpi: int = 100, audio=None) -> bytes:
    """The PNG bytes of the timeline between ``start`` and ``end`` seconds; the waveform from
    ``audio`` (:func:`envelope`) where the caller has the decoded track."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'mirflow[plot]'") from None
    duration = result["source"]["duration"]
    start = 0.0 if start is None else max(0.0, start)
    end = duration if end is None else min(duration, end)
    if end <= start:
        raise PlotError(f"empty time range {start:g}-{end:g} s (the song lasts {duration:g} s)")
    timeline, summary = result["timeline"], result["summary"]
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    sections = [{**s, "label": s["label"] + (f" {s['function']}" if s.get("function") else "")}
                for s in timeline.get("sections") or []]
    ratios = [3, 1, 0.6] + ([0.6] if sections else []) + [1.4]
    axes = figure.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.08})
    figure.subplots_adjust(left=0.06, right=0.98, top=0.94, bottom=0.07)
    wave, chords, keys, *middle, tempo = axes
    seconds_per_pixel = (end - start) / (width * 0.92)

    found = envelope(result, start, end, columns=int(width * 0.92), audio=audio)
    if found is not None:
        times, low, high = found
        wave.fill_between(times, low, high, color="#4a6fa5", linewidth=0)
    wave.set_ylim(-1.05, 1.05)
    wave.set_ylabel("audio")
    beats = [b for b in timeline["beats"] if start <= b["time"] <= end]
    downbeats = [t for t in timeline["downbeats"] if start <= t <= end]
    every = max(1, int(np.ceil(len(beats) * 4 / (width * 0.92))))  # at least 4 px between ticks
    wave.vlines([b["time"] for b in beats[::every]], -1.0, -0.75, color="#222222", linewidth=0.6)
    wave.vlines(downbeats, -1.0, 1.0, color="#c0392b", linewidth=0.8, alpha=0.6)

    lane(chords, timeline["chords"], start, end, seconds_per_pixel, "chords")
    lane(keys, timeline["keys"], start, end, seconds_per_pixel, "key")
    if sections:
        lane(middle[0], sections, start, end, seconds_per_pixel, "sections", colour=section_colour)

    if timeline["tempo"]:
        points = [(t["time"], t["bpm"]) for t in timeline["tempo"] if start <= t["time"] <= end]
        if points:
            tempo.plot(*zip(*points), color="#16a085")
    elif "tempo" in summary:
        tempo.axhline(summary["tempo"]["bpm"], color="#16a085")
    if "tempo" in summary:
        bpm = summary["tempo"]["bpm"]
        tempo.set_ylim(bpm * 0.5, bpm * 1.5)
    tempo.set_ylabel("BPM")
    tempo.set_xlabel("time (s)")

    for chunk, following in zip(result["chunks"], result["chunks"][1:]):
        for axis in axes:  # overlaps shaded, the seam (core boundary) dashed
            axis.axvspan(following["start"], chunk["end"], color="#999999", alpha=0.15, linewidth=0)
            axis.axvline(chunk["core_end"], color="#666666", linestyle="--", linewidth=0.7)
    for axis in axes:
        axis.set_xlim(start, end)
    for axis in axes[1:-1]:
        axis.set_yticks([])
    key = summary.get("key", {}).get("label", "no key")
    bpm = f"{summary['tempo']['bpm']:.1f} BPM" if "tempo" in summary else "no tempo"
    shown = f"{len(beats)} beats" + (f" (every {every}th drawn)" if every > 1 else "")
    figure.suptitle(f"{result['source']['name']} — {key}, {bpm}, {shown}", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def section_colour(label: str):
    """One colour per section letter (A, B, ...), the same letter the same colour."""
    import matplotlib

    letters = label.split(" ")[0]
    index = sum((ord(c) - 64) * 26 ** n for n, c in enumerate(reversed(letters))) - 1
    return matplotlib.colormaps["Pastel1"](index % 9)


def lane(axis, segments, start: float, end: float, seconds_per_pixel: float, name: str, colour=label_colour) -> None:
    """Coloured segments with their labels where the label fits (about 7 px a character)."""
    for segment in segments:
        if segment["end"] < start or segment["start"] > end:
            continue
        left, right = max(segment["start"], start), min(segment["end"], end)
        axis.axvspan(left, right, color=colour(segment["label"]), linewidth=0)
        if colour is section_colour:  # sections of one letter in a row stay apart
            axis.axvline(left, color="#555555", linewidth=0.5)
        if (right - left) / seconds_per_pixel > 7 * len(segment["label"]) + 4:
            axis.text((left + right) / 2, 0.5, segment["label"], ha="center", va="center",
                      fontsize=8, transform=axis.get_xaxis_transform(), clip_on=True)
    axis.set_ylabel(name)


def plot_result(result: dict, target: str | Path, **options) -> Path:
    """Render and write the PNG atomically."""
    target = Path(target)
    write_atomic(target, render(result, **options))
    return target
