"""Hear a result: the song with clicks on its beats (a higher click on downbeats), soft chord
tones and a short cue at each section boundary, as Sonic Visualiser and allin1 let users
check an analysis by ear.

The song is read and the result written block by block (a 60-minute file never sits in
memory whole); every sound is placed by its sample index from the song's start, so a click
starts on the sample of its beat whatever the block boundaries. The file is written beside
the target and renamed: never half-written.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import make_ordinary
from .spelling import pitch_class

CLICK_SECONDS = 0.03
BEAT_HZ, DOWNBEAT_HZ = 1000.0, 1600.0
CUE_SECONDS = 0.25
CUE_HZ = (660.0, 990.0)  # a fifth: unlike any click
CLICK_GAIN, DOWNBEAT_GAIN, CUE_GAIN, CHORD_GAIN = 0.5, 0.7, 0.35, 0.1
CHORD_FADE = 0.01  # seconds of fade at each chord's ends (no clicks from the chord tones)
FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}
INTERVALS = {"min": (0, 3, 7), "dim": (0, 3, 6), "hdim": (0, 3, 6), "aug": (0, 4, 8), "sus2": (0, 2, 7),
             "sus4": (0, 5, 7)}  # by how the quality starts; anything else (maj, 7, maj7, 9...): a major triad


class SonifyError(ValueError):
    """A result or its audio that cannot be sonified; the message is one line for the user."""


@dataclass(frozen=True)
class Layers:
    """What is mixed over the song."""

    beats: bool = True
    downbeats: bool = True
    chords: bool = False
    sections: bool = False


def chord_pitches(label: str) -> tuple[int, ...]:
    """MIDI notes of a Harte label's triad around middle C ('A:min7' -> A3 C4 E4); () for N/X."""
    root, _, quality = str(label).partition(":")
    pitch = pitch_class(root)
    if pitch is None:
        return ()
    quality = quality.split("/")[0].split("(")[0]
    intervals = next((v for k, v in INTERVALS.items() if quality.startswith(k)), (0, 4, 7))
    return tuple(48 + pitch + step for step in intervals)


def _tone(hz: float, seconds: float, rate: int, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * np.exp(-t / decay)).astype(np.float32)


class Overlay:
    """The sounds of one result, rendered for any span of samples."""

    def __init__(self, result: dict, rate: int, layers: Layers):
        timeline = result.get("timeline") or {}
        self.rate = rate
        down = {round(float(t), 6) for t in timeline.get("downbeats") or []}
        beats = [b if isinstance(b, dict) else {"time": b} for b in timeline.get("beats") or []]
        hits = []  # (sample, sound)
        beat, downbeat = _tone(BEAT_HZ, CLICK_SECONDS, rate, 0.008), _tone(DOWNBEAT_HZ, CLICK_SECONDS, rate, 0.008)
        for b in beats:
            is_down = b.get("position") == 1 or round(float(b["time"]), 6) in down
            if is_down and layers.downbeats:
                hits.append((float(b["time"]), DOWNBEAT_GAIN * downbeat))
            elif layers.beats:
                hits.append((float(b["time"]), CLICK_GAIN * beat))
        if layers.sections:
            cue = sum(_tone(hz, CUE_SECONDS, rate, 0.08) for hz in CUE_HZ) / len(CUE_HZ)
            hits += [(float(s["start"]), CUE_GAIN * cue) for s in timeline.get("sections") or []]
        hits.sort(key=lambda hit: hit[0])
        self.starts = np.array([int(round(t * rate)) for t, _ in hits], dtype=np.int64)
        self.sounds = [sound for _, sound in hits]
        self.longest = max((len(s) for s in self.sounds), default=0)
        self.chords = []  # (first sample, end sample, frequencies)
        if layers.chords:
            for c in timeline.get("chords") or []:
                pitches = chord_pitches(c.get("label", "N"))
                if pitches:
                    self.chords.append((int(round(c["start"] * rate)), int(round(c["end"] * rate)),
                                        [440.0 * 2 ** ((p - 69) / 12) for p in pitches]))

    def render(self, first: int, end: int) -> np.ndarray:
        """Samples ``first`` to ``end`` (from the song's start) of the overlay, mono float32."""
        out = np.zeros(end - first, dtype=np.float32)
        low = np.searchsorted(self.starts, first - self.longest)
        high = np.searchsorted(self.starts, end)
        for start, sound in zip(self.starts[low:high], self.sounds[low:high]):
            a, b = max(start, first), min(start + len(sound), end)
            if a < b:
                out[a - first:b - first] += sound[a - start:b - start]
        fade = max(1, int(CHORD_FADE * self.rate))
        for start, stop, freqs in self.chords:
            a, b = max(start, first), min(stop, end)
            if a >= b:
                continue
            n = np.arange(a, b)
            t = n / self.rate
            tone = sum(np.sin(2 * np.pi * hz * t) for hz in freqs) / len(freqs)
            envelope = np.minimum(1.0, np.minimum(n - start, stop - n) / fade)
            out[a - first:b - first] += (CHORD_GAIN * tone * envelope).astype(np.float32)
        return out


