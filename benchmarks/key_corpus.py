"""Songs whose key a chroma profile gets wrong: minor keys with modal mixture, relative-major
passages, songs that open on IV, V or vi, Picardy endings, modulations; in all 24 keys, several
styles and tempi, with drums and without. Written as MIDI, rendered by FluidSynth, with exact
truth (key, key changes, Harte chords, beats).

Independent of ``benchmarks/gm_corpus.py`` and ``mirflow.synth``: its own progressions, voicings,
melodies and drum patterns. Split ``dev`` (seeds 0-23, the FluidR3 soundfont: tune on this) and
``test`` (seeds 100-123, rendered with TimGM6mb, MuseScore General Lite and the csound GM bank:
report on this, never tune on it). Audio is cached outside the repository
(``~/.cache/mirflow/key-corpus``).

    .venv/bin/python benchmarks/key_corpus.py      # renders both splits, lists the songs

Needs Debian's ``fluidsynth`` and its soundfonts, and PyPI's ``mido``.
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

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirflow" / "key-corpus"
SOUNDFONTS = {"fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
              "timgm": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
              "musescore": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
              "gmbank": Path("/usr/share/sounds/sf2/sf_GMbank.sf2")}
SPLITS = {"dev": (range(0, 24), ("fluidr3",)), "test": (range(100, 124), ("timgm", "musescore", "gmbank"))}
PPQ = 480
TONICS_MAJOR = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TONICS_MINOR = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
HARTE = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
TONES = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "min7": (0, 3, 7, 10), "maj7": (0, 4, 7, 11)}

# Progressions as (semitones above the tonic, quality), one chord per bar (two where a bar has
# a pair). Each kind is what the issue names; every song closes on its tonic (or, for
# "picardy", the major tonic of its minor key) after a dominant.
MINOR_LOOPS = {
    "harmonic": [[(0, "min"), (5, "min"), (7, "7"), (0, "min")], [(0, "min"), (8, "maj"), (5, "min"), (7, "maj")]],
    "mixture": [[(0, "min"), (10, "maj"), (8, "maj"), (7, "maj")], [(0, "min"), (8, "maj"), (10, "maj"), (0, "min")],
                [(0, "min"), (3, "maj"), (10, "maj"), (7, "maj")]],
    # (not i7-iv7-bVII7-bIIImaj7: that is vi-ii-V-I of the relative major, which a listener hears)
    "melodic": [[(0, "min"), (2, "min"), (5, "maj"), (7, "maj")], [(0, "min7"), (5, "maj"), (2, "min"), (7, "7")]],
}
MAJOR_OPENINGS = {  # songs that start away from the tonic
    "opens-IV": [(5, "maj"), (7, "maj"), (0, "maj"), (9, "min")],
    "opens-V": [(7, "maj"), (9, "min"), (5, "maj"), (0, "maj")],
    "opens-vi": [(9, "min"), (5, "maj"), (0, "maj"), (7, "maj")],
}
MINOR_OPENINGS = {"opens-iv": [(5, "min"), (7, "maj"), (0, "min"), (8, "maj")],
                  "opens-VI": [(8, "maj"), (10, "maj"), (0, "min"), (7, "maj")]}
RELATIVE_MAJOR = [(3, "maj"), (8, "maj"), (10, "maj"), (3, "maj")]  # III VI VII III of the minor key
KINDS = ("harmonic", "mixture", "melodic", "picardy", "relative", "opens", "modulating", "major")
STYLES = ("rock", "ballad", "waltz", "shuffle", "bossa", "folk")
TEMPI = {"rock": (100, 140), "ballad": (58, 76), "waltz": (90, 150), "shuffle": (80, 120), "bossa": (120, 150),
         "folk": (84, 112)}
# GM programs (chords, bass, melody) per style; a style with None drums has no kit.
PROGRAMS = {"rock": (29, 34, 81), "ballad": (0, 32, 48), "waltz": (21, 32, 73), "shuffle": (4, 33, 65),
            "bossa": (24, 32, 66), "folk": (25, 32, 22)}
DRUMS = {"rock": True, "ballad": False, "waltz": True, "shuffle": True, "bossa": True, "folk": False}


@dataclass
class KeySong:
    name: str
    kind: str
    style: str
    bpm: float
    tonic: int
    minor: bool
    beats_per_bar: int
    bars: list[tuple[list[tuple[int, str]], int]] = field(default_factory=list)  # (chords of the bar, key)
    beats: list[tuple[float, int]] = field(default_factory=list)
    chords: list[tuple[float, float, str]] = field(default_factory=list)
    keys: list[tuple[float, float, str]] = field(default_factory=list)
    duration: float = 0.0


def key_name(key: int) -> str:
    """Key 0-11 major, 12-23 minor, as 'Eb major' / 'C# minor'."""
    return f"{TONICS_MAJOR[key]} major" if key < 12 else f"{TONICS_MINOR[key - 12]} minor"


def plan(seed: int) -> KeySong:
    """A song from its seed: the kind cycles, so does the key (every split has all 24 keys)."""
    rng = np.random.default_rng(seed + 7919)
    kind = KINDS[seed % len(KINDS)]
    key = (seed * 7 + 5 * (seed // 24)) % 24  # 24 consecutive seeds: every tonic twice
    minor = {"major": False, "opens": key >= 12, "modulating": key >= 12}.get(kind, True)
    tonic = key % 12
    style = STYLES[(seed + seed // len(KINDS)) % len(STYLES)]  # each kind in several styles
    low, high = TEMPI[style]
    bpm = float(rng.integers(low, high + 1))
    metre = 3 if style == "waltz" else 4
    song = KeySong("", kind, style, bpm, tonic, minor, metre)
    home = tonic + (12 if minor else 0)
    bar_seconds = metre * 60 / bpm
    repeats = max(2, int(round(36.0 / bar_seconds / 4)))  # ~36 s of four-bar loops
    if kind in MINOR_LOOPS:
        loops = MINOR_LOOPS[kind]
        loop = loops[int(rng.integers(len(loops)))]
        song.bars = [([chord], home) for _ in range(repeats) for chord in loop]
    elif kind == "picardy":
        loop = MINOR_LOOPS["harmonic"][int(rng.integers(2))]
        song.bars = [([chord], home) for _ in range(repeats) for chord in loop]
    elif kind == "relative":
        loop = MINOR_LOOPS["harmonic"][0]
        half = max(1, repeats // 2)
        song.bars = ([([c], home) for _ in range(half) for c in loop] + [([c], home) for c in RELATIVE_MAJOR]
                     + [([c], home) for _ in range(half) for c in loop])
    elif kind == "opens":
        table = MINOR_OPENINGS if minor else MAJOR_OPENINGS
        opening = list(table)[int(rng.integers(len(table)))]
        song.kind = opening
        song.bars = [([chord], home) for _ in range(repeats) for chord in table[opening]]
    elif kind == "modulating":
        loop = [(0, "min"), (5, "min"), (7, "maj"), (0, "min")] if minor else [(0, "maj"), (9, "min"), (5, "maj"), (7, "maj")]
        step = int(rng.choice([2, 5, 7, 3]))
        second = (tonic + step) % 12 + (12 if minor else 0)
        half = max(2, repeats // 2 + 1)
        song.bars = [([c], home) for _ in range(half) for c in loop] + [([c], second) for _ in range(half) for c in loop]
    else:  # plain major, two chords in some bars
        loop = [[(0, "maj")], [(5, "maj"), (7, "maj")], [(9, "min")], [(2, "min"), (7, "7")]]
        song.bars = [(chords, home) for _ in range(repeats) for chords in loop]
    # The close: a dominant, then the tonic of the key the song ends in (major for a Picardy third).
    last_key = song.bars[-1][1]
    song.bars.append(([(7, "maj")], last_key))
    song.bars.append(([(0, "maj" if kind == "picardy" or last_key < 12 else "min")], last_key))
    label = key_name(home).replace(" ", "_")
    song.name = f"key{seed:03d}_{song.kind}_{style}_{bpm:g}bpm_{label}"
    return song


def write_midi(song: KeySong, seed: int, path: Path) -> None:
    """The song as MIDI; fills its beats, chords and keys (in seconds) as it goes."""
    import mido

    rng = np.random.default_rng(seed + 104729)
    events: list[tuple[int, int, mido.Message]] = []
    beat = PPQ
    seconds_per_tick = 60.0 / song.bpm / PPQ
    chords_ch, bass_ch, melody_ch = 0, 1, 2

    def note(channel, pitch, start, length, velocity):
        velocity = int(np.clip(velocity + rng.integers(-10, 11), 25, 120))
        events.append((int(start), 1, mido.Message("note_on", channel=channel, note=int(pitch), velocity=velocity)))
        events.append((int(start + max(10, length)), 0, mido.Message("note_off", channel=channel, note=int(pitch))))

    for channel, program in enumerate(PROGRAMS[song.style]):
        events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
    n = song.beats_per_bar
    bar_ticks = n * beat
    key_runs: list[tuple[int, int]] = []  # (first tick, key)
    last_melody = 72
    for index, (bar_chords, key) in enumerate(song.bars):
        tick = index * bar_ticks
        if not key_runs or key_runs[-1][1] != key:
            key_runs.append((tick, key))
        tonic, minor = key % 12, key >= 12
        for b in range(n):
            song.beats.append(((tick + b * beat) * seconds_per_tick, b + 1))
        share = bar_ticks // len(bar_chords)
        for c, (step, quality) in enumerate(bar_chords):
            root = (tonic + step) % 12
            start = tick + c * share
            song.chords.append((start * seconds_per_tick, (start + share) * seconds_per_tick, f"{HARTE[root]}:{quality}"))
            tones = [(root + t) % 12 for t in TONES[quality]]
            voicing = sorted(55 + (t - 7) % 12 for t in tones)  # G3..F#4: close voicing
            comp(song.style, note, chords_ch, voicing, start, share, beat, rng)
            bass_line(song.style, note, bass_ch, 36 + root, 36 + (root + 7) % 12, start, share, beat)
            scale = scale_of(tonic, minor, dominant=(step == 7 and quality in ("maj", "7")))
            last_melody = melody(note, melody_ch, tones, scale, start, share, beat, rng, last_melody)
        if DRUMS[song.style]:
            drums(song.style, note, tick, n, beat)
    end_tick = len(song.bars) * bar_ticks
    song.duration = end_tick * seconds_per_tick + 2.5
    song.chords.append((end_tick * seconds_per_tick, song.duration, "N"))
    for r, (first, key) in enumerate(key_runs):
        start = 0.0 if r == 0 else first * seconds_per_tick
        end = song.duration if r + 1 == len(key_runs) else key_runs[r + 1][0] * seconds_per_tick
        song.keys.append((start, end, key_name(key)))
    save_midi(mido.MidiFile(ticks_per_beat=PPQ), [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.bpm)))],
              events, path)


def scale_of(tonic: int, minor: bool, dominant: bool) -> list[int]:
    """The melody's notes: major; natural minor, raised 6th and 7th over the dominant (melodic/harmonic)."""
    steps = (0, 2, 4, 5, 7, 9, 11) if not minor else (0, 2, 3, 5, 7, 9, 11) if dominant else (0, 2, 3, 5, 7, 8, 10)
    return [(tonic + s) % 12 for s in steps]


