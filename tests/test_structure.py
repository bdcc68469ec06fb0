"""structure.sections: the form of a synthesized song, bar-accurate, the same chunked or not."""

from __future__ import annotations

import csv

import jams
import mir_eval
import numpy as np
import pytest

from mirflow.evaluate import section_scores
from mirflow.plugins.structure.functions import guess_functions
from mirflow.plugins.structure.segment import letter, pick_boundaries, unit_grid
from songs import run_songs, structured_song

STEPS = "[madmom_fast.downbeats, structure.sections]"


def run(tmp_path, audio: dict, chunking: str = "off", steps: str = STEPS, formats=("json",)) -> dict:
    return run_songs(tmp_path, audio, steps, chunking, formats)


@pytest.fixture(scope="module")
def song():
    """A B A B C B (songs.structured_song): verse, chorus, verse, chorus, bridge, chorus."""
    return structured_song()


@pytest.fixture
def results(analyzed_song):
    """The song through the default pipeline, whole (every format written) and in 30 s chunks:
    the session's shared analysis."""
    return analyzed_song.whole, analyzed_song.chunked


def test_an_a_b_a_b_c_b_song_has_its_form_with_boundaries_on_the_right_downbeats(song, results):
    whole, _ = results
    sections = whole["timeline"]["sections"]
    assert [s["label"] for s in sections] == ["A", "B", "A", "B", "C", "B"]
    assert whole["summary"]["form"]["label"] == "A B A B C B" and whole["summary"]["form"]["sections"] == 6
    truth = [start for start, _, _ in song.extra["sections"][1:]]
    found = [s["start"] for s in sections[1:]]
    assert np.abs(np.array(found) - truth).max() < 0.07  # on the downbeat (madmom's, 10 ms frames)
    assert [s["start_bar"] for s in sections] == [1, 9, 17, 25, 33, 41]
    assert sections[0]["start"] == 0.0 and sections[-1]["end"] == pytest.approx(whole["source"]["duration"])
    assert all(a["end"] == b["start"] for a, b in zip(sections, sections[1:]))  # tiles the track
    assert [s["function"] for s in sections] == ["verse", "chorus", "verse", "chorus", "bridge", "chorus"]
    downbeats = set(whole["timeline"]["downbeats"])
    assert all(s["start"] in downbeats for s in sections[1:])


def test_chunked_sections_equal_the_whole_file_ones(results):
    whole, chunked = results
    assert len(chunked["chunks"]) > 3
    def decisions(result):  # everything but the confidence, a novelty value that may move in the 3rd decimal,
        # and the times: on downbeats, which lie between frames and may move by a few milliseconds
        return [{k: v for k, v in s.items() if k not in ("confidence", "start", "end")}
                for s in result["timeline"]["sections"]]

    def times(result):
        return [t for s in result["timeline"]["sections"] for t in (s["start"], s["end"])]

    assert decisions(chunked) == decisions(whole)
    assert times(chunked) == pytest.approx(times(whole), abs=0.005)
    assert [s["confidence"] for s in chunked["timeline"]["sections"]] == pytest.approx(
        [s["confidence"] for s in whole["timeline"]["sections"]], abs=0.02)


