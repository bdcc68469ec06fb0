"""structure.sections' rules one by one, on made-up features: boundaries on downbeats, at
phrase starts, never shorter than the minimum in bars or seconds, a threshold from the song's
own novelty; one letter for material that repeats, transposed or not; functions."""

from __future__ import annotations

import numpy as np
import pytest

from mirflow.plugins.structure import Sections, find_sections, sounding
from mirflow.plugins.structure.boundaries import adaptive_threshold, local_maxima, min_units, phrase_weights
from mirflow.plugins.structure.functions import guess_functions
from mirflow.plugins.structure.labels import cluster, segment_similarity, split_repeats
from mirflow.plugins.structure.segment import (QUARTERS, diagonal_sums, harmonic_similarity, pick_boundaries,
                                               unit_length)

RATE, HOP = 22050, 2048
CONFIG = {name: param.default for name, param in Sections.params.items()}
# chord loops as pitch-class sets, one chord per bar
LOOPS = {"verse": [(9, 0, 4), (5, 9, 0), (0, 4, 7), (7, 11, 2)], "chorus": [(5, 9, 0), (7, 11, 2), (4, 7, 11), (9, 0, 4)],
         "bridge": [(2, 5, 9), (4, 8, 11), (2, 5, 9), (4, 8, 11)], "intro": [(0, 4, 7), (0, 4, 7), (5, 9, 0), (5, 9, 0)]}
LOUD = {"verse": -24.0, "chorus": -16.0, "bridge": -20.0, "intro": -30.0}