def source_audio(result: dict, audio: str | Path | None) -> Path:
    """The song's file: ``audio`` or the result's source path, checked against its sha256."""
    from .io import file_sha256

    source = result.get("source") or {}
    path = Path(audio) if audio else Path(source.get("path") or "")
    if not audio and not path.is_file():
        raise SonifyError(f"the song's audio is not at {path} any more (moved? give it with --audio FILE)")
    if not path.is_file():
        raise SonifyError(f"{path}: no such file")
    expected = source.get("sha256")
    if expected and file_sha256(path) != expected:
        raise SonifyError(f"{path}: not the audio this result was made from (its sha256 differs)")
    return path


def sonify(result: dict, output: str | Path, *, audio: str | Path | None = None, layers: Layers = Layers(),
           mix: float = 0.5, start: float | None = None, end: float | None = None) -> Path:
    """Write ``output`` (.wav, .flac or .ogg): the song, times ``1 - mix``, plus the overlay,
    times ``mix``, from ``start`` to ``end`` seconds (the whole song by default)."""
    import soundfile

    from .audio import DecodeError, read_blocks

    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise SonifyError(f"{output}: write .wav, .flac or .ogg (not {output.suffix or 'no extension'})")
    for name, seconds in (("--start", start), ("--end", end)):
        if seconds is not None and not math.isfinite(seconds):
            raise SonifyError(f"{name} must be a finite number of seconds, got {seconds}")
    if not 0.0 <= mix <= 1.0:
        raise SonifyError(f"--mix must be between 0 and 1, got {mix:g}")
    path = source_audio(result, audio)
    try:
        blocks, rate, channels = read_blocks(path)
    except DecodeError as err:
        raise SonifyError(str(err)) from None
    first = int(round(max(0.0, start or 0.0) * rate))
    last = int(round(end * rate)) if end is not None else None
    if last is not None and last <= first:
        raise SonifyError(f"--end ({end:g} s) must come after --start ({start or 0:g} s)")
    overlay = Overlay(result, rate, layers)
    kind, subtype = FORMATS[output.suffix.lower()]
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=output.suffix, dir=output.parent)
    os.close(handle)
    make_ordinary(temp)
    try:
        with soundfile.SoundFile(temp, "w", samplerate=rate, channels=channels, format=kind, subtype=subtype) as out:
            position = 0
            for block in blocks:
                a, b = max(first, position), position + len(block) if last is None else min(last, position + len(block))
                if a < b:
                    music = block[a - position:b - position]
                    mixed = (1.0 - mix) * music + mix * overlay.render(a, b)[:, None]
                    out.write(np.clip(mixed, -1.0, 1.0))
                position += len(block)
                if last is not None and position >= last:
                    break
        if position <= first:
            raise SonifyError(f"--start ({start:g} s) is after the song's end ({position / rate:.1f} s)")
        if last is not None and position < last:
            raise SonifyError(f"--end ({end:g} s) is after the song's end ({position / rate:.1f} s)")
        os.replace(temp, output)
    except DecodeError as err:
        raise SonifyError(str(err)) from None
    finally:
        Path(temp).unlink(missing_ok=True)
    return output
