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
    features = beats.features(song.samples, song.sample_rate)
    assert features.shape == expected.shape
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_allclose(beats.network(features), reference(Signal(song.samples, sample_rate=song.sample_rate)),
                               atol=5e-3)