def features(form, bar_seconds: float, beats_per_bar: int = 4, shift_last: int = 0):
    """Frame features (chroma, MFCCs, loudness) of a song that plays ``form`` [(part, bars)],
    its beats with positions and the truth [(start, end, part)]; ``shift_last`` transposes the
    last section. Each part has its own chords, timbre and loudness; a drum-like pulse on the beats."""
    rng = np.random.default_rng(0)
    timbres = {name: rng.normal(0, 3, 12) for name in LOOPS}
    total = sum(bars for _, bars in form) * bar_seconds + 1.0
    times = np.arange(int(total * RATE / HOP)) * HOP / RATE
    values = np.zeros((len(times), 25))
    truth, start = [], 0.0
    for n, (part, bars) in enumerate(form):
        end = start + bars * bar_seconds
        inside = (times >= start) & (times < end)
        bar = ((times[inside] - start) // bar_seconds).astype(int)
        for k, chord in enumerate(LOOPS[part]):
            rows = np.flatnonzero(inside)[bar % 4 == k]
            for pc in chord:
                values[rows, (pc + (shift_last if n == len(form) - 1 else 0)) % 12] = 1.0
        values[inside, 12:24] = timbres[part] + rng.normal(0, 0.3, (inside.sum(), 12))
        pulse = ((times[inside] - start) % (bar_seconds / beats_per_bar)) < 0.05
        values[inside, 24] = LOUD[part] + 4 * pulse
        truth.append((start, end, part))
        start = end
    values[times >= start, 24] = -100.0
    beats = [{"time": b * bar_seconds / beats_per_bar, "position": b % beats_per_bar + 1}
             for b in range(int(start / bar_seconds * beats_per_bar))]
    return times, values, total, beats, truth


def starts(sections):
    return [s["start"] for s in sections]


def test_boundaries_fall_on_the_downbeats_where_the_parts_change():
    form = [("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 8), ("chorus", 8)]
    times, values, total, beats, truth = features(form, bar_seconds=2.0)
    sections = find_sections(times, values, total, CONFIG, beats=beats)
    downbeats = {b["time"] for b in beats if b["position"] == 1}
    assert all(s in downbeats for s in starts(sections)[1:])
    assert starts(sections) == pytest.approx([t[0] for t in truth])
    assert [s["label"] for s in sections] == ["A", "B", "C", "B", "C", "D", "C"]


def test_a_fast_three_four_song_is_not_cut_every_four_bars():
    # 168 BPM in 3/4: bars of 1.07 s; the parts last 16 bars (17 s)
    bar = 3 * 60 / 168
    form = [("verse", 16), ("chorus", 16), ("verse", 16), ("chorus", 16), ("bridge", 16), ("chorus", 16)]
    times, values, total, beats, truth = features(form, bar_seconds=bar, beats_per_bar=3)
    assert min_units(np.arange(0, 60) * bar, 1, CONFIG["min_bars"], CONFIG["min_seconds"]) == 8
    sections = find_sections(times, values, total, CONFIG, beats=beats)
    lengths = [s["end"] - s["start"] for s in sections]
    assert min(lengths) >= 8.0 and len(sections) == len(truth)
    assert starts(sections) == pytest.approx([t[0] for t in truth])


def test_minimum_length_is_the_longer_of_bars_and_seconds():
    slow = np.arange(40) * 3.0  # 3 s bars: 4 bars (12 s) beat 8 s
    fast = np.arange(40) * 0.5  # 0.5 s beats, 4 per bar: 8 s is 16 units
    assert min_units(slow, 1, 4, 8.0) == 4
    assert min_units(fast, 4, 4, 8.0) == 16
    assert min_units(fast, 4, 4, 0.0) == 16 and min_units(fast, 4, 1, 0.0) == 4


def test_threshold_follows_the_songs_own_novelty():
    rng = np.random.default_rng(1)
    quiet = 0.1 + 0.05 * rng.random(101)  # small wiggles everywhere ...
    quiet[[20, 50, 80]] = [0.9, 1.0, 0.8]  # ... and three changes
    threshold = adaptive_threshold(quiet, CONFIG["spread"], CONFIG["threshold"])
    assert threshold == CONFIG["threshold"]  # the floor: the wiggles' median is below it
    assert pick_boundaries(quiet, 8, threshold) == [20, 50, 80]
    busy = quiet + 0.5  # a song whose every bar moves: the threshold rises with its novelty
    raised = adaptive_threshold(busy, CONFIG["spread"], CONFIG["threshold"])
    assert 0.55 < raised < 0.65 and raised > CONFIG["threshold"]
    assert adaptive_threshold(busy, 0.0, 0.0) == pytest.approx(np.median(busy[local_maxima(busy)]))


def test_the_phrase_grid_follows_an_odd_length_intro():
    novelty = np.zeros(60)
    novelty[[5, 13, 21, 29, 37, 45]] = [1.0, 0.8, 0.9, 0.7, 0.9, 0.8]  # a 5-bar intro, then 8-bar parts
    novelty[[10, 26]] = 0.85  # off-grid wiggles
    weights = phrase_weights(novelty, per_bar=1)
    assert weights[5] == weights[13] == weights[21] == max(weights)
    assert weights[10] < weights[13] and weights[26] < weights[29]


def sequence(form, shift_last=0):
    """units x QUARTERS x 12 chroma and the segments of a form of 8-bar parts."""
    rows, segments = [], []
    for n, part in enumerate(form):
        segments.append((len(rows), len(rows) + 8))
        for bar in range(8):
            vector = np.zeros(12)
            vector[[(pc + (shift_last if n == len(form) - 1 else 0)) % 12 for pc in LOOPS[part][bar % 4]]] = 1
            rows.append(np.tile(vector, (QUARTERS, 1)))
    return unit_length(np.array(rows)), segments


def test_a_repeated_chorus_gets_one_letter_and_a_transposed_last_chorus_keeps_it():
    form = ["verse", "chorus", "verse", "chorus", "bridge", "chorus"]
    for shift in (0, 1, 2):
        chroma, segments = sequence(form, shift_last=shift)
        harmonic = harmonic_similarity(chroma)
        texture = np.ones((len(chroma), len(chroma)))  # one arrangement throughout: chords decide
        similar = segment_similarity(segments, diagonal_sums(harmonic), chroma, texture, 1.0)
        assert cluster(similar, CONFIG["same_material"]) == [0, 1, 0, 1, 2, 1], shift


def test_the_clustering_is_scipys_average_linkage_ties_included():
    """``cluster`` computes SciPy's average linkage cut at a height itself (importing
    scipy.cluster cost the end of every run ~0.13 s): the same clusters on random similarity
    matrices, and on rounded ones whose many equal distances make the merge order matter."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    def scipys(similar, threshold):
        distance = np.clip(1.0 - similar, 0.0, None)
        np.fill_diagonal(distance, 0.0)
        owner = fcluster(linkage(squareform(distance, checks=False), method="average"), t=1.0 - threshold,
                         criterion="distance")
        order: dict[int, int] = {}
        return [order.setdefault(int(owner[i]), len(order)) for i in range(len(similar))]

    rng = np.random.default_rng(7)
    outcomes = set()
    for trial in range(400):
        n = int(rng.integers(2, 40))
        similar = np.corrcoef(rng.random((n, int(rng.integers(2, 12)))))
        if trial % 2:
            similar = np.round(similar, 1)  # ties
        for threshold in (0.3, 0.5, 0.62, 0.8):
            found = cluster(similar, threshold)
            assert found == scipys(similar, threshold), (trial, threshold)
            outcomes.add("one" if len(set(found)) == 1 else "all apart" if len(set(found)) == n else "between")
    assert outcomes == {"one", "all apart", "between"}  # the cut fell everywhere
    assert cluster(np.ones((1, 1)), 0.62) == [0]


def test_a_bridge_in_another_key_does_not_take_the_verses_letter():
    chroma, segments = sequence(["verse", "chorus", "bridge"])
    texture = np.ones((len(chroma), len(chroma)))
    similar = segment_similarity(segments, diagonal_sums(harmonic_similarity(chroma)), chroma, texture, 1.0)
    assert len(set(cluster(similar, CONFIG["same_material"]))) == 3


def test_choruses_back_to_back_are_cut_back_into_two():
    novelty = np.zeros(57)
    novelty[32] = 1.0  # a drum fill and a crash where the second chorus starts
    truth = [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40), (40, 48), (48, 56)]  # V C V C C B C
    found = [(0, 8), (8, 16), (16, 24), (24, 30), (30, 40), (40, 48), (48, 56)]  # a cut two bars early
    assert split_repeats(found, [0, 1, 0, 1, 1, 2, 1], novelty, shortest=4, reach=4) == (truth, [0, 1, 0, 1, 1, 2, 1])
    # a run that is not a whole multiple of its letter's shortest run stays one section
    assert split_repeats(truth[:4], [0, 1, 1, 1], novelty, 4, 2) == ([(0, 8), (8, 32)], [0, 1])


def test_a_short_ending_and_intro_joined_to_a_run_become_sections_of_their_own():
    # I(1) V C V C C C E(1): the minimum section kept the 1-bar intro and ending from being cut, so
    # they were joined to the first verse and to the three last choruses
    found = [(0, 9), (9, 17), (17, 25), (25, 33), (33, 58)]
    novelty = np.zeros(59)
    novelty[[1, 9, 17, 25, 33, 41, 49, 57]] = [0.8, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.9]  # fills; the stop hit
    segments, labels = split_repeats(found, [0, 1, 0, 1, 1], novelty, shortest=4, reach=1,
                                     end_units=2, end_evidence=0.6)
    assert segments == [(0, 1), (1, 9), (9, 17), (17, 25), (25, 33), (33, 41), (41, 49), (49, 57), (57, 58)]
    assert labels == [0, 1, 2, 1, 2, 2, 2, 2, 3]  # intro and ending: letters of their own
    # no clear change at the ending's edge: it stays with the last chorus
    weak = novelty.copy()
    weak[57] = 0.2
    assert split_repeats(found, [0, 1, 0, 1, 1], weak, 4, 1, end_units=2, end_evidence=0.6)[0][-1] == (49, 58)
    # a silent last unit (after the last bar, where the tracker still put a downbeat) is no ending
    sounding = np.ones(58, dtype=bool)
    sounding[57] = False
    assert split_repeats(found, [0, 1, 0, 1, 1], novelty, 4, 1, end_units=2, end_evidence=0.6,
                         sounding=sounding)[0][-1] == (49, 58)


def test_an_intro_joined_to_material_heard_once_is_measured_against_the_songs_section_length():
    # I(1) V'(8, drumless: a letter of its own) C V C: the first run is 9 units, the song's 8
    found = [(0, 9), (9, 17), (17, 25), (25, 33)]
    novelty = np.zeros(34)
    novelty[[1, 9, 17, 25]] = 1.0
    segments, labels = split_repeats(found, [0, 1, 2, 1], novelty, shortest=4, reach=1, end_units=2,
                                     end_evidence=0.5)
    assert segments[:2] == [(0, 1), (1, 9)] and labels[:2] == [0, 1]
    # the song's silence is no ending; a quiet bar is
    assert list(sounding(np.array([-30.0, -31.0, -55.0, -100.0]))) == [True, True, True, False]


def test_a_long_first_verse_is_not_cut_in_two_but_a_doubled_chorus_later_is():
    # V(16) C(8) V(8) C(8) C(8): the first verse is twice the second; choruses back to back at the end
    found = [(0, 16), (16, 24), (24, 32), (32, 48)]
    novelty = np.zeros(49)
    novelty[[8, 40]] = 0.5
    segments, labels = split_repeats(found, [0, 1, 0, 1], novelty, shortest=4, reach=1)
    assert segments == [(0, 16), (16, 24), (24, 32), (32, 40), (40, 48)]
    assert labels == [0, 1, 0, 1, 1]


def test_functions_of_a_medley_and_of_a_song_with_an_instrumental_break():
    #        intro verse chorus verse chorus bridge chorus outro
    labels = [0, 1, 2, 1, 2, 3, 2, 4]
    loudness = [-30, -25, -20, -25, -20, -24, -20, -30]
    assert guess_functions(labels, loudness) == ["intro", "verse", "chorus", "verse", "chorus", "bridge",
                                                 "chorus", "outro"]
    # a medley: several verses, each returning, one chorus between them
    labels = [0, 1, 2, 3, 2, 4, 2, 1, 2, 3, 2, 4, 2, 5]
    loudness = [-30] + [-25 if x != 2 else -18 for x in labels[1:-1]] + [-30]
    functions = guess_functions(labels, loudness)
    assert functions[0] == "intro" and functions[-1] == "outro"
    assert [f for f, x in zip(functions, labels) if x == 2] == ["chorus"] * 6
    assert all(f == "verse" for f, x in zip(functions, labels) if x in (1, 3, 4))
    # an instrumental break over the chorus chords, heard twice, is not a verse; a verse that
    # shares its chords with the intro stays a verse
    labels = [0, 1, 2, 3, 2, 1, 2, 3, 2, 4]
    loudness = [-30, -25, -18, -20, -18, -25, -18, -20, -18, -30]
    borrowed = [{1}, {0}, {3}, {2}, {3}, {0}, {3}, {2}, {3}, set()]
    assert guess_functions(labels, loudness, borrowed) == ["intro", "verse", "chorus", "instrumental", "chorus",
                                                           "verse", "chorus", "instrumental", "chorus", "outro"]


def test_an_intro_or_outro_may_be_shorter_than_the_body_sections():
    novelty = np.zeros(41)
    novelty[[3, 12, 20, 37]] = [1.0, 0.9, 0.8, 1.0]
    assert pick_boundaries(novelty, min_units=8, threshold=0.5) == [12, 20]
    assert pick_boundaries(novelty, min_units=8, threshold=0.5, end_units=3) == [3, 12, 20, 37]


def test_the_benchmark_songs_truth_tiles_each_song_and_starts_sections_on_downbeats(tmp_path):
    """benchmarks/gm_forms and band_corpus write the truth the table is scored on (MIDI only here)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import band_corpus
    import gm_forms

    from mirflow.plugins.structure.functions import FUNCTIONS

    kinds = set()
    for seed in gm_forms.SPLITS["dev"]:
        song = gm_forms.plan(seed)
        gm_forms.write_midi(song, tmp_path / "song.mid")
        truth = song.truth
        assert truth[0][0] == 0.0 and truth[-1][1] == song.duration
        assert all(a[1] == b[0] for a, b in zip(truth, truth[1:]))
        downbeats = {round(t, 6) for t, position in song.beats if position == 1}
        assert all(round(start, 6) in downbeats for start, _, _ in truth)
        assert {gm_forms.function_of(name) for _, _, name in truth} <= set(FUNCTIONS)
        kinds.add(song.name.split("_")[1])
        if "medley" in song.name:
            assert song.duration > 300 and sum(name == "chorus" for _, _, name in truth) >= 8
    assert {"waltz", "medley", "odd", "halftime", "nodrums"} <= kinds
    song = band_corpus.plan(band_corpus.SEEDS[0])
    truth, duration = band_corpus.write_midi(song, tmp_path / "band.mid")
    assert truth[0][0] == 0.0 and truth[-1][1] == duration and 70 < duration < 130
    assert [name for _, _, name in truth][:3] == ["intro", "verse", "chorus"] and truth[-1][2] == "outro"
