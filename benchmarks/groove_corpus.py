"""Grooves where real music stops being straight 4/4, with exact truth: 6/8 and 12/8 ballads,
slow blues and rock, triplet-arpeggio ballads, shuffles, fast swing, half-time grooves, songs
without drums (4/4, 3/4, 6/8), and straight 4/4 and 3/4 controls, in major and minor keys.

Written as MIDI (mido) and rendered by FluidSynth; shares no code with ``gm_corpus`` or
``mirflow.synth``. The tactus in the truth is the beat a musician writes: the dotted quarter in
6/8 and 12/8 (positions 1..2 or 1..4), the quarter elsewhere. Split ``dev`` (tuned on: the
FluidR3 soundfont, seeds 0-21) and ``test`` (never tuned on: TimGM6mb, MuseScore General Lite
and the csound GM bank, seeds 100-142). Audio is cached in ``~/.cache/mirflow/groove-corpus``.

    .venv/bin/python benchmarks/groove_corpus.py     # renders both splits, lists the songs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gm_corpus import save_midi  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirflow" / "groove-corpus"
FONTS = {"dev": [Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")],
         "test": [Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
                  Path("/usr/share/sounds/sf2/sf_GMbank.sf2")]}
SEEDS = {"dev": range(0, 22), "test": range(100, 143)}
PPQ = 480  # ticks per tactus beat (the MIDI tempo is set so that one tactus beat lasts 60/bpm s)
ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10)}
MAJOR_LOOPS = [((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")), ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
               ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj"))]
MINOR_LOOPS = [((0, "min"), (5, "min"), (7, "maj"), (0, "min")), ((0, "min"), (8, "maj"), (5, "min"), (7, "maj")),
               ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj"))]
BLUES = (0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)  # twelve-bar roots (dominant sevenths)

# style: (class, beats per bar, subdivision, tactus BPM range, drums?, written signature)
STYLES = {
    "ballad68": ("compound", 2, 3, (50, 70), True, "6/8"),
    "blues128": ("compound", 4, 3, (50, 66), True, "12/8"),
    "rock128": ("compound", 4, 3, (66, 84), True, "12/8"),
    "triplet_ballad": ("compound", 4, 3, (58, 70), True, "12/8"),
    "shuffle": ("shuffle/swing", 4, 3, (96, 132), True, "4/4"),
    "fast_swing": ("shuffle/swing", 4, 3, (160, 220), True, "4/4"),
    "halftime": ("half-time", 4, 2, (140, 170), True, "4/4"),
    "drumless44": ("drumless", 4, 2, (90, 130), False, "4/4"),
    "drumless34": ("drumless", 3, 2, (110, 170), False, "3/4"),
    "drumless68": ("compound", 2, 3, (52, 70), False, "6/8"),
    "straight44": ("straight", 4, 2, (88, 132), True, "4/4"),
    "waltz34": ("straight", 3, 2, (90, 150), True, "3/4"),
}
# GM programs (comping, bass, lead) per style
SOUNDS = {"ballad68": (0, 32, 73), "blues128": (26, 33, 65), "rock128": (29, 34, 30), "triplet_ballad": (0, 33, 48),
          "shuffle": (4, 33, 66), "fast_swing": (0, 32, 65), "halftime": (27, 38, 81), "drumless44": (0, 32, 24),
          "drumless34": (24, 32, 0), "drumless68": (0, 32, 25), "straight44": (4, 33, 62), "waltz34": (0, 32, 71)}


@dataclass
class Song:
    name: str
    style: str
    bpm: float
    key: str
    font: Path
    beats: list[tuple[float, int]] = field(default_factory=list)
    chords: list[tuple[float, float, str]] = field(default_factory=list)
    duration: float = 0.0

    @property
    def kind(self) -> str:
        return STYLES[self.style][0]

    @property
    def signature(self) -> str:
        return STYLES[self.style][5]


def plan(seed: int, split: str) -> Song:
    rng = np.random.default_rng(seed)
    names = list(STYLES)
    style = names[seed % len(names)]
    low, high = STYLES[style][3]
    bpm = float(rng.integers(low, high + 1))
    key = f"{ROOTS[int(rng.integers(12))]} {'minor' if rng.random() < 0.5 else 'major'}"
    fonts = FONTS[split]
    font = fonts[(seed // len(names)) % len(fonts)]
    return Song(f"groove{seed:03d}_{style}_{bpm:g}bpm_{key.replace(' ', '_').replace('#', 's')}_{font.stem}",
                style, bpm, key, font)


def chord_at(song: Song, bar: int, loop) -> tuple[int, str]:
    tonic = ROOTS.index(song.key.split()[0])
    if song.style == "blues128":
        return (tonic + BLUES[bar % 12]) % 12, "7"
    step, quality = loop[bar % len(loop)]
    return (tonic + step) % 12, quality


def write_midi(song: Song, seed: int, path: Path, seconds: float = 30.0) -> None:
    """The song as MIDI; fills the truth (beats with positions, chords) as it goes."""
    import mido

    _, per_bar, sub, _, with_drums, _ = STYLES[song.style]
    rng = np.random.default_rng(seed + 7)
    minor = song.key.endswith("minor")
    loops = MINOR_LOOPS if minor else MAJOR_LOOPS
    loop = loops[int(rng.integers(len(loops)))]
    beat_s = 60.0 / song.bpm
    bars = int(np.ceil(seconds / (per_bar * beat_s)))
    events: list[tuple[int, int, mido.Message]] = []
    jitter = max(1, PPQ // 60)

    def note(channel, pitch, tick, length, velocity):
        tick = max(0, int(tick + rng.integers(-jitter, jitter + 1)))
        velocity = int(np.clip(velocity + rng.integers(-6, 7), 15, 127))
        events.append((tick, 1, mido.Message("note_on", channel=channel, note=int(pitch), velocity=velocity)))
        events.append((tick + max(1, int(length)), 0, mido.Message("note_off", channel=channel, note=int(pitch))))

    for channel, program in enumerate(SOUNDS[song.style]):
        events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
    for bar in range(bars):
        start = bar * per_bar * PPQ
        root, quality = chord_at(song, bar, loop)
        song.chords.append((bar * per_bar * beat_s, (bar + 1) * per_bar * beat_s, f"{ROOTS[root]}:{quality}"))
        for position in range(per_bar):
            song.beats.append(((bar * per_bar + position) * beat_s, position + 1))
        tones = [48 + (root + i) % 12 + (12 if (root + i) % 12 < 5 else 0) for i in TRIADS[quality]]
        comping(song.style, note, start, per_bar, sub, tones, rng)
        bassline(song.style, note, start, per_bar, sub, 36 + root % 12, quality, bar)
        if rng.random() < 0.6:  # a sparse lead line on chord tones
            for beat in range(per_bar):
                if rng.random() < 0.5:
                    pitch = 72 + tones[int(rng.integers(len(tones)))] % 12
                    note(2, pitch, start + beat * PPQ + (PPQ * int(rng.integers(sub)) // sub), PPQ // 2, 72)
        if with_drums:
            drums(song.style, note, start, per_bar, sub, bar, rng)
    end_tick = bars * per_bar * PPQ  # a final chord on the next downbeat
    root, quality = chord_at(song, 0, loop)
    for pitch in [48 + (root + i) % 12 for i in TRIADS[quality]] + [36 + root]:
        note(0, pitch, end_tick, PPQ, 80)
    song.beats.append((bars * per_bar * beat_s, 1))
    song.chords.append((bars * per_bar * beat_s, bars * per_bar * beat_s + beat_s, f"{ROOTS[root]}:{quality}"))
    song.duration = (bars * per_bar + 1) * beat_s + 2.5
    save_midi(mido.MidiFile(ticks_per_beat=PPQ), [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.bpm)))],
              events, path)


def comping(style, note, start, per_bar, sub, tones, rng) -> None:
    """Channel 0: arpeggios on the subdivisions (compound and ballads), chords on the beats or
    on swung off-beats, or a pad."""
    step = PPQ // sub
    if style in ("ballad68", "triplet_ballad", "drumless68", "drumless34"):
        figure = tones + [tones[1] + 12] if style != "drumless34" else tones
        for beat in range(per_bar):
            for s in range(sub if style != "drumless34" else 2):
                pitch = figure[(beat * sub + s) % len(figure)]
                step_here = step if style != "drumless34" else PPQ // 2
                note(0, pitch, start + beat * PPQ + s * step_here, step_here * 2, 70 if s == 0 else 56)
        if style == "drumless34":  # oom-pah-pah: the chord on beats 2 and 3
            for beat in (1, 2):
                for pitch in tones:
                    note(0, pitch + 12, start + beat * PPQ, PPQ // 2, 58)
    elif style in ("blues128", "rock128"):
        for beat in range(per_bar):
            for s in range(sub):
                for pitch in tones:
                    note(0, pitch, start + beat * PPQ + s * step, step - 20, 66 if s == 0 else 52)
    elif style in ("shuffle", "fast_swing"):
        for beat in range(per_bar):
            if style == "shuffle" or rng.random() < 0.5:
                at = start + beat * PPQ + (2 * step if (style == "fast_swing" and rng.random() < 0.5) else 0)
                for pitch in tones:
                    note(0, pitch, at, step, 62)
    elif style == "drumless44":
        for beat in range(per_bar):
            for half in (0, 1):
                for pitch in tones:
                    note(0, pitch, start + beat * PPQ + half * PPQ // 2, PPQ // 2 - 20, 66 if half == 0 else 54)
    elif style == "halftime":
        for pitch in tones:
            note(0, pitch, start, per_bar * PPQ - 20, 55)
    else:  # straight44, waltz34
        for beat in range(per_bar):
            for pitch in tones:
                note(0, pitch, start + beat * PPQ, PPQ // 2, 62 if beat else 70)


def bassline(style, note, start, per_bar, sub, bass, quality, bar) -> None:
    """Channel 1: the root on the beats; walking in swing, boogie in the shuffle and blues."""
    third = TRIADS[quality][1]
    if style == "fast_swing":
        walk = (bass, bass + third, bass + 7, bass + (10 if bar % 2 else 9))
        for beat in range(per_bar):
            note(1, walk[beat], start + beat * PPQ, PPQ - 30, 88)
    elif style in ("shuffle", "blues128"):
        boogie = (bass, bass + 7, bass + 9, bass + 7)
        for beat in range(per_bar):
            note(1, boogie[beat % 4], start + beat * PPQ, 2 * PPQ // 3 - 20, 88)
            note(1, boogie[beat % 4], start + beat * PPQ + 2 * PPQ // 3, PPQ // 3 - 20, 70)
    elif style in ("halftime",):
        note(1, bass, start, PPQ + PPQ // 2, 90)
        note(1, bass, start + 2 * PPQ + PPQ // 2, PPQ, 80)
    elif style in ("ballad68", "drumless68", "triplet_ballad"):
        note(1, bass, start, per_bar * PPQ - 40, 84)
        if per_bar == 4:
            note(1, bass + 7, start + 2 * PPQ, 2 * PPQ - 40, 76)
    elif style == "drumless34" or style == "waltz34":
        note(1, bass, start, PPQ - 30, 90)
    else:
        for beat in range(per_bar):
            note(1, bass + (7 if beat % 2 and style == "rock128" else 0), start + beat * PPQ, PPQ - 40, 86)


def drums(style, note, start, per_bar, sub, bar, rng) -> None:
    kick, snare, stick, hat, pedal, ride, crash = 36, 38, 37, 42, 44, 51, 49
    step = PPQ // sub
    if bar % 8 == 0:
        note(9, crash, start, PPQ, 90)
    if style in ("ballad68",):
        for e in range(per_bar * sub):
            note(9, hat, start + e * step, 30, 62 if e % sub == 0 else 44)
        note(9, kick, start, 60, 96)
        note(9, stick, start + PPQ, 60, 80)
    elif style in ("blues128", "rock128", "triplet_ballad"):
        cymbal = ride if style == "blues128" else hat
        for e in range(per_bar * sub):
            note(9, cymbal, start + e * step, 30, 70 if e % sub == 0 else 48)
        for beat in range(per_bar):
            note(9, kick if beat % 2 == 0 else snare, start + beat * PPQ, 60, 100 if beat % 2 else 96)
        if style == "rock128" and rng.random() < 0.5:
            note(9, kick, start + 2 * PPQ + 2 * step, 60, 84)
    elif style == "shuffle":
        for beat in range(per_bar):
            note(9, hat, start + beat * PPQ, 30, 74)
            note(9, hat, start + beat * PPQ + 2 * step, 30, 56)
            note(9, kick if beat % 2 == 0 else snare, start + beat * PPQ, 60, 100)
    elif style == "fast_swing":  # ride: ding, ding-a, ding, ding-a; hi-hat pedal on 2 and 4
        for beat in range(per_bar):
            note(9, ride, start + beat * PPQ, 40, 82)
            if beat % 2:
                note(9, ride, start + beat * PPQ + 2 * step, 30, 64)
                note(9, pedal, start + beat * PPQ, 30, 70)
        if rng.random() < 0.3:
            note(9, snare, start + 3 * PPQ + 2 * step, 30, 50)  # a comping snare
    elif style == "halftime":  # the snare on 3 only: the groove feels half as fast
        note(9, kick, start, 60, 104)
        note(9, kick, start + PPQ + PPQ // 2, 60, 86)
        note(9, snare, start + 2 * PPQ, 60, 106)
        for half in range(2 * per_bar):
            note(9, hat, start + half * PPQ // 2, 30, 66 if half % 2 == 0 else 50)
    elif style == "straight44":
        for half in range(2 * per_bar):
            note(9, hat, start + half * PPQ // 2, 30, 70 if half % 2 == 0 else 52)
        for beat in range(per_bar):
            note(9, kick if beat % 2 == 0 else snare, start + beat * PPQ, 60, 100)
    elif style == "waltz34":
        note(9, kick, start, 60, 98)
        for beat in (1, 2):
            note(9, hat, start + beat * PPQ, 30, 66)


def render(song: Song, seed: int, folder: Path) -> Path:
    """MIDI -> FluidSynth (44.1 kHz) -> FLAC trimmed to the song, and its truth files."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    audio, midi = folder / f"{song.name}.flac", folder / f"{song.name}.mid"
    write_midi(song, seed, midi)
    if not audio.exists():
        if shutil.which("fluidsynth") is None or not song.font.exists():
            raise RuntimeError(f"the groove corpus needs Debian's fluidsynth and {song.font}")
        wav = folder / f"{song.name}.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", "44100", "-F", str(wav), str(song.font),
                        str(midi)], check=True, capture_output=True)
        samples, rate = soundfile.read(str(wav), dtype="float32")
        soundfile.write(audio, samples[: int(song.duration * rate)], rate)
        wav.unlink()
    stem = folder / song.name
    Path(f"{stem}.beats").write_text("".join(f"{t:.6f}\t{p}\n" for t, p in song.beats))
    chords = song.chords + [(song.chords[-1][1], song.duration, "N")]
    Path(f"{stem}.lab").write_text("".join(f"{s:.6f}\t{e:.6f}\t{c}\n" for s, e, c in chords))
    Path(f"{stem}.key").write_text(song.key + "\n")
    Path(f"{stem}.bpm").write_text(f"{song.bpm:g}\n")
    Path(f"{stem}.metre").write_text(f"{song.signature}\t{song.kind}\t{song.style}\n")
    return audio


def groove_corpus(split: str = "test"):
    """The split's pieces (rendered on first use into the cache), each with ``.style``,
    ``.kind`` (class of music) and ``.signature`` (the written time signature)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus import Piece

    pieces = []
    for seed in SEEDS[split]:
        song = plan(seed, split)
        audio = render(song, seed, CACHE / split)
        stem = CACHE / split / song.name
        piece = Piece(song.name, audio, [Path(f"{stem}{s}") for s in (".beats", ".lab", ".key", ".bpm")])
        piece.style, piece.kind, piece.signature = song.style, song.kind, song.signature
        pieces.append(piece)
    return pieces


if __name__ == "__main__":
    for split in ("dev", "test"):
        for piece in groove_corpus(split):
            print(split, piece.kind, piece.signature, piece.name)
