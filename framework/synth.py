"""Synthesize songs whose beats, downbeats, chords and key are known exactly.

Used by the tests, the benchmarks and ``examples/make_example.py``: drums (kick,
snare, hi-hat), a bass on chord roots and sustained chords with harmonics, at a
chosen tempo, metre and progression. Only numpy is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10)}


@dataclass
class Song:
    """Audio (mono float32) and its exact annotations."""

    samples: np.ndarray
    sample_rate: int
    beats: list[tuple[float, int]]  # (time, position in bar)
    chords: list[tuple[float, float, str]]  # (start, end, Harte label)
    key: str  # e.g. "A minor"
    bpm: float
    beats_per_bar: int
    extra: dict = field(default_factory=dict)

    @property
    def downbeats(self) -> list[float]:
        return [t for t, position in self.beats if position == 1]


def parse_chord(label: str) -> tuple[int, tuple[int, ...]]:
    """'A:min' -> (9, (0, 3, 7))."""
    root, _, quality = label.partition(":")
    return PITCH_CLASSES.index(root), QUALITIES[quality or "maj"]


def midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _tone(freq: float, length: int, rate: int, harmonics: int, decay: float) -> np.ndarray:
    t = np.arange(length) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k ** 1.5 for k in range(1, harmonics + 1) if freq * k < rate / 2)
    return (wave * np.exp(-t / decay)).astype(np.float32)


def _kick(rate: int) -> np.ndarray:
    t = np.arange(int(0.25 * rate)) / rate
    freq = 50 + 100 * np.exp(-t / 0.03)
    return (np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.08)).astype(np.float32)


def _noise_hit(rate: int, length: float, decay: float, rng, highpass: bool) -> np.ndarray:
    noise = rng.standard_normal(int(length * rate))
    if highpass:
        noise = np.diff(noise, prepend=0.0)
    t = np.arange(len(noise)) / rate
    return (noise * np.exp(-t / decay) * 0.5).astype(np.float32)


def _add(out: np.ndarray, sound: np.ndarray, at: int, gain: float) -> None:
    end = min(len(out), at + len(sound))
    if at < end:
        out[at:end] += gain * sound[: end - at]


def make_song(
    progression: list[str],
    *,
    bpm: float = 120.0,
    beats_per_bar: int = 4,
    bars_per_chord: int = 1,
    duration: float = 30.0,
    key: str = "C major",
    sample_rate: int = 44100,
    drums: bool = True,
    start: float = 0.5,
    seed: int = 0,
    tempo_change: tuple[float, float] | None = None,
    modulation: tuple[float, list[str], str] | None = None,
    melody: bool = False,
) -> Song:
    """A song that loops ``progression`` (Harte labels), one chord per ``bars_per_chord`` bars.

    Beats fall exactly every 60/bpm seconds from ``start``; the first beat is a downbeat.
    ``tempo_change=(time, new_bpm)``: from the first beat at or after ``time`` on, the new tempo.
    ``modulation=(time, progression, key)``: from the first bar at or after ``time`` on, the
    song loops the new progression in the new key (``Song.keys`` holds the key segments).
    ``melody``: a plucked line above the chords, mostly chord tones, resting on some beats.
    """
    rng = np.random.default_rng(seed)
    total = int(duration * sample_rate)
    out = np.zeros(total, dtype=np.float32)
    beats: list[tuple[float, int]] = []
    chords: list[tuple[float, float, str]] = []
    kick, snare = _kick(sample_rate), None
    beat, time = 0, start
    switch_bar, keys = None, [(0.0, duration, key)]
    while time < duration - 1e-9:
        period = 60.0 / (tempo_change[1] if tempo_change and time >= tempo_change[0] - 1e-9 else bpm)
        position = beat % beats_per_bar + 1
        beats.append((time, position))
        at = int(round(time * sample_rate))
        bar = beat // beats_per_bar
        if modulation and switch_bar is None and position == 1 and time >= modulation[0] - 1e-9:
            switch_bar, progression = bar, modulation[1]
            keys = [(0.0, time, key), (time, duration, modulation[2])]
        label = progression[((bar - (switch_bar or 0)) // bars_per_chord) % len(progression)]
        root, intervals = parse_chord(label)
        if position == 1 and bar % bars_per_chord == 0:
            chord_end = min(duration, time + period * beats_per_bar * bars_per_chord)
            if chords and chords[-1][2] == label and abs(chords[-1][1] - time) < 1e-9:
                chords[-1] = (chords[-1][0], chord_end, label)
            else:
                chords.append((time, chord_end, label))
            length = int(period * beats_per_bar * bars_per_chord * sample_rate)
            for interval in intervals:
                note = 60 + (root + interval) % 12 if interval else 48 + root
                _add(out, _tone(midi_hz(note), length, sample_rate, 6, decay=2.5), at, 0.12)
        _add(out, _tone(midi_hz(36 + root), int(period * sample_rate), sample_rate, 4, decay=0.4), at, 0.25)
        if melody and rng.random() < 0.8:
            note = 72 + (root + intervals[int(rng.integers(len(intervals)))]) % 12
            _add(out, _tone(midi_hz(note), int(period * sample_rate), sample_rate, 3, decay=0.25), at, 0.15)
        if drums:
            if position == 1 or (beats_per_bar == 4 and position == 3):
                _add(out, kick, at, 0.8)
            if position in ((2, 4) if beats_per_bar == 4 else (2, 3)):
                snare = _noise_hit(sample_rate, 0.2, 0.05, rng, highpass=False)
                _add(out, snare, at, 0.45)
            for half in (0, 1):
                hat = _noise_hit(sample_rate, 0.05, 0.012, rng, highpass=True)
                _add(out, hat, at + int(half * period / 2 * sample_rate), 0.25)
        beat += 1
        time = start + beat * period if not tempo_change else time + period
    if chords:
        chords[-1] = (chords[-1][0], duration, chords[-1][2])
    peak = float(np.max(np.abs(out))) or 1.0
    out *= 0.9 / peak
    if start > 0:
        chords.insert(0, (0.0, start, "N"))
    return Song(out, sample_rate, beats, chords, key, bpm, beats_per_bar, extra={"keys": keys})


def key_progression(key: str, sevenths: bool = False) -> list[str]:
    """A common four-chord loop in ``key`` ('A minor' -> i VI iv V; major -> I V vi IV), with
    ``sevenths`` as seventh chords (i7 VImaj7 iv7 V7; Imaj7 V7 vi7 IVmaj7). Not i VI III VII:
    Am F C G is C major's vi IV I V started elsewhere, a key no listener agrees on."""
    tonic, mode = key.split()
    root = PITCH_CLASSES.index(_sharp(tonic))
    if mode == "minor":  # i VI iv V: the major V (harmonic minor) tells A minor from C major
        steps = ((0, "min7"), (8, "maj7"), (5, "min7"), (7, "7")) if sevenths else (
            (0, "min"), (8, "maj"), (5, "min"), (7, "maj"))
    else:
        steps = ((0, "maj7"), (7, "7"), (9, "min7"), (5, "maj7")) if sevenths else (
            (0, "maj"), (7, "maj"), (9, "min"), (5, "maj"))
    return [f"{PITCH_CLASSES[(root + step) % 12]}:{quality}" for step, quality in steps]


