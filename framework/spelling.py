"""Chord names spelled as a musician reads them in the song's key.

Chord recognizers name roots by pitch class (madmom: ``D#:maj``); Harte labels allow both
spellings and mir_eval scores them alike, but a song in Eb major reads ``Eb:maj Ab:maj
Bb:maj``, not ``D#:maj G#:maj A#:maj``. The result's timeline spells each chord in the key
that holds where the chord starts (a key change re-spells what follows it); the steps keep
what their analyzers said.
"""

from __future__ import annotations

SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# C major and A minor have no accidentals of their own: their borrowed chords are usually
# written bII, bIII, bVI, bVII (Db, Eb, Ab, Bb) and the raised fourth as F#.
PLAIN = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch_class(name: str) -> int | None:
    """'Eb' -> 3, 'F#' -> 6, 'Cb' -> 11; None for what is not a note name."""
    if not name or name[0] not in LETTERS or any(c not in "#b" for c in name[1:]):
        return None
    return (LETTERS[name[0]] + name.count("#") - name[1:].count("b")) % 12


def names_for(key: str | None) -> tuple[str, ...] | None:
    """The twelve root names for ``key`` ('Eb major', 'F# minor'); None when it is no key."""
    if not key:
        return None
    tonic, _, mode = key.partition(" ")
    if pitch_class(tonic) is None or mode not in ("major", "minor"):
        return None
    if (tonic, mode) in (("C", "major"), ("A", "minor")):
        return PLAIN
    natural_flat = tonic == "F" if mode == "major" else tonic in ("D", "G", "C", "F")  # F major, D G C F minor
    if not ("b" in tonic[1:] or (len(tonic) == 1 and natural_flat)):
        return SHARPS
    return _minor(FLATS, tonic) if mode == "minor" else FLATS


def _minor(names: tuple[str, ...], tonic: str) -> tuple[str, ...]:
    """A flat minor key's names with its raised seventh sharp: C#:dim in D minor, not Db:dim."""
    leading = (pitch_class(tonic) + 11) % 12
    return names[:leading] + (SHARPS[leading],) + names[leading + 1:]


def spell(label: str, key: str | None) -> str:
    """``label`` (Harte) with its root named as in ``key``; anything else unchanged."""
    names = names_for(key)
    root, colon, rest = str(label).partition(":")
    found = pitch_class(root)
    if names is None or found is None:  # no key, or N / X / not a chord
        return label
    return names[found] + colon + rest


def spell_chords(chords: list[dict], keys: list[dict], key: str | None = None) -> list[dict]:
    """Each chord spelled in the key segment where it starts (``keys``: start, end, label),
    or in ``key`` where no segment covers it."""
    spelled = []
    for chord in chords:
        start = chord.get("start", 0.0)
        held = next((k["label"] for k in keys if k.get("start", 0.0) <= start < k.get("end", float("inf"))), key)
        spelled.append({**chord, "label": spell(chord.get("label", "N"), held)})
    return spelled
