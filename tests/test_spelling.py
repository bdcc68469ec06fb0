"""Chord names in the result's timeline are spelled in the song's key."""

from __future__ import annotations

import pytest

from mirflow.spelling import spell, spell_chords
from mirflow.synth import key_progression, make_song


@pytest.mark.parametrize("key, labels, expected", [
    ("Eb major", ["D#:maj", "G#:maj", "A#:7", "C:min7", "N", "X"], ["Eb:maj", "Ab:maj", "Bb:7", "C:min7", "N", "X"]),
    ("E major", ["D#:min", "G#:min", "A#:maj/5"], ["D#:min", "G#:min", "A#:maj/5"]),
    ("D minor", ["A#:maj", "C#:dim", "A:7"], ["Bb:maj", "C#:dim", "A:7"]),  # the raised seventh stays sharp
    ("Bb minor", ["C#:maj", "F#:maj", "A:dim"], ["Db:maj", "Gb:maj", "A:dim"]),
    ("C major", ["A#:maj", "D#:maj", "F#:min7"], ["Bb:maj", "Eb:maj", "F#:min7"]),
    ("F# major", ["Bb:maj", "Db:7"], ["A#:maj", "C#:7"]),
    (None, ["A#:maj"], ["A#:maj"]),
])
def test_roots_are_named_as_the_key_writes_them(key, labels, expected):
    assert [spell(label, key) for label in labels] == expected


def test_a_key_change_respells_the_chords_after_it():
    chords = [{"start": 0.0, "end": 4.0, "label": "D#:maj"}, {"start": 4.0, "end": 8.0, "label": "A#:maj"},
              {"start": 8.0, "end": 12.0, "label": "G#:maj"}, {"start": 12.0, "end": 16.0, "label": "Bb:maj"}]
    keys = [{"start": 0.0, "end": 8.0, "label": "Eb major"}, {"start": 8.0, "end": 16.0, "label": "E major"}]
    assert [c["label"] for c in spell_chords(chords, keys)] == ["Eb:maj", "Bb:maj", "G#:maj", "A#:maj"]
    assert [c["label"] for c in spell_chords(chords, [], "Ab major")] == ["Eb:maj", "Bb:maj", "Ab:maj", "Bb:maj"]


def test_a_song_in_eb_major_reads_eb_ab_bb_and_scores_as_before(tmp_path):
    from songs import run_songs

    from mirflow.evaluate import chord_scores, load_reference
    from mirflow.synth import write_annotations

    song = make_song(key_progression("Eb major"), bpm=100, duration=20.0, key="Eb major", seed=4)
    result = run_songs(tmp_path, {"song": song}, "[madmom_fast.downbeats, {analyzer: chords.cnn_crf, id: chords}, librosa_enhanced.key]",
                       formats=("json", "lab"))["song"]
    assert result["summary"]["key"]["label"] == "Eb major"
    raw = [c["label"] for c in result["steps"]["chords"]["outputs"]["chords"]]
    spelled = [c["label"] for c in result["timeline"]["chords"]]
    assert any(label.startswith(("D#", "G#", "A#")) for label in raw)  # what the network says
    assert {label.split(":")[0] for label in spelled} <= {"Eb", "Ab", "Bb", "C", "F", "G", "D", "N"}
    assert {"Eb:maj", "Ab:maj", "Bb:maj"} & set(spelled)
    assert "Eb:maj" in (tmp_path / "out" / "song.chords.lab").read_text()  # the exports read the timeline
    assert not list((tmp_path / "out").glob("song.chords.chords.lab"))  # and the step is not written twice
    truth = load_reference(write_annotations(song, tmp_path / "truth"))
    def triples(chords):
        return [(c["start"], c["end"], c["label"]) for c in chords]

    as_raw = chord_scores(triples(result["steps"]["chords"]["outputs"]["chords"]), truth.chords)
    assert as_raw["chords_majmin"] > 0.8
    assert chord_scores(triples(result["timeline"]["chords"]), truth.chords) == pytest.approx(as_raw)