def _sharp(name: str) -> str:
    flats = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
    return flats.get(name, name)


def write_annotations(song: Song, stem: str | Path, tempo: bool = True) -> list[Path]:
    """The song's ground truth as plain annotation files beside ``stem``: ``.beats``
    (time, position), ``.lab`` (chords), ``.keys`` (start, end, key of each key segment),
    ``.key`` (the key, for a song that does not modulate) and, for a steady tempo, ``.bpm``."""
    stem = Path(stem)
    written = [stem.with_suffix(".beats"), stem.with_suffix(".lab"), stem.with_suffix(".keys")]
    written[0].write_text("".join(f"{t:.6f}\t{p}\n" for t, p in song.beats))
    written[1].write_text("".join(f"{s:.6f}\t{e:.6f}\t{label}\n" for s, e, label in song.chords))
    written[2].write_text("".join(f"{s:.6f}\t{e:.6f}\t{k}\n" for s, e, k in song.extra["keys"]))
    if len(song.extra["keys"]) == 1:  # a song that modulates has no one key to score
        written.append(stem.with_suffix(".key"))
        written[-1].write_text(song.key + "\n")
    if tempo:
        written.append(stem.with_suffix(".bpm"))
        written[-1].write_text(f"{song.bpm:g}\n")
    return written


# --- songs with a form: sections with their own material ---------------------------------

@dataclass(frozen=True)
class Material:
    """What one kind of section plays each time it comes back: its chords and arrangement."""

    progression: tuple[str, ...]
    drums: str = "full"  # none | light (kick on 1, hats) | full | four (four on the floor, clap)
    texture: str = "pad"  # pad | stabs | arp
    bass: bool = True
    melody: bool = True
    gain: float = 1.0
    register: int = 60  # MIDI note of the chords' octave


