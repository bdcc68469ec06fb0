"""Songs with a form: the GM corpus's way of writing MIDI (``gm_corpus``), here with named
sections written into the truth (``<song>.sections.lab``: start, end, section name).

Each song is a sequence of sections, each section an instance of a *part* (intro, verse,
chorus, bridge, instrumental, outro; a medley has several verses): its own chord loop, comping
figure, drum pattern, instruments, loudness and melody motif, so a part that returns is the
same music again. The forms are those real songs have: pickups and drum fills into sections,
intros and outros of odd lengths, choruses back to back, a bridge in another key, a last
chorus modulated up, instrumental breaks over the chorus chords, half-time choruses, songs
with no drums, a fast 3/4, and long medleys (5-20 minutes) whose chorus keeps returning.

Splits: ``dev`` (tune on; FluidR3) and ``test`` (report only; other seeds, rendered with
TimGM6mb and MuseScore General Lite, other samples). Audio is cached outside the repository
(``~/.cache/mirflow/gm-forms``). The truth also has beats, chords and keys, like ``gm_corpus``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gm_corpus import CACHE as GM_CACHE  # noqa: E402
from gm_corpus import HARTE_ROOTS, INTERVALS, NAMES, PPQ, progression, save_midi, synthesize  # noqa: E402

CACHE = GM_CACHE.parent / "gm-forms"
SOUNDFONTS = {"dev": ["/usr/share/sounds/sf2/FluidR3_GM.sf2"],
              "test": ["/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"]}
SPLITS = {"dev": list(range(200, 214)), "test": list(range(300, 314))}
KINDS = ("pop", "odd", "halftime", "nodrums", "waltz", "medley", "pop", "funk", "odd", "ballad", "dance",
         "halftime", "waltz", "medley")  # seed % 14: the same mix of forms in both splits
TEMPI = {"pop": (96, 126), "odd": (90, 130), "halftime": (140, 170), "nodrums": (70, 100), "waltz": (160, 176),
         "medley": (100, 128), "funk": (92, 110), "ballad": (64, 80), "dance": (120, 130)}
KEYS_PROGRAMS = (0, 1, 4, 5, 16, 24, 25, 27)
PAD_PROGRAMS = (48, 49, 50, 88, 89, 52)
LEAD_PROGRAMS = (80, 81, 73, 65, 56, 71, 11, 40)


@dataclass
class Part:
    """One kind of section: the same music each time it comes back."""

    name: str
    chords: list  # (root pitch class, quality) per bar
    drums: str  # none | light | full | halftime | four | ride
    comp: str  # sustain | quarters | eighths | offbeat | arp
    program: int
    lead: int | None  # melody program, None: no melody
    velocity: int
    seed: int
    key: str


@dataclass
class FormSong:
    name: str
    bpm: float
    beats_per_bar: int
    sections: list = field(default_factory=list)  # (Part, bars, transpose, fill into the next)
    beats: list = field(default_factory=list)
    chords: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    truth: list = field(default_factory=list)  # (start, end, name)
    duration: float = 0.0


def plan(seed: int) -> FormSong:
    """A song's parts and form from its seed."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    low, high = TEMPI[kind]
    bpm = float(rng.integers(low, high + 1))
    metre = 3 if kind == "waltz" else 4
    key = f"{NAMES[int(rng.integers(12))]} {'major' if rng.random() < 0.65 else 'minor'}"
    sevenths = rng.random() < 0.3
    loops = _distinct_loops(key, rng, sevenths, 6)

    def part(name, loop, drums, comp, lead, velocity, chord_key=key, slow=False):
        chords = [c for c in loop for _ in range(2 if slow else 1)]
        if len(chords) < 8 and name in ("verse", "chorus"):
            chords = chords * 2
        program = int(rng.choice(PAD_PROGRAMS if comp == "sustain" else KEYS_PROGRAMS))
        return Part(name, chords, drums, comp, program, lead, velocity, int(rng.integers(1 << 30)), chord_key)

    no_drums = kind in ("nodrums",)
    d = (lambda style: "none") if no_drums else (lambda style: style)
    lead_a, lead_b = (int(x) for x in rng.choice(LEAD_PROGRAMS, 2, replace=False))
    verse = part("verse", loops[0], d("light" if kind != "funk" else "full"), rng.choice(["quarters", "offbeat", "arp"]),
                 lead_a, 62, slow=kind in ("ballad", "nodrums") and rng.random() < 0.5)
    chorus_drums = {"halftime": "halftime", "dance": "four", "waltz": "full"}.get(kind, "full")
    chorus = part("chorus", loops[1], d(chorus_drums), rng.choice(["eighths", "sustain"]), lead_a, 84)
    tonic, mode = key.split()
    other = f"{NAMES[(NAMES.index(tonic) + int(rng.choice([3, 5, 7, 9]))) % 12]} {mode}"
    bridge = part("bridge", _distinct_loops(other, rng, sevenths, 1)[0], d("ride"), "arp", lead_b, 70, chord_key=other)
    intro = part("intro", loops[2][:2] * 2, "none", "sustain", None, 55)
    outro = part("outro", loops[3], d("light"), "sustain", None, 60)
    solo = Part("instrumental", chorus.chords, chorus.drums, "quarters", chorus.program, lead_b, 78,
                int(rng.integers(1 << 30)), key)
    pick = lambda a, b: int(rng.integers(a, b + 1))  # noqa: E731
    v, c = (8, 8) if kind != "waltz" else (16, 16)
    if kind == "medley":
        verses = [verse] + [part("verse", loops[2 + n % 4][::-1] if n % 2 else loops[2 + n % 4], d("light"),
                                 rng.choice(["quarters", "offbeat", "arp"]), lead_a, 64) for n in range(4)]
        for n, p in enumerate(verses):
            p.name = f"verse{n + 1}"
        minutes = (5 if seed % len(KINDS) == 5 else 15) + rng.random() * 4  # one 5-9, one 15-19 minutes
        form = [(intro, pick(3, 6))]
        n = 0
        while (sum(b for _, b, *_ in form) * metre * 60 / bpm) < minutes * 60:
            form += [(verses[n % len(verses)], 16), (chorus, 8)]
            if n % 3 == 2:
                form += [(solo, 8), (chorus, 8)]
            if n % 4 == 3:
                form += [(bridge, 8)]
            n += 1
        form += [(chorus, 8), (outro, pick(3, 6))]
    elif kind == "odd":
        form = [(intro, pick(3, 6)), (verse, 16), (chorus, c), (chorus, c), (verse, v), (chorus, c), (solo, 8),
                (chorus, c), (outro, pick(3, 5))]
    elif kind == "waltz":
        form = [(intro, 8), (verse, v), (chorus, c), (verse, v), (chorus, c), (bridge, 16), (chorus, c),
                (chorus, c), (outro, 6)]
    elif kind in ("nodrums", "ballad"):
        form = [(intro, 4), (verse, v), (chorus, c), (verse, v), (chorus, c), (bridge, 8), (chorus, c),
                (outro, pick(2, 4))]
    else:
        form = [(intro, 4), (verse, v), (chorus, c), (verse, v), (chorus, c), (bridge, 8), (chorus, c),
                (chorus, c), (outro, 4)]
    song = FormSong(f"form{seed:03d}_{kind}_{bpm:g}bpm_{key.replace(' ', '_')}", bpm, metre)
    last_chorus = max(n for n, (p, _) in enumerate(form) if p is chorus)
    modulate = kind in ("pop", "odd", "ballad") and rng.random() < 0.7
    for n, (p, bars) in enumerate(form):
        transpose = int(rng.choice([1, 2])) if modulate and n == last_chorus else 0
        fill = n + 1 < len(form) and rng.random() < 0.6 and not no_drums
        song.sections.append((p, bars, transpose, fill))
    return song


