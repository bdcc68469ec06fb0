"""madmom_fast.beats and madmom_fast.downbeats: madmom's beat and downbeat networks per chunk,
one DBN decode over the whole track's stitched activations (the template both share:
:meth:`RNNTracker.decode_track`), and for the downbeats the metre stage (:mod:`.metre`).

The decode's forward pass is folded chunk by chunk as the chunks come in
(:meth:`RNNTracker.fold`, mirflow's streaming merge): the merge after the last chunk then
backtraces instead of decoding the whole track, with the same path and log probability.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve
from mirflow.madmom_backend import INSTALL_HINT
from mirflow.plugins._onnx import cuda_problem, network_device, providers_for, quiet_onnxruntime

from .metre import CHROMA_FPS, bar_phase
from .networks import FPS, BlockedRNN, lay, pitch_classes, stitch
from .peaks import beat_peaks, double_tempo_floor, heard, peak_times

SILENT_ACTIVATION = 0.05  # below this everywhere there is no beat to report
PARALLEL_DECODE_BYTES = 64 * 2**20  # back-pointers of all bar lengths: ~11 minutes of 3/4 + 4/4
# A fold lays the activation of a chunk and its neighbours only where those three chunks settle
# it: at least this far (seconds) from where the next-but-one chunks' crossfades begin and end.
FOLD_MARGIN = 1.0


class FoldCarry(NamedTuple):
    """What a fold of the decode carries to the next: the grid frames folded so far, the
    slowest tempo of the models, and each model's Viterbi scores after the last frame."""

    frame: int
    min_bpm: float
    scores: tuple


class FoldBlock(NamedTuple):
    """What a fold keeps for the merge: the grid frames it decoded (``first`` up to ``stop``),
    the checksum of their activation (:func:`frames_checksum`: the merge uses the folds only if
    its own activation there has the same), and each model's back-pointers of those frames,
    packed (:func:`.viterbi.pack`)."""

    first: int
    stop: int
    checksum: int
    backs: tuple


def frames_checksum(activation: np.ndarray) -> int:
    """A checksum of activation frames, to the bit (CRC-32 of their bytes)."""
    import zlib

    return zlib.crc32(np.ascontiguousarray(activation).tobytes())


class Decoded(NamedTuple):
    """A decode of the whole track: beat frames (from :meth:`RNNTracker.track`) or times in
    seconds (from :meth:`RNNTracker.decode_track`); for a bar tracker each beat's position in
    the bar, the time signature and its confidence."""

    beats: np.ndarray
    positions: np.ndarray | None = None
    signature: str | None = None
    confidence: float = 0.0