def test_exports_read_back_with_mir_eval_jams_and_csv(analyzed_song):
    whole, out = analyzed_song.whole, analyzed_song.whole_dir
    sections = whole["timeline"]["sections"]
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / "song.sections.lab"))
    assert labels == [s["label"] for s in sections]
    np.testing.assert_allclose(intervals, [[s["start"], s["end"]] for s in sections], atol=1e-6)
    document = jams.load(str(out / "song.jams"))
    (annotation,) = document.search(namespace="segment_open")
    assert [o.value for o in annotation.data] == labels
    assert annotation.sandbox["functions"] == [s["function"] for s in sections]
    with open(out / "song.sections.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["function"] for r in rows] == [s["function"] for s in sections]
    assert [int(r["start_bar"]) for r in rows] == [s["start_bar"] for s in sections]


def test_silence_has_no_sections_and_a_short_clip_has_one(tmp_path, song):
    clip = song.samples[: 20 * 44100]
    found = run(tmp_path, {"silence": np.zeros(40 * 44100, dtype=np.float32), "clip": clip})
    assert found["silence"]["timeline"]["sections"] == [] and "form" not in found["silence"]["summary"]
    assert found["silence"]["steps"]["sections"]["status"] == "ok"
    (only,) = found["clip"]["timeline"]["sections"]
    assert (only["start"], only["end"], only["label"]) == (0.0, pytest.approx(20.0), "A")


def test_without_beats_sections_fall_on_a_half_second_grid(tmp_path, song):
    found = run(tmp_path, {"song": song.samples}, steps="[structure.sections]")["song"]
    sections = found["timeline"]["sections"]
    assert len(sections) >= 4 and all(s["start_bar"] is None for s in sections)
    assert all(float(s["start"] * 2).is_integer() for s in sections)
    truth = [start for start, _, _ in song.extra["sections"][1:]]
    assert section_scores([(s["start"], s["end"], s["label"]) for s in sections],
                          song.extra["sections"])["sections_f3"] >= 0.8, (sections, truth)


def test_grid_bars_from_positions_beats_without_them_and_frames():
    beats = [{"time": 0.5 + n * 0.5, "position": n % 4 + 1} for n in range(32)]
    bars = unit_grid(beats, 20.0)
    assert bars.kind == "bar" and bars.edges[0] == 0.5 and bars.bars[:3] == [1, 2, 3] and len(bars.edges) == 9
    plain = unit_grid([{"time": b["time"]} for b in beats], 20.0)
    assert plain.kind == "beat" and len(plain.edges) == 33 and plain.per_bar == 4
    frames = unit_grid(None, 20.0)
    assert frames.kind == "frame" and frames.edges[1] == 0.5 and frames.edges[-1] == 20.0


def test_peaks_keep_their_distance_from_each_other_and_the_ends():
    novelty = np.zeros(41)
    novelty[[2, 8, 10, 20, 38]] = [1.0, 0.9, 0.5, 0.7, 1.0]
    assert pick_boundaries(novelty, min_units=4, threshold=0.4) == [8, 20]


def test_functions_follow_repetition_loudness_and_position():
    #        intro verse chorus verse chorus bridge chorus outro
    labels = [0, 1, 2, 1, 2, 3, 2, 4]
    loudness = [-30, -25, -20, -25, -20, -24, -20, -30]
    assert guess_functions(labels, loudness) == ["intro", "verse", "chorus", "verse", "chorus", "bridge",
                                                 "chorus", "outro"]
    borrowed = [False] * 5 + [True] + [False] * 2
    assert guess_functions(labels, loudness, borrowed)[5] == "instrumental"
    assert guess_functions([0, 1, 2], [-20, -20, -20]) == ["intro", None, "outro"]  # nothing returns
    assert [letter(n) for n in (0, 1, 25, 26)] == ["A", "B", "Z", "AA"]


def test_section_scores_match_mir_eval_on_known_intervals():
    reference = [(0.0, 10.0, "verse"), (10.0, 20.0, "chorus"), (20.0, 30.0, "verse")]
    exact = section_scores([(0.0, 10.0, "A"), (10.0, 20.0, "B"), (20.0, 30.0, "A")], reference)
    assert exact == {"sections_f05": 1.0, "sections_f3": 1.0, "sections_pairwise": 1.0, "sections_nce": 1.0}
    late = section_scores([(0.0, 12.0, "A"), (12.0, 20.0, "B"), (20.0, 30.0, "A")], reference)
    assert late["sections_f05"] == 0.5 and late["sections_f3"] == 1.0 and late["sections_pairwise"] < 1.0
    assert section_scores([], reference)["sections_f3"] == 0.0