def _distinct_loops(key: str, rng, sevenths: bool, count: int) -> list:
    """``count`` four-bar loops of the key, no two alike (the gm_corpus loops, then rotations)."""
    found: list = []
    for _ in range(200):
        loop = progression(key, rng, sevenths)
        if rng.random() < 0.5:
            loop = loop[2:] + loop[:2]
        if loop not in found:
            found.append(loop)
        if len(found) == count:
            break
    while len(found) < count:
        found.append(found[len(found) % max(1, len(found))][::-1])
    return found


def write_midi(song: FormSong, path: Path) -> None:
    """The song as MIDI; fills its beats, chords, keys and section truth as it goes."""
    import mido

    events: list = []
    conductor = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.bpm)))]
    beat_ticks, n_beats = PPQ, song.beats_per_bar
    bar_ticks = n_beats * beat_ticks
    tick, seconds = 0, 0.0
    rng = np.random.default_rng(len(song.name))

    def note(channel, pitch, start, length, velocity):
        velocity = int(np.clip(velocity + rng.integers(-6, 7), 20, 127))
        events.append((start, 1, mido.Message("note_on", channel=channel, note=int(pitch), velocity=velocity)))
        events.append((start + max(1, length), 0, mido.Message("note_off", channel=channel, note=int(pitch))))

    for index, (part, bars, transpose, fill) in enumerate(song.sections):
        start = seconds
        for channel, program in ((0, part.program), (1, 33 if part.drums != "none" else 32), (2, part.lead or 0)):
            events.append((tick, 0, mido.Message("program_change", channel=channel, program=program)))
        motif = np.random.default_rng(part.seed)
        melody = [(int(motif.integers(n_beats * 2)), int(motif.integers(3)), int(motif.choice([0, 0, 2, -1])))
                  for _ in range(n_beats + 1)]
        tonic, mode = part.key.split()
        key = f"{NAMES[(NAMES.index(tonic) + transpose) % 12]} {mode}"
        if not song.keys or song.keys[-1][2] != key:
            song.keys.append([start, None, key])
        for bar in range(bars):
            root, quality = part.chords[bar % len(part.chords)]
            root = (root + transpose) % 12
            tones = [root + i for i in INTERVALS[quality]]
            bar_start = seconds
            for position in range(1, n_beats + 1):
                song.beats.append((seconds, position))
                seconds += 60.0 / song.bpm
            label = f"{HARTE_ROOTS[root]}:{quality}"
            if song.chords and song.chords[-1][2] == label and abs(song.chords[-1][1] - bar_start) < 1e-9:
                song.chords[-1] = (song.chords[-1][0], seconds, label)
            else:
                song.chords.append((bar_start, seconds, label))
            last_bar = bar == bars - 1
            _comp(part, tones, tick, beat_ticks, n_beats, note)
            _bass(part, root, tick, beat_ticks, n_beats, note)
            if part.lead is not None:
                for step, length, offset in melody:
                    pitch = 72 + tones[(step + bar) % len(tones)] % 12 + offset
                    note(2, pitch, tick + step * beat_ticks // 2, beat_ticks // 2 * (1 + length), part.velocity)
            if last_bar and fill:  # a pickup into the next section: two melody notes on the last beat
                for k in range(2):
                    note(2, 72 + tones[k] % 12, tick + bar_ticks - beat_ticks + k * beat_ticks // 2, beat_ticks // 2,
                         part.velocity)
            _drums(part.drums, tick, beat_ticks, n_beats, note, fill=last_bar and fill, first=bar == 0)
            tick += bar_ticks
        song.truth.append((start, seconds, part.name))
    root, quality = song.sections[-1][0].chords[0]
    for pitch in [60 + (root + i) % 12 for i in INTERVALS[quality]] + [36 + root]:
        note(0 if pitch >= 60 else 1, pitch, tick, beat_ticks * 2, 75)
    song.beats.append((seconds, 1))
    song.duration = seconds + 3.0
    song.truth[-1] = (song.truth[-1][0], song.duration, song.truth[-1][2])
    song.chords.append((seconds, song.duration, "N"))
    for n, k in enumerate(song.keys):
        k[1] = song.keys[n + 1][0] if n + 1 < len(song.keys) else song.duration
    save_midi(mido.MidiFile(ticks_per_beat=PPQ), conductor, events, path)


def _comp(part: Part, tones, tick, beat, n, note) -> None:
    voicing = [60 + t % 12 for t in tones]
    velocity = part.velocity - 10
    if part.comp == "sustain":
        for pitch in voicing:
            note(0, pitch, tick, n * beat - 10, velocity)
    elif part.comp == "arp":
        for step in range(2 * n):
            note(0, voicing[step % len(voicing)] + (12 if step % 4 == 3 else 0), tick + step * beat // 2, beat // 2,
                 velocity)
    else:
        hits = {"quarters": [b * beat for b in range(n)], "eighths": [s * beat // 2 for s in range(2 * n)],
                "offbeat": [b * beat + beat // 2 for b in range(n)]}[part.comp]
        for at in hits:
            for pitch in voicing:
                note(0, pitch, tick + at, beat // 2 - 10, velocity)


def _bass(part: Part, root, tick, beat, n, note) -> None:
    bass = 36 + root % 12
    if part.drums in ("none", "ride") or part.comp == "sustain":
        note(1, bass, tick, n * beat - 20, part.velocity)
    else:
        for b in range(n):
            note(1, bass + (7 if b % 2 and part.drums == "four" else 0), tick + b * beat, beat - 30, part.velocity + 5)


def _drums(style: str, tick, beat, n, note, fill: bool, first: bool) -> None:
    kick, snare, hat, ride, clap, open_hat, stick, crash = 36, 38, 42, 51, 39, 46, 37, 49
    if style == "none":
        return
    if first and style in ("full", "four", "halftime"):
        note(9, crash, tick, beat, 100)
    for b in range(n - 2 if fill else n):
        at = tick + b * beat
        if style == "light":
            note(9, hat, at, 30, 60)
            if b == 0:
                note(9, kick, at, 60, 85)
            if n == 4 and b in (1, 3) or n == 3 and b == 2:
                note(9, stick, at, 30, 60)
        elif style == "full":
            note(9, hat, at, 30, 75)
            note(9, hat, at + beat // 2, 30, 60)
            if b == 0 or (n == 4 and b == 2):
                note(9, kick, at, 60, 105)
            if (n == 4 and b in (1, 3)) or (n == 3 and b in (1, 2)):
                note(9, snare, at, 60, 100)
        elif style == "halftime":
            note(9, hat, at, 30, 70)
            if b == 0:
                note(9, kick, at, 60, 105)
            if b == 2:
                note(9, snare, at, 60, 105)
        elif style == "four":
            note(9, kick, at, 60, 110)
            note(9, open_hat, at + beat // 2, 40, 80)
            if b in (1, 3):
                note(9, clap, at, 40, 95)
        elif style == "ride":
            note(9, ride, at, 40, 75)
            if b == 0:
                note(9, kick, at, 40, 70)
    if fill:  # sixteenth-note snare and toms over the last two beats
        for s in range(8):
            note(9, (snare, snare, 50, 50, 47, 47, 45, 45)[s], tick + (n - 2) * beat + s * beat // 4, 30, 70 + 4 * s)


def render(song: FormSong, folder: Path, soundfont: str) -> Path:
    """MIDI -> FluidSynth -> FLAC, and the truth files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / song.name
    write_midi(song, Path(f"{stem}.mid"))
    audio = synthesize(Path(f"{stem}.mid"), Path(f"{stem}.flac"), song.duration, Path(soundfont))
    Path(f"{stem}.beats").write_text("".join(f"{t:.6f}\t{p}\n" for t, p in song.beats))
    Path(f"{stem}.lab").write_text("".join(f"{s:.6f}\t{e:.6f}\t{c}\n" for s, e, c in song.chords))
    Path(f"{stem}.keys").write_text("".join(f"{s:.6f}\t{e:.6f}\t{k}\n" for s, e, k in song.keys))
    Path(f"{stem}.sections.lab").write_text("".join(f"{s:.6f}\t{e:.6f}\t{n}\n" for s, e, n in song.truth))
    return audio


def function_of(name: str) -> str:
    """The section's function from its truth name (``verse2`` of a medley is a verse)."""
    return re.sub(r"\d+$", "", name)


def gm_forms(split: str = "test"):
    """The split's pieces (rendered on first use into the cache), each with its section truth."""
    from corpus import Piece

    fonts = SOUNDFONTS[split]
    pieces = []
    for n, seed in enumerate(SPLITS[split]):
        song = plan(seed)
        audio = render(song, CACHE / split, fonts[n % len(fonts)])
        stem = audio.with_suffix("")
        truth = [Path(f"{stem}{suffix}") for suffix in (".beats", ".lab", ".keys", ".sections.lab")]
        pieces.append(Piece(song.name, audio, truth))
    return pieces


if __name__ == "__main__":
    for split in ("dev", "test"):
        for piece in gm_forms(split):
            print(split, piece.name)