def comp(style, note, channel, voicing, start, length, beat, rng) -> None:
    """The chord instrument: strummed, arpeggiated or held, by style."""
    if style == "ballad":  # piano arpeggio in eighths
        pattern = voicing + voicing[1:2]
        for e in range(length // (beat // 2)):
            note(channel, pattern[e % len(pattern)] + (12 if e % 4 == 3 else 0), start + e * beat // 2, beat, 60)
    elif style == "waltz":
        for b in range(length // beat):
            for pitch in voicing:
                note(channel, pitch, start + b * beat, beat - 40, 58 if b else 66)
    elif style == "shuffle":  # triplet swing: long-short on every beat
        for b in range(length // beat):
            for offset, dur in ((0, 2 * beat // 3), (2 * beat // 3, beat // 3)):
                for pitch in voicing:
                    note(channel, pitch, start + b * beat + offset, dur - 10, 62)
    elif style == "bossa":
        for hit in (0, 3, 6, 10, 12):  # sixteenths of a two-beat cell pattern
            if hit * beat // 4 < length:
                for pitch in voicing:
                    note(channel, pitch, start + hit * beat // 4, beat // 2, 55)
    elif style == "folk":  # down-up strums
        for e in range(length // (beat // 2)):
            for k, pitch in enumerate(voicing if e % 2 == 0 else voicing[::-1]):
                note(channel, pitch, start + e * beat // 2 + 12 * k, beat // 2, 64 if e % 2 == 0 else 48)
    else:  # rock: eighth-note chords
        for e in range(length // (beat // 2)):
            for pitch in voicing:
                note(channel, pitch, start + e * beat // 2, beat // 2 - 20, 70)


def bass_line(style, note, channel, root, fifth, start, length, beat) -> None:
    if style == "waltz":
        note(channel, root, start, beat - 30, 85)
        return
    beats = max(1, length // beat)
    for b in range(beats):
        pitch = fifth - 12 if (style in ("bossa", "folk") and b % 2 == 1) else root
        note(channel, pitch if pitch >= 28 else pitch + 12, start + b * beat, beat - 40, 88)


def melody(note, channel, tones, scale, start, length, beat, rng, last) -> int:
    """A stepwise line: chord tones on strong beats, scale steps between, some rests."""
    step = beat // 2
    pitch = last
    for e in range(length // step):
        if rng.random() < 0.35:
            continue
        strong = e % 2 == 0
        pool = tones if strong else scale
        candidates = [p for p in range(62, 84) if p % 12 in pool]
        pitch = min(candidates, key=lambda p: (abs(p - pitch - rng.integers(-3, 4)), p))
        note(channel, pitch, start + e * step, step * (2 if rng.random() < 0.3 else 1) - 15, 78)
    return pitch


def drums(style, note, tick, n, beat) -> None:
    kick, snare, hat, ride, rim, shaker = 36, 38, 42, 51, 37, 70
    if style == "rock":
        for b in range(n):
            note(9, kick if b % 2 == 0 else snare, tick + b * beat, 60, 100)
            for e in (0, 1):
                note(9, hat, tick + b * beat + e * beat // 2, 30, 72)
    elif style == "waltz":
        note(9, kick, tick, 60, 90)
        for b in range(1, n):
            note(9, rim, tick + b * beat, 30, 60)
    elif style == "shuffle":
        for b in range(n):
            note(9, ride, tick + b * beat, 30, 75)
            note(9, ride, tick + b * beat + 2 * beat // 3, 30, 55)
            note(9, kick if b % 2 == 0 else snare, tick + b * beat, 60, 92)
    elif style == "bossa":
        for s in range(4 * n):
            note(9, shaker, tick + s * beat // 4, 20, 60 if s % 2 == 0 else 40)
        for s in (0, 3, 6, 10, 13):
            note(9, rim, tick + s * beat // 4, 20, 70)
        for b in range(n):
            note(9, kick, tick + b * beat, 40, 80)


def render(song: KeySong, seed: int, soundfont: str, folder: Path) -> Path:
    """MIDI -> FluidSynth (44.1 kHz) -> FLAC, with .key/.keys/.lab/.beats/.bpm beside it."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / song.name
    midi = Path(f"{stem}.mid")
    write_midi(song, seed, midi)
    audio = Path(f"{stem}.flac")
    if not audio.exists():
        font = SOUNDFONTS[soundfont]
        if shutil.which("fluidsynth") is None or not font.exists():
            raise RuntimeError(f"the key corpus needs Debian's fluidsynth and {font}")
        wav = Path(f"{stem}.wav")
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "44100", "-o", "audio.file.format=float",
                        "-F", str(wav), str(font), str(midi)], check=True, capture_output=True)
        samples, rate = soundfile.read(str(wav), dtype="float32")
        samples = samples[: int(song.duration * rate)]
        peak = float(np.abs(samples).max())
        if peak > 0.95:  # a loud soundfont (overdriven guitar) would clip in 16-bit FLAC: scale it down
            samples = samples * (0.95 / peak)
        soundfile.write(audio, samples, rate)
        wav.unlink()
    Path(f"{stem}.beats").write_text("".join(f"{t:.6f}\t{p}\n" for t, p in song.beats))
    Path(f"{stem}.lab").write_text("".join(f"{s:.6f}\t{e:.6f}\t{c}\n" for s, e, c in song.chords))
    Path(f"{stem}.keys").write_text("".join(f"{s:.6f}\t{e:.6f}\t{k}\n" for s, e, k in song.keys))
    if len(song.keys) == 1:
        Path(f"{stem}.key").write_text(song.keys[0][2] + "\n")
    Path(f"{stem}.bpm").write_text(f"{song.bpm:g}\n")
    return audio


def key_corpus(split: str = "test"):
    """The split's pieces (rendered into the cache on first use), each named with its kind,
    style, tempo, key and soundfont."""
    from corpus import Piece

    seeds, fonts = SPLITS[split]
    pieces = []
    for n, seed in enumerate(seeds):
        song = plan(seed)
        font = fonts[n % len(fonts)]
        song.name += f"_{font}"
        audio = render(song, seed, font, CACHE / split)
        stem = CACHE / split / song.name
        truth = [Path(f"{stem}{s}") for s in (".beats", ".lab", ".keys", ".key", ".bpm") if Path(f"{stem}{s}").exists()]
        pieces.append(Piece(song.name, audio, truth))
    return pieces


if __name__ == "__main__":
    for split in SPLITS:
        for piece in key_corpus(split):
            print(split, piece.name)
