"""librosa's STFT features ported to numpy (mirflow.dsp.librosa_port) equal librosa's to the bit.

The default pipeline's key and sections read them instead of importing librosa (whose
import compiles ~50 numba functions: ~30 s on a machine's first run, ~3 s per worker per
run after). Equal to the bit, not "close": then no accuracy table can move.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile
import soxr

from mirflow.dsp import librosa_port

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


def signals() -> list[tuple[str, np.ndarray]]:
    """The bundled example, real recordings where present, noise, and lengths around the FFT sizes."""
    paths = [ROOT / "examples" / "example.ogg", REALDATA / "gtzan" / "country.00000.wav",
             REALDATA / "ballroom" / "Media-105901.wav"]
    found = []
    for path in paths:
        if path.exists():
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
            found.append((path.name, soxr.resample(samples.mean(axis=1), rate, 22050).astype(np.float32)))
    generator = np.random.default_rng(1)
    found.append(("noise", (0.1 * generator.standard_normal(22050 * 7)).astype(np.float32)))
    found.append(("silence", np.zeros(22050 * 2, dtype=np.float32)))
    for length in (100, 2048, 4097, 8191, 8192, 9000, 12345):
        found.append((f"{length} samples", generator.standard_normal(length).astype(np.float32)))
    return found


SIGNALS = signals()
NAMES = [name for name, _ in SIGNALS]
LONG = [(name, samples) for name, samples in SIGNALS if len(samples) > 8192]  # a tuning estimate needs frames


def same(ours: np.ndarray, theirs: np.ndarray) -> bool:
    return ours.dtype == theirs.dtype and ours.shape == theirs.shape and np.array_equal(ours, theirs)


@pytest.mark.parametrize("name, samples", SIGNALS, ids=NAMES)
def test_stft_is_librosas(name, samples):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns when n_fft exceeds the signal
        for n_fft, hop in ((2048, 512), (4096, 2048), (8192, 2048)):
            theirs = librosa.stft(samples, n_fft=n_fft, hop_length=hop)
            ours = librosa_port.stft(samples, n_fft, hop)
            assert same(ours, theirs), (n_fft, hop)
            assert ours.flags.f_contiguous  # the layout the sums below depend on


@pytest.mark.parametrize("name, samples", LONG, ids=[name for name, _ in LONG])
def test_tuning_estimate_and_peaks_are_librosas(name, samples):
    for ours, theirs in zip(librosa_port.piptrack(samples, 22050), librosa.piptrack(y=samples, sr=22050)):
        assert same(ours, theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns when silence has no peaks (both say 0.0)
        assert librosa_port.estimate_tuning(samples, 22050) == librosa.estimate_tuning(y=samples, sr=22050)


@pytest.mark.parametrize("name, samples", SIGNALS, ids=NAMES)
def test_chroma_and_timbre_are_librosas(name, samples):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tuning in (0.0, 0.13, -0.31):
            theirs = librosa.feature.chroma_stft(y=samples, sr=22050, n_fft=8192, hop_length=2048, tuning=tuning)
            assert same(librosa_port.chroma_stft(samples, 22050, 8192, 2048, tuning), theirs), tuning
        magnitude = np.abs(librosa.stft(samples, n_fft=4096, hop_length=2048))
    assert same(librosa_port.rms(magnitude, 4096), librosa.feature.rms(S=magnitude, frame_length=4096)[0])
    assert same(librosa_port.spectral_centroid(magnitude, 22050, 4096),
                librosa.feature.spectral_centroid(S=magnitude, sr=22050, n_fft=4096)[0])
    mel = librosa.feature.melspectrogram(S=magnitude ** 2, sr=22050, n_mels=40)
    assert same(librosa_port.melspectrogram(magnitude ** 2, 22050, 40), mel)
    decibels = librosa.power_to_db(mel, ref=1.0, top_db=None)
    assert same(librosa_port.power_to_db(mel), decibels)
    assert same(librosa_port.mfcc(decibels, 13), librosa.feature.mfcc(S=decibels, n_mfcc=13))


def test_the_window_is_scipys():
    from scipy.signal import get_window

    for n_fft in (1, 2, 1024, 2048, 4096, 8192, 4097):
        assert same(librosa_port.hann(n_fft), get_window("hann", n_fft, fftbins=True)), n_fft


def test_the_filter_banks_are_librosas():
    for n_fft in (2048, 4096, 8192):
        for tuning in (0.0, 0.27, -0.5):
            assert same(librosa_port.chroma_filters(22050, n_fft, tuning),
                        librosa.filters.chroma(sr=22050, n_fft=n_fft, tuning=tuning))
        for bands in (40, 128):
            assert same(librosa_port.mel_filters(22050, n_fft, bands), librosa.filters.mel(sr=22050, n_fft=n_fft, n_mels=bands))


def test_the_chord_viterbi_is_librosas():
    """Same path as librosa.sequence.viterbi_discriminative: on random posteriors, on sharp
    ones with ties, in float32 and float64, for the template chords' 25 states and others."""
    generator = np.random.default_rng(3)
    for n_states, n_steps, stay in ((25, 1300, 0.97), (25, 1, 0.97), (3, 50, 0.5), (25, 400, 0.9999)):
        transition = librosa_port.transition_loop(n_states, stay)
        assert same(transition, librosa.sequence.transition_loop(n_states, stay))
        for dtype in (np.float64, np.float32):
            for sharpness in (1.0, 12.0, 200.0):
                scores = sharpness * generator.random((n_states, n_steps))
                probability = np.exp(scores - scores.max(axis=0))
                probability[:, ::7] = probability[0, ::7]  # ties: the first best wins in both
                probability = (probability / probability.sum(axis=0, keepdims=True)).astype(dtype)
                ours = librosa_port.viterbi_discriminative(probability, transition)
                assert same(ours, librosa.sequence.viterbi_discriminative(probability, transition))
    frames = np.arange(1301)
    assert same(librosa_port.frames_to_time(frames, 22050, 2048), librosa.frames_to_time(frames, sr=22050, hop_length=2048))


@pytest.mark.parametrize("pipeline, steps", [("default", ("key", "sections")), ("fast", ("chords", "key"))])
def test_the_default_and_fast_pipelines_never_import_librosa(write_clicks, pipeline, steps):
    """Their key, sections and template chords read the ported features and Viterbi, so a
    run compiles nothing of librosa's."""
    song, _ = write_clicks(12.0)
    script = ("import sys, mirflow\n"
              f"result = mirflow.analyze({str(song)!r}, {pipeline!r}, jobs=1)\n"
              f"print([result.data['steps'][s]['status'] == 'ok' for s in {steps!r}])\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'librosa', 'numba'}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    statuses, imported = done.stdout.splitlines()[-2:]
    assert statuses == "[True, True]", done.stdout
    assert "librosa" not in imported  # (numba is there: the beat decode's kernel is mirflow's)
