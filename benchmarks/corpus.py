"""The evaluation corpus: synthesized songs with exact answers, and the real annotated
excerpts in ../shared/realdata (read in place, never copied into the repository).

    from corpus import synthesized, realdata
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import soundfile

from mirflow.synth import key_progression, make_song, write_annotations

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

# (bpm, beats per bar, key, drums, tempo change (time, bpm)): 60-190 BPM, 3/4 and 4/4, all
# 24 keys over the set, three without drums, one with a tempo change; every third song
# plays seventh chords; all have drums (but three), bass, chords and a melody.
SONGS = [
    (60, 4, "C major", True, None),
    (72, 3, "A minor", True, None),
    (84, 4, "G major", False, None),
    (96, 4, "E minor", True, None),
    (100, 4, "D major", True, (15.0, 130)),
    (110, 3, "B minor", True, None),
    (120, 4, "F major", True, None),
    (128, 4, "D minor", False, None),
    (140, 4, "Bb major", True, None),
    (150, 3, "G minor", True, None),
    (168, 3, "Eb major", True, None),
    (175, 4, "C minor", True, None),
    (190, 4, "A major", True, None),
    (66, 4, "F# minor", True, None),
    (80, 3, "E major", True, None),
    (92, 4, "C# minor", False, None),
    (104, 4, "B major", True, None),
    (116, 3, "G# minor", True, None),
    (124, 4, "F# major", True, None),
    (132, 4, "Eb minor", True, None),
    (144, 4, "Ab major", True, None),
    (156, 3, "Bb minor", True, None),
    (180, 4, "Db major", True, None),
    (88, 4, "F minor", True, None),
]


@dataclass
class Piece:
    name: str
    audio: Path
    truth: list[Path]  # annotation files (mirflow.evaluate reads them)


def synthesized(folder: Path, duration: float = 30.0) -> list[Piece]:
    """Write the synthesized songs (FLAC) and their annotations into ``folder``."""
    pieces = []
    for n, (bpm, bar, key, drums, change) in enumerate(SONGS):
        name = f"synth{n:02d}_{bpm}bpm_{bar}-4_{key.replace(' ', '_')}{'' if drums else '_nodrums'}" + (
            f"_to{change[1]}" if change else "")
        song = make_song(key_progression(key, sevenths=n % 3 == 2), bpm=bpm, beats_per_bar=bar, duration=duration, key=key,
                         drums=drums, tempo_change=change, seed=n, melody=True)
        audio = folder / f"{name}.flac"
        soundfile.write(audio, song.samples, song.sample_rate)
        pieces.append(Piece(name, audio, write_annotations(song, folder / name, tempo=change is None)))
    return pieces


# (bpm, first key, second key, time of the change): two-minute songs that modulate once.
MODULATING = [
    (100, "C major", "G major", 60.0),
    (124, "A minor", "C major", 50.0),
    (90, "D major", "E major", 70.0),
    (140, "F# minor", "A minor", 60.0),
    (76, "Bb major", "G minor", 65.0),
    (112, "E minor", "B minor", 55.0),
]


def modulating(folder: Path, duration: float = 120.0) -> list[Piece]:
    """Songs that change key once (annotated in their ``.keys`` file)."""
    pieces = []
    for n, (bpm, first, second, change) in enumerate(MODULATING):
        name = f"mod{n:02d}_{first.replace(' ', '_')}_to_{second.replace(' ', '_')}"
        song = make_song(key_progression(first), bpm=bpm, duration=duration, key=first, seed=100 + n,
                         modulation=(change, key_progression(second), second), melody=True)
        audio = folder / f"{name}.flac"
        soundfile.write(audio, song.samples, song.sample_rate)
        pieces.append(Piece(name, audio, write_annotations(song, folder / name)))
    return pieces


def realdata(folder: Path) -> list[Piece]:
    """The real excerpts with the annotations we can score (partial beat lists are left out:
    scoring 3 annotated beats against a whole excerpt would count every other beat wrong)."""
    if not REALDATA.is_dir():
        return []
    r = REALDATA
    jtd = r / "jtd" / "barronk-allgodschildren-drummondrrileyb-1990-8b77c067"
    jtd_beats = folder / "jtd.beats"  # its CSV as a plain beat list (time, position)
    with open(f"{jtd}.beats.csv") as handle:
        jtd_beats.write_text("".join(f"{row['beats']}\t{int(float(row['metre_auto']))}\n"
                                     for row in csv.DictReader(handle)))
    return [
        Piece("madmom sample (4/4)", r / "madmom_sample/sample.wav", [r / "madmom_sample/sample.beats"]),
        Piece("ballroom waltz (3/4)", r / "ballroom/Media-105901.wav",
              [r / "ballroom/Media-105901.beats", r / "ballroom/Media-105901.bpm"]),
        Piece("gtzan country", r / "gtzan/country.00000.wav",
              [r / "gtzan/gtzan_country_00000.beats", r / "gtzan/gtzan_country_00000.bpm"]),
        Piece("jtd jazz trio (~290 BPM)", jtd.with_suffix(".wav"), [jtd_beats]),
        Piece("brid samba", r / "brid/M4-01-SA.wav", [r / "brid/M4-01-SA.bpm"]),
        Piece("hainsworth 001", r / "hainsworth/hains001.flac", [r / "hainsworth/hains001.bpm"]),
        Piece("simac 01", r / "simac/simac_01_H_mikri_Rallou.flac", [r / "simac/simac_01_H_mikri_Rallou.bpm"]),
        Piece("cuidado", r / "cuidado/cuidado_FallaCancion.flac", [r / "cuidado/cuidado_FallaCancion.bpm"]),
        Piece("giantsteps tempo", r / "giantsteps_tempo/28952.LOFI.mp3", [r / "giantsteps_tempo/28952.LOFI.jams"]),
        Piece("giantsteps key", r / "giantsteps_key/10089.mp3", [r / "giantsteps_key/10089.key"]),
        Piece("beatport key", r / "beatport_key/100066.mp3", [r / "beatport_key/100066.key"]),
        Piece("classical key", r / "tonality_classicaldb/01-Allegro_Gloria_in_excelsis_Deo.wav",
              [r / "tonality_classicaldb/01-Allegro_Gloria_in_excelsis_Deo.key"]),
    ]


# --- songs with a form (sections), split into a dev half to tune on and a test half -------

FORMS = [
    ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"],
    ["verse", "chorus", "verse", "chorus", "bridge", "chorus"],
    ["intro", "verse", "chorus", "verse", "chorus", "instrumental", "chorus", "outro"],
    ["intro", "chorus", "verse", "chorus", "verse", "chorus", "outro"],
    ["intro", "verse", "verse", "chorus", "verse", "chorus", "outro"],  # a verse twice in a row
    ["verse", "chorus", "verse", "chorus", "instrumental", "verse", "chorus", "outro"],
]
BARS = {"intro": (4, 8), "verse": (8, 16), "chorus": (8, 8), "bridge": (4, 8), "instrumental": (8, 8), "outro": (4, 8)}
MAJOR_LOOPS = [(0, 7, 9, 5), (9, 5, 0, 7), (0, 5, 7, 5), (2, 7, 0, 9), (0, 9, 5, 7), (5, 0, 7, 9), (0, 4, 5, 7),
               (5, 7, 4, 9)]
MINOR_LOOPS = [(0, 8, 3, 10), (0, 5, 7, 0), (0, 10, 8, 7), (5, 0, 8, 7), (0, 3, 10, 5), (8, 10, 0, 0),
               (0, 8, 5, 7), (3, 10, 0, 8)]
MAJOR_QUALITY = {0: "maj", 2: "min", 4: "min", 5: "maj", 7: "maj", 9: "min"}
MINOR_QUALITY = {0: "min", 3: "maj", 5: "min", 7: "maj", 8: "maj", 10: "maj"}
KEYS24 = [f"{tonic} {mode}" for mode in ("major", "minor")
          for tonic in ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]


def structured_song(seed: int):
    """A seeded song with a form from FORMS, its own chord loops per section kind and an
    arrangement per kind (drums, texture, loudness): intro and outro sparse, chorus loudest."""
    import numpy as np

    from mirflow.synth import PITCH_CLASSES, Material, _sharp, make_structured_song

    rng = np.random.default_rng(seed)
    form = FORMS[int(rng.integers(len(FORMS)))]
    key = KEYS24[int(rng.integers(24))]
    tonic, mode = key.split()
    root = PITCH_CLASSES.index(_sharp(tonic))
    loops, quality = (MAJOR_LOOPS, MAJOR_QUALITY) if mode == "major" else (MINOR_LOOPS, MINOR_QUALITY)
    chosen = rng.choice(len(loops), size=3, replace=False)

    def progression(n):
        return tuple(f"{PITCH_CLASSES[(root + d) % 12]}:{quality[d]}" for d in loops[chosen[n]])

    textures = list(rng.permutation(["pad", "stabs", "arp"]))
    materials = {
        "verse": Material(progression(0), drums=str(rng.choice(["light", "full"])), texture=textures[0], gain=0.8),
        "chorus": Material(progression(1), drums=str(rng.choice(["full", "four"])), texture=textures[1], gain=1.1,
                           register=67),
        "bridge": Material(progression(2), drums=str(rng.choice(["none", "light"])), texture=textures[2], gain=0.9),
        "instrumental": Material(progression(1), drums="full", texture="arp", melody=False, gain=1.0),
        "intro": Material(progression(0), drums="none", texture="pad", melody=False, bass=False, gain=0.6),
        "outro": Material(progression(1), drums="none", texture="pad", melody=False, gain=0.6),
    }
    bars = {name: int(rng.choice(choices)) for name, choices in BARS.items()}
    bpm = float(rng.integers(72, 160))
    metre = 3 if rng.random() < 0.2 else 4
    song = make_structured_song([(name, bars[name]) for name in form], materials, bpm=bpm, beats_per_bar=metre,
                                key=key, seed=seed)
    return song, f"form{seed:03d}_{bpm:g}bpm_{metre}-4_{'-'.join(name[0] for name in form)}"


DEV_SEEDS, TEST_SEEDS = range(0, 12), range(500, 512)


def structured(folder: Path, split: str = "test") -> list[Piece]:
    """The songs with sections of one split (``dev`` to tune on, ``test`` to report), as FLAC
    with ``.beats``, ``.lab`` (chords), ``.key`` and ``.sections.lab`` annotations."""
    from mirflow.synth import write_sections

    pieces = []
    for seed in DEV_SEEDS if split == "dev" else TEST_SEEDS:
        song, name = structured_song(seed)
        audio = folder / f"{name}.flac"
        if not audio.exists():
            soundfile.write(audio, song.samples, song.sample_rate)
        truth = write_annotations(song, folder / name) + [write_sections(song, folder / name)]
        pieces.append(Piece(name, audio, truth))
    return pieces
