"""madmom_fast: the memory-light decode gives madmom's own beats."""

from __future__ import annotations

import numpy as np
import pytest

from mirflow.plugins.madmom_fast import Beats
from mirflow.plugins.madmom_fast.viterbi import viterbi
from mirflow.synth import make_song


@pytest.fixture(scope="module")
def activation():
    from madmom.audio.signal import Signal
    from madmom.features.beats import RNNBeatProcessor

    song = make_song(["C:maj", "G:maj"], bpm=140, duration=20.0, seed=5)
    return RNNBeatProcessor()(Signal(song.samples, sample_rate=song.sample_rate))


def test_viterbi_finds_madmoms_path_and_probability(activation):
    from madmom.features.beats import DBNBeatTrackingProcessor

    hmm = DBNBeatTrackingProcessor(fps=100).hmm
    noise = np.clip(np.random.default_rng(1).random(2000) ** 4, 1e-6, 1 - 1e-6).astype(np.float32)
    for observations in (activation, noise):
        expected_path, expected_probability = hmm.viterbi(observations)
        path, probability = viterbi(hmm, observations)
        np.testing.assert_array_equal(path, expected_path)
        assert probability == pytest.approx(expected_probability, rel=1e-12)


def test_beats_decode_equals_madmoms_dbn_beat_tracker(activation):
    from madmom.features.beats import DBNBeatTrackingProcessor

    beats = Beats()
    np.testing.assert_allclose(beats.decode(activation), DBNBeatTrackingProcessor(fps=100)(activation))
    assert len(beats.decode(np.zeros(500, dtype=np.float32))) == 0  # silence: no beats


def test_blocked_features_equal_madmoms_rnn_input_and_activation():
    from madmom.audio.signal import Signal
    from madmom.features.beats import RNNBeatProcessor

    song = make_song(["A:min", "F:maj"], bpm=100, duration=45.0, seed=2)  # > 2 feature blocks
    beats = Beats()
    beats.setup("cpu")
    reference = RNNBeatProcessor()
    expected = reference.processors[0](Signal(song.samples, sample_rate=song.sample_rate))
    features = beats.rnn.features(song.samples, song.sample_rate)
    assert features.shape == expected.shape
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_allclose(beats.rnn.network(features), reference(Signal(song.samples, sample_rate=song.sample_rate)),
                               atol=5e-3)


def test_a_waltz_gets_three_beats_per_bar_at_full_tempo():
    from mir_eval.beat import f_measure

    from mirflow.plugins.madmom_fast import Downbeats

    song = make_song(["C:maj", "G:maj"], bpm=168, beats_per_bar=3, duration=40.0, seed=3)
    downbeats = Downbeats()
    downbeats.setup("cpu")
    times, positions, signature, confidence = downbeats.decode(downbeats.rnn(song.samples, song.sample_rate))
    assert signature == "3/4" and confidence > 0.5
    assert set(positions) == {1, 2, 3}
    assert f_measure(np.array([t for t, _ in song.beats]), times) >= 0.95  # 168 BPM, not 84
    assert f_measure(np.array(song.downbeats), times[positions == 1]) >= 0.95


def test_tempo_curve_follows_a_tempo_change():
    from mirflow.plugins.madmom_fast import Tempo

    song = make_song(["A:min"], bpm=100, duration=60.0, tempo_change=(30.0, 130.0))
    output = Tempo().analyze(None, {"beats": [{"time": t} for t, _ in song.beats]})
    times, curve = np.array(output["tempo_curve"]["times"]), np.array(output["tempo_curve"]["values"])
    assert np.allclose(curve[times < 27], 100, rtol=0.01) and np.allclose(curve[times > 34], 130, rtol=0.01)
    (change,) = output["tempo_changes"]
    assert abs(change["time"] - 30.0) < 2.5 and round(change["from_bpm"]) == 100 and round(change["to_bpm"]) == 130
    assert output["tempo"]["alternative"] in (output["tempo"]["value"] / 2, output["tempo"]["value"] * 2)


def test_steady_tempo_has_no_changes_and_silence_no_tempo():
    from mirflow.plugins.madmom_fast import Tempo

    song = make_song(["A:min"], bpm=120, duration=30.0)
    output = Tempo().analyze(None, {"beats": [{"time": t} for t, _ in song.beats]})
    assert output["tempo"]["value"] == pytest.approx(120) and output["tempo"]["confidence"] == 1.0
    assert output["tempo_changes"] == []
    assert Tempo().analyze(None, {"beats": []})["tempo"]["value"] is None


def test_parameters_out_of_range_are_clear_errors(write_pipeline):
    from mirflow.pipeline import PipelineError, load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

    registry = collect_analyzers(make_plugin_manager())
    with pytest.raises(PipelineError) as caught:
        load_pipeline(write_pipeline("""
            steps:
              - {analyzer: madmom_fast.downbeats, params: {beats_per_bar: [1, 4]}}
              - {analyzer: madmom_fast.beats, params: {min_bpm: 200, max_bpm: 100}}
            timeline: {beats: beats}
        """), registry)
    assert [str(issue) for issue in caught.value.issues] == [
        "pipe.yaml:3:47 steps[0].params: madmom_fast.downbeats: beats_per_bar must be a list of whole numbers "
        "from 2 to 12, got [1, 4]",
        "pipe.yaml:4:43 steps[1].params: madmom_fast.beats: min_bpm (200) must be below max_bpm (100)",
    ]
