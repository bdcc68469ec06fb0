"""mirflow.harmony and the harmony-weighted key: chord labels, cadences, the relative key and the
IV/V neighbours told apart, confidence from the margin, and a synthesized minor song end to end."""

from __future__ import annotations

import numpy as np
import pytest

from mirflow import harmony
from mirflow.harmony import chord_evidence, key_index, key_label, margin_confidence
from mirflow.synth import make_song
from songs import run_songs


def timeline(labels: list[str], seconds: float = 2.0) -> list[dict]:
    return [{"start": seconds * n, "end": seconds * (n + 1), "label": label} for n, label in enumerate(labels)]


def ranked(chords: list[dict]) -> list[str]:
    evidence = harmony.song_evidence(chords)
    return [key_label(int(i)) for i in np.argsort(-evidence)]


def test_labels_keys_and_pitch_classes():
    assert harmony.chord_root("Bb:min7") == (10, True) and harmony.chord_root("N") is None
    assert harmony.chord_root("E#:maj") == (5, False)
    assert list(np.nonzero(harmony.pitch_classes("G:7"))[0]) == [2, 5, 7, 11]
    assert [key_index(key_label(k)) for k in range(24)] == list(range(24))
    assert key_index("Gb major") == key_index("F# major") == 6
    with pytest.raises(ValueError, match="not a key"):
        key_index("H dorian")


def test_i_iv_V_i_in_a_minor_scores_a_minor_above_c_major():
    chords = timeline(["A:min", "D:min", "E:maj", "A:min"] * 4)
    evidence = harmony.song_evidence(chords)
    assert ranked(chords)[0] == "A minor"
    assert evidence[key_index("A minor")] > evidence[key_index("C major")] + 0.3


def test_the_major_dominant_resolving_is_a_cadence_for_the_minor_key():
    (arrival, vector), = harmony.cadences(timeline(["E:7", "A:min"]))
    assert arrival == 2.0 and key_label(int(np.argmax(vector))) == "A minor"
    (_, plagal), = harmony.cadences(timeline(["F:maj", "C:maj"]))
    assert key_label(int(np.argmax(plagal))) == "C major" and plagal.max() < harmony.CADENCE
    assert harmony.cadences(timeline(["E:min", "A:min"])) == []  # a minor v is no dominant


def test_a_relative_major_passage_does_not_turn_a_minor_song_major():
    minor = ["C:min", "F:min", "G:7", "C:min"]
    chords = timeline(minor * 3 + ["D#:maj", "G#:maj", "A#:maj", "D#:maj"] + minor * 2 + ["G:maj", "C:min"])
    assert ranked(chords)[0] == "C minor"
    assert harmony.song_evidence(chords)[key_index("C minor")] > harmony.song_evidence(chords)[key_index("Eb major")]


def test_iv_and_v_neighbours_and_a_song_that_opens_on_vi():
    chords = timeline(["A:min", "F:maj", "C:maj", "G:maj"] * 4 + ["G:maj", "C:maj"])  # vi IV I V ... V I
    evidence = harmony.song_evidence(chords)
    assert ranked(chords)[0] == "C major"
    for rival in ("G major", "F major", "A minor"):  # the V and IV neighbours, the relative minor
        assert evidence[key_index("C major")] > evidence[key_index(rival)] + 0.15, rival


def test_a_picardy_ending_leaves_the_mode_to_the_rest_of_the_song():
    chords = timeline(["D:min", "G:min", "A:7", "D:min"] * 3 + ["A:maj", "D:maj"])
    assert ranked(chords)[0] == "D minor"


def test_confidence_falls_with_the_margin():
    assert margin_confidence(np.array([0.5, 0.5, 0.1]), 0.1) == 0.0
    values = [margin_confidence(np.array([0.5 + m, 0.5, 0.0]), 0.1) for m in (0.01, 0.05, 0.2)]
    assert values == sorted(values) and values[0] < 0.2 and values[-1] > 0.8


def test_the_key_analyzer_weighs_the_chords_and_its_confidence_is_the_margin():
    """Chroma that leans to the relative major, chords that say minor: the chords decide."""
    from mirflow.plugins.librosa_enhanced import Key
    from mirflow.plugins.librosa_enhanced.key import decide

    times = np.arange(0.0, 32.0)
    scores = np.zeros((len(times), 25))
    scores[:, key_index("C major")] = 0.70
    scores[:, key_index("A minor")] = 0.66
    chords = timeline(["A:min", "D:min", "E:maj", "A:min"] * 4)
    analyzer = Key()
    chroma_only = decide(analyzer, times, scores, None, 32.0)
    with_chords = decide(analyzer, times, scores, chords, 32.0)
    assert chroma_only["label"] == "C major" and with_chords["label"] == "A minor"
    assert with_chords["confidence"] > chroma_only["confidence"]  # the chords widen the margin
    close = scores.copy()
    close[:, key_index("A minor")] = 0.695
    assert 0 < decide(analyzer, times, close, None, 32.0)["confidence"] < chroma_only["confidence"]
    assert decide(Key(chord_weight=0.0), times, scores, chords, 32.0)["label"] == "C major"


def test_a_synthesized_minor_song_end_to_end(tmp_path):
    """Template chords feed the key at the merge; the key and its timeline say G minor."""
    progression = ["G:min", "C:min", "D:maj", "G:min", "D#:maj", "C:min", "D:maj", "G:min"]
    song = make_song(progression, bpm=96, duration=24.0, key="G minor", seed=5, melody=True)
    result = run_songs(tmp_path, {"song": song},
                       "[{analyzer: chords.templates, id: chords}, librosa_enhanced.key]", "off")["song"]
    key = result["summary"]["key"]
    assert key["label"] == "G minor" and 0.0 < key["confidence"] <= 1.0
    assert [k["label"] for k in result["timeline"]["keys"]] == ["G minor"]