class RNNTracker(mirflow.Analyzer):
    """What the beat and downbeat trackers share: DBN parameters, per-chunk activations of
    one of madmom's RNNs (zeros on silence), and the library they need.

    ``resource = "auto"``: where onnxruntime can use an NVIDIA GPU (onnxruntime-gpu and a
    driver), the networks run in the GPU lane (features prepared by the CPU workers, the
    networks on CUDA, chunks batched across files); elsewhere the whole chunk runs in the CPU
    lane, as before. Both lanes run the same two halves (:meth:`prepare`, :meth:`finish`)."""

    resource = "auto"
    sample_rate = 44100
    params = {
        "min_bpm": mirflow.Param(55.0, float, min=20, max=300, help="slowest tempo the DBN considers"),
        "max_bpm": mirflow.Param(215.0, float, min=20, max=400, help="fastest tempo the DBN considers"),
        "transition_lambda": mirflow.Param(100.0, float, min=1, max=1000, help="DBN tempo-change penalty"),
        # Same result either way. A short track's whole-track decode is short (~0.3 s at 5
        # minutes), while folds cost more CPU in all (each stitches three chunks and packs its
        # back-pointers, and every worker that folds loads the kernel): on two busy cores they
        # made a 5-minute song slower.
        "fold_min_duration": mirflow.Param(600.0, float, min=0, help="tracks at least this long (seconds) run "
                                           "the decode chunk by chunk as chunks come in; shorter ones decode "
                                           "whole at the merge"),
    }
    chunk_outputs = {"activation": mirflow.CURVE}
    libraries = ("madmom",)
    install_hint = INSTALL_HINT
    code_licence = "BSD-2-Clause (madmom)"
    model_licence = "CC BY-NC-SA 4.0 (madmom's models)"
    columns = 1  # activation columns the network gives
    tracks_bars = False  # whether the DBN tracks bars (beats with their positions)
    level_normalized = True  # log(1 + x) spectrograms: a quieter copy of a song must give the same beats
    folds = True  # the decode's forward pass runs chunk by chunk as the chunks come in

    def __init__(self, **config):
        super().__init__(**config)
        self.processors: dict[float, object] = {}  # slowest tempo -> madmom's DBN processor (built once)
        self.layouts: dict[float, list] = {}  # slowest tempo -> its HMMs laid out for the kernel (built once)

    @classmethod
    def warm(cls):
        """madmom (~0.4 s, most of it SciPy's ndimage) and the LSTM kernel (built here on a
        machine's first run)."""
        import madmom.features.beats  # noqa: F401
        import madmom.features.downbeats  # noqa: F401

        from .ensemble import kernel

        kernel()

    @classmethod
    def check_params(cls, values):
        if values["min_bpm"] >= values["max_bpm"]:
            raise mirflow.ParamError(f"min_bpm ({values['min_bpm']:g}) must be below max_bpm ({values['max_bpm']:g})")

    def make_network(self):
        """The madmom RNN processor whose activations this tracker decodes."""
        raise NotImplementedError

    def track(self, activation: np.ndarray, min_bpm: float, folded=None) -> Decoded:
        """One DBN pass over the whole track with tempi from ``min_bpm`` up: beat frames (and,
        for a bar tracker, their positions, the time signature and its confidence); from the
        folds' forward passes when ``folded`` (mirflow.Folded) covers this very pass."""
        raise NotImplementedError

    def make_dbn(self, min_bpm: float):
        """madmom's DBN processor for tempi from ``min_bpm`` up."""
        raise NotImplementedError

    def dbn(self, min_bpm: float):
        """:meth:`make_dbn`, built once per worker (every fold of a track needs the same one)."""
        if min_bpm not in self.processors:
            self.processors[min_bpm] = self.make_dbn(min_bpm)
        return self.processors[min_bpm]

    @staticmethod
    def hmms(dbn) -> list:
        """The HMMs a DBN processor decodes (one per bar length for the downbeats)."""
        return [dbn.hmm]

    def chain_models(self, min_bpm: float) -> list:
        """:func:`.viterbi.chain_model` of each of :meth:`hmms`, built once per worker (every fold
        of a 60-minute track laid the same HMMs out again: ~0.25 s of CPU per track)."""
        from .viterbi import chain_model

        if min_bpm not in self.layouts:
            self.layouts[min_bpm] = [chain_model(hmm) for hmm in self.hmms(self.dbn(min_bpm))]
        return self.layouts[min_bpm]

    def paths(self, activation: np.ndarray, min_bpm: float, folded=None) -> list[tuple[np.ndarray, float]]:
        """(state path, log probability) per HMM of the DBN with tempi from ``min_bpm`` up.

        When the folds covered exactly this decode (every frame of ``activation``, the same
        tempi), only the backtraces are left; else one whole Viterbi per HMM. In parallel
        threads (the Viterbi releases the GIL) while their back-pointers fit in
        PARALLEL_DECODE_BYTES together: this runs at the end of a file, when other workers are
        often idle, but must not raise the run's peak memory."""
        from .viterbi import backtrace, viterbi

        hmms = self.hmms(self.dbn(min_bpm))
        if fits(folded, activation, min_bpm, len(hmms)):
            models = self.chain_models(min_bpm)

            def trace(n: int):
                return backtrace(models[n], [block.backs[n] for block in folded.blocks], folded.carry.scores[n])

            with ThreadPoolExecutor(max_workers=min(len(hmms), os.cpu_count() or 1)) as pool:
                return list(pool.map(trace, range(len(hmms))))
        needed = len(activation) * sum(int((np.diff(hmm.transition_model.pointers) > 1).sum()) for hmm in hmms)
        threads = min(len(hmms), os.cpu_count() or 1) if needed <= PARALLEL_DECODE_BYTES else 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda hmm: viterbi(hmm, activation), hmms))

    def fold(self, carry, index, parts, track):
        """The decode's forward pass over the frames chunk ``index`` settles, from the scores
        the fold of chunk ``index - 1`` carried.

        Chunk ``index``'s frames are those of its core (up to the middle of its overlap with
        the next chunk; the last chunk's run to the end of the track). The activation there is
        what the merge's :func:`.networks.stitch` gives there, to the bit: the curve joined
        from this chunk and its neighbours equals the whole track's joined curve everywhere
        but in the crossfades with the next-but-one chunks, which lie FOLD_MARGIN or more away
        (else the fold declines), and each grid frame is interpolated from the two curve
        frames around it. The forward pass does the whole-track pass's arithmetic frame for
        frame (:func:`.viterbi.forward`), so the merge's backtrace (:meth:`paths`) finds the
        same path and log probability. Its block: each HMM's back-pointers of these frames,
        compressed (:func:`.viterbi.pack`: the coordinator holds every chunk's until the merge).
        Declines (None) where the kernel does not apply, and on tracks shorter than the
        ``fold_min_duration`` parameter.
        """
        from mirflow import Fold

        from .viterbi import forward, log_densities, pack

        if track.duration < self.config["fold_min_duration"]:
            return None
        spans, min_bpm = track.spans, self.config["min_bpm"]
        frames = int(round(track.duration * FPS))
        start = carry.frame if carry is not None else 0
        stop = frames if index == len(spans) - 1 else min(frames, int(np.ceil(spans[index].core_end * FPS)))
        stop = max(start, stop)
        low = spans[index - 2].end if index >= 2 else -np.inf  # chunk index - 2's crossfade ends here
        high = spans[index + 2].start if index + 2 < len(spans) else np.inf  # chunk index + 2's begins here
        if stop > start and (start / FPS < low + FOLD_MARGIN or (stop - 1) / FPS > high - FOLD_MARGIN):
            return None
        if any(len(part.outputs["activation"]["times"]) == 0 for part in parts):
            return None  # a chunk the join would skip
        activation = self.decodable(lay(merge_curve(parts, "activation"), np.arange(start, stop) / FPS))
        hmms = self.hmms(self.dbn(min_bpm))
        models = self.chain_models(min_bpm)
        densities = [log_densities(hmm, activation) if model is not None else None for hmm, model in zip(hmms, models)]
        if any(d is None for d in densities):
            return None
        before = carry.scores if carry is not None else [model.log_initial for model in models]
        with ThreadPoolExecutor(max_workers=min(len(hmms), os.cpu_count() or 1)) as pool:
            passes = list(pool.map(forward, models, before, densities))
        return Fold(FoldCarry(stop, min_bpm, tuple(scores for scores, _ in passes)),
                    FoldBlock(start, stop, frames_checksum(activation), tuple(pack(back) for _, back in passes)))

    def decodable(self, activation: np.ndarray) -> np.ndarray:
        """The activation as this tracker's DBN passes read it (after the silence check)."""
        return activation

    def decode_track(self, activation: np.ndarray, folded=None) -> Decoded:
        """The decode both trackers share, over the whole track's stitched activation: nothing
        where the network hears no beat; one DBN pass (:meth:`track`); again at double the
        tempo where it followed every other beat (:func:`double_tempo_floor`); the beats the
        network does not hear at either end dropped (:func:`heard`); each beat at its
        activation peak between frames (:func:`peak_times`), in seconds.

        madmom's DBN models and beat-position correction, decoded with :mod:`.viterbi`, whose
        memory does not grow with the model's states: 60 minutes need ~30 MB of back-pointers
        instead of 8 GB. ``folded`` (mirflow.Folded): the folds' forward passes over this
        activation, which leave the first pass only its backtrace.
        """
        positions = np.zeros(0, dtype=int) if self.tracks_bars else None
        if activation.size == 0 or float(activation.max()) < SILENT_ACTIVATION:
            return Decoded(np.zeros(0), positions)
        activation = self.decodable(activation)
        decoded = self.track(activation, self.config["min_bpm"], folded)
        faster = double_tempo_floor(decoded.beats, activation, self.config["max_bpm"])
        if faster:
            decoded = self.track(activation, faster)
        keep = heard(decoded.beats.astype(int), activation)
        return decoded._replace(beats=peak_times(decoded.beats[keep], activation),
                                positions=None if decoded.positions is None else decoded.positions[keep])

    @classmethod
    def gpu_problem(cls):
        return cuda_problem()

    def setup(self, device):
        """The CPU lane (``device`` cpu) loads the networks on the CPU and the merge's decode
        kernel; the GPU lane (``auto`` or ``gpu``) loads the networks on CUDA, and reports the
        CPU when onnxruntime could not start it (an error when ``gpu`` was asked for)."""
        quiet_onnxruntime()  # before the sessions exist
        self.rnn = BlockedRNN(self.make_network(), providers_for(device))
        self.device = network_device(device, self.rnn.devices)
        if device == "cpu":
            from .viterbi import prepare_in_background

            prepare_in_background()  # the merge's decode kernel, compiled beside the first chunks

    def setup_features(self):
        """A CPU worker of a run whose networks are in the GPU lane: features, folds and merges."""
        from .viterbi import prepare_in_background

        self.rnn = BlockedRNN(self.make_network(), providers=None)
        prepare_in_background()

    def prepare(self, chunk, inputs):
        """The CPU half of a chunk: the network's input features (None when it is silent)."""
        frames = int(round(chunk.duration * FPS))
        return {"frames": frames, "features": None if chunk.is_silent() else self.rnn.features(chunk.samples,
                                                                                               chunk.sample_rate)}

    def finish(self, prepared) -> dict:
        """The network half: the activation of a prepared chunk (zeros where it was silent)."""
        features = prepared["features"]
        if features is None:
            shape = prepared["frames"] if self.columns == 1 else (prepared["frames"], self.columns)
            activation = np.zeros(shape, dtype=np.float32)
        else:
            activation = self.rnn.network(features)
        return {"activation": {"times": np.arange(len(activation)) / FPS, "values": activation}}

    def analyze(self, chunk, inputs):
        return self.finish(self.prepare(chunk, inputs))

    def analyze_batch(self, items, inputs):
        """The networks of prepared chunks from any files, one chunk at a time: a bidirectional
        LSTM reads its whole sequence, so chunks of other lengths cannot be padded into one."""
        return [self.finish(item) for item in items]