def make_structured_song(
    form: list[tuple[str, int]],
    materials: dict[str, Material],
    *,
    bpm: float = 110.0,
    beats_per_bar: int = 4,
    key: str = "C major",
    sample_rate: int = 44100,
    start: float = 0.5,
    tail: float = 2.0,
    seed: int = 0,
) -> Song:
    """A song played section by section: ``form`` lists (section name, bars), ``materials``
    what each name plays (one chord per bar, looping its progression from the section's first
    bar). A returning section plays the same chords and arrangement with a new melody.
    ``Song.extra["sections"]`` holds (start, end, name) per section, on downbeats; the first
    starts at 0 (the silence before the first beat belongs to it), the last ends with the file."""
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    bars = sum(n for _, n in form)
    duration = start + bars * beats_per_bar * period + tail
    out = np.zeros(int(duration * sample_rate), dtype=np.float32)
    kick = _kick(sample_rate)
    beats: list[tuple[float, int]] = []
    chords: list[tuple[float, float, str]] = [(0.0, start, "N")] if start > 0 else []
    sections: list[tuple[float, float, str]] = []
    beat = 0
    for name, count in form:
        material = materials[name]
        section_start = start + beat * period
        for bar in range(count):
            label = material.progression[bar % len(material.progression)]
            root, intervals = parse_chord(label)
            bar_time = start + beat * period
            bar_end = bar_time + beats_per_bar * period
            if chords and chords[-1][2] == label and abs(chords[-1][1] - bar_time) < 1e-9:
                chords[-1] = (chords[-1][0], bar_end, label)
            else:
                chords.append((bar_time, bar_end, label))
            notes = [material.register + (root + i) % 12 for i in intervals]
            for position in range(1, beats_per_bar + 1):
                time = start + beat * period
                beats.append((time, position))
                at = int(round(time * sample_rate))
                _render_beat(out, at, period, position, beats_per_bar, material, notes, root, rng, kick,
                             sample_rate, first=position == 1)
                beat += 1
        sections.append((section_start, start + beat * period, name))
    if chords:
        chords[-1] = (chords[-1][0], duration, chords[-1][2])
    sections[0] = (0.0, sections[0][1], sections[0][2])
    sections[-1] = (sections[-1][0], duration, sections[-1][2])
    peak = float(np.max(np.abs(out))) or 1.0
    out *= 0.9 / peak
    return Song(out, sample_rate, beats, chords, key, bpm, beats_per_bar,
                extra={"keys": [(0.0, duration, key)], "sections": sections})


def _render_beat(out, at, period, position, beats_per_bar, material, notes, root, rng, kick, rate, first):
    gain = material.gain
    length = int(period * rate)
    if material.texture == "pad" and first:
        for note in notes:
            _add(out, _tone(midi_hz(note), length * beats_per_bar, rate, 6, decay=2.5), at, 0.12 * gain)
    elif material.texture == "stabs":
        for note in notes:
            _add(out, _tone(midi_hz(note), length, rate, 8, decay=0.18), at, 0.14 * gain)
    elif material.texture == "arp":
        step = length // 2
        for half in (0, 1):
            note = notes[(2 * (position - 1) + half) % len(notes)] + 12
            _add(out, _tone(midi_hz(note), step * 2, rate, 3, decay=0.3), at + half * step, 0.16 * gain)
    if material.bass:
        _add(out, _tone(midi_hz(36 + root), length, rate, 4, decay=0.4), at, 0.25 * gain)
    if material.melody and rng.random() < 0.8:
        note = notes[int(rng.integers(len(notes)))] + 12
        _add(out, _tone(midi_hz(note), length, rate, 3, decay=0.25), at, 0.15 * gain)
    drums = material.drums
    if drums == "none":
        return
    if position == 1 or (drums == "full" and beats_per_bar == 4 and position == 3) or drums == "four":
        _add(out, kick, at, 0.8 * gain)
    if drums in ("full", "four") and position in ((2, 4) if beats_per_bar == 4 else (2, 3)):
        _add(out, _noise_hit(rate, 0.2, 0.05, rng, highpass=drums == "four"), at, 0.45 * gain)
    for half in (0, 1) if drums != "light" else (0,):
        _add(out, _noise_hit(rate, 0.05, 0.012, rng, highpass=True), at + int(half * period / 2 * rate), 0.25 * gain)


def write_sections(song: Song, stem: str | Path) -> Path:
    """The song's sections as ``STEM.sections.lab`` (start, end, name), as mir_eval reads them."""
    path = Path(f"{stem}.sections.lab")
    path.write_text("".join(f"{s:.6f}\t{e:.6f}\t{name}\n" for s, e, name in song.extra["sections"]))
    return path
