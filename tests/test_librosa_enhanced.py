"""librosa_enhanced: blockwise chroma equals one-pass chroma."""

from __future__ import annotations

import numpy as np

from mirflow.plugins.librosa_enhanced import chroma
from mirflow.synth import make_song


def test_blockwise_chroma_matches_a_single_pass():
    import librosa
    import soxr

    song = make_song(["D:min", "A:maj", "G:min", "C:maj"], bpm=110, duration=130.0, seed=4)  # 2 blocks + a remainder
    samples = soxr.resample(song.samples, song.sample_rate, 22050).astype(np.float32)
    whole = librosa.feature.chroma_cqt(y=samples, sr=22050, hop_length=2048)
    blocked = chroma(samples, 22050)
    assert blocked.shape == whole.shape
    assert np.abs(blocked - whole).max() < 0.05  # block edges: context covers the filters
    np.testing.assert_allclose(blocked.mean(axis=1), whole.mean(axis=1), atol=2e-3)