class Beats(RNNTracker):
    """Beat times: RNN activations per chunk, one DBN decode per track."""

    name = "madmom_fast.beats"
    version = "4"
    outputs = {"beats": mirflow.EVENTS}

    def make_network(self):
        from madmom.features.beats import RNNBeatProcessor

        return RNNBeatProcessor()

    def decode(self, activation: np.ndarray, folded=None) -> np.ndarray:
        """The whole track's beat times (seconds): :meth:`RNNTracker.decode_track`."""
        return self.decode_track(activation, folded).beats

    def merge(self, parts, track):
        """Stitch the chunks' activations and decode once over the whole track (its forward
        pass already folded chunk by chunk when ``track.folded`` says so)."""
        beats = self.decode(stitch(parts, "activation", track.duration), track.folded)
        return {"beats": [{"time": float(t)} for t in beats]}

    def make_dbn(self, min_bpm: float):
        from madmom.features.beats import DBNBeatTrackingProcessor

        return DBNBeatTrackingProcessor(min_bpm=min_bpm, max_bpm=self.config["max_bpm"],
                                        transition_lambda=self.config["transition_lambda"], fps=FPS)

    def track(self, activation: np.ndarray, min_bpm: float, folded=None) -> Decoded:
        """Beat frames of one pass of madmom's ``DBNBeatTrackingProcessor`` model."""
        dbn = self.dbn(min_bpm)
        [(path, _)] = self.paths(activation.astype(np.float32), min_bpm, folded)
        if not path.any():
            return Decoded(np.zeros(0, dtype=int))
        return Decoded(beat_peaks(dbn.om.pointers[path] >= 1, activation).astype(int))


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
    tracks_bars = True

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

    def prepare(self, chunk, inputs):
        """The CPU half: the network's features and, for the metre stage, the onset strength
        (from those features) and the chunk's pitch classes."""
        from .metre import onset_strength

        prepared = super().prepare(chunk, inputs)
        features = prepared["features"]
        if features is None:
            prepared["onsets"] = np.zeros(prepared["frames"], dtype=np.float32)
            prepared["chroma"] = np.zeros((int(round(chunk.duration * CHROMA_FPS)), 12), dtype=np.float32)
        else:
            prepared["onsets"] = onset_strength(features, self.rnn.widths)
            prepared["chroma"] = pitch_classes(chunk.samples, chunk.sample_rate)
        return prepared

    def finish(self, prepared):
        onsets, chroma = prepared["onsets"], prepared["chroma"]
        return {**super().finish(prepared),
                "onsets": {"times": np.arange(len(onsets)) / FPS, "values": onsets},
                "chroma": {"times": np.arange(len(chroma)) / CHROMA_FPS, "values": chroma}}

    def bars(self, activation: np.ndarray, chroma: np.ndarray | None = None, onsets: np.ndarray | None = None,
             folded=None):
        """The whole track's metre (:class:`.metre.Metre`): the bar decode (its forward pass
        folded already when ``folded`` says so), the bar phase from the harmony, then the level
        a musician writes (:func:`.metre.relevel`)."""
        from .metre import Metre, heard_downbeats, relevel

        times, positions, signature, confidence = self.decode(activation, folded)
        if chroma is not None and len(chroma) and not heard_downbeats(times, positions, activation):
            positions = bar_phase(times, positions, chroma)
        decoded = Metre(times, positions, signature, confidence, 2)
        return relevel(decoded, activation, onsets, chroma)

    def decode(self, activation: np.ndarray, folded=None) -> Decoded:
        """(beat times, positions in bar, time signature, its confidence) over the whole
        track: :meth:`RNNTracker.decode_track`."""
        return self.decode_track(activation, folded)

    def decodable(self, activation: np.ndarray) -> np.ndarray:
        return activation.astype(np.float32)

    def merge(self, parts, track):
        """Stitch the chunks' activations, decode once over the whole track, then the metre."""
        activation = stitch(parts, "activation", track.duration)
        # Chunk results cached by an older version lack the pitch classes or the onsets.
        chroma = stitch(parts, "chroma", track.duration, CHROMA_FPS) if all("chroma" in p.outputs for p in parts) else None
        onsets = stitch(parts, "onsets", track.duration) if all("onsets" in p.outputs for p in parts) else None
        return self.bars(activation, chroma, onsets, track.folded).outputs()

    def make_dbn(self, min_bpm: float):
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor

        return DBNDownBeatTrackingProcessor(beats_per_bar=self.config["beats_per_bar"], min_bpm=min_bpm,
                                            max_bpm=self.config["max_bpm"], fps=FPS,
                                            transition_lambda=self.config["transition_lambda"])

    @staticmethod
    def hmms(dbn) -> list:
        return list(dbn.hmms)

    def track(self, activation: np.ndarray, min_bpm: float, folded=None) -> Decoded:
        """(beat frames, positions in bar, time signature, its confidence) of one decode per
        bar length with tempi from ``min_bpm`` up; the most probable bar length wins."""
        dbn = self.dbn(min_bpm)
        decoded = self.paths(activation, min_bpm, folded)
        scores = np.array([score for _, score in decoded])
        best = int(np.argmax(scores))
        path = decoded[best][0]
        if not path.any():
            return Decoded(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        hmm = dbn.hmms[best]
        frames = beat_peaks(hmm.observation_model.pointers[path] >= 1, activation).astype(int)
        positions = hmm.transition_model.state_space.state_positions[path].astype(int) + 1
        # Confidence: how much more probable the winning bar length is, per second of audio.
        margin = float(np.sort(scores)[-1] - np.sort(scores)[-2]) if len(scores) > 1 else np.inf
        confidence = float(1 - np.exp(-margin / max(1.0, len(activation) / FPS)))
        return Decoded(frames, positions[frames], f"{dbn.beats_per_bar[best]}/4", confidence)


def fits(folded, activation: np.ndarray, min_bpm: float, models: int) -> bool:
    """Whether the folds (``mirflow.Folded``) did this very decode's forward pass: the same
    tempi and models, every frame of ``activation`` in order, and the same activation there to
    the bit (each block's checksum). Anything else (no folds, fold state of another version or
    decode) leaves the merge the whole-track decode."""
    carry = getattr(folded, "carry", None)
    if not (isinstance(carry, FoldCarry) and carry.frame == len(activation) and carry.min_bpm == min_bpm
            and len(carry.scores) == models):
        return False
    frame = 0
    for block in folded.blocks:
        if not (isinstance(block, FoldBlock) and block.first == frame and len(block.backs) == models
                and block.checksum == frames_checksum(activation[block.first:block.stop])):
            return False
        frame = block.stop
    return frame == len(activation)

