"""Essentia's classical (non-neural) descriptors, in the CPU lane.

Key (KeyExtractor), rhythm (RhythmExtractor2013: BPM, beats, confidence), danceability
(Danceability) and loudness (EBU R128). Audio reaches Essentia as float32 arrays decoded by
mirflow (Essentia's own loaders fail on 6-channel WAV). Essentia is imported inside
``setup``: it must be imported before TensorFlow in any process, and listing plugins must
not load it.
"""

from __future__ import annotations

import numpy as np

import mirflow

KEY_PROFILES = ("edma", "bgate", "temperley", "krumhansl", "shaath", "braw", "diatonic", "tonictriad", "noland",
                "faraldo", "pentatonic", "edmm", "wei", "gomez")


class EssentiaAnalyzer(mirflow.Analyzer):
    resource = "cpu"
    sample_rate = 44100
    libraries = ("essentia",)
    extra = "essentia"
    code_licence = "AGPL-3.0 (Essentia)"

    def setup(self, device):
        import essentia

        essentia.log.infoActive = False  # one INFO line per algorithm otherwise
        import essentia.standard as es

        self.es = es
        self.device = "cpu"
        self.build()

    def build(self) -> None:
        """Create the Essentia algorithm(s) once per worker."""


class Key(EssentiaAnalyzer):
    """Key per chunk from Essentia's KeyExtractor (HPCP against a key profile)."""

    name = "essentia_gpu.key"
    version = "1"
    params = {"profile": mirflow.Param("edma", str, choices=KEY_PROFILES, help="KeyExtractor profileType")}
    outputs = {"key": mirflow.LABEL}

    def build(self):
        self.extract = self.es.KeyExtractor(profileType=self.config["profile"], sampleRate=self.sample_rate)

    def analyze(self, chunk, inputs):
        if chunk.is_silent() or chunk.duration < 1.0:
            return {"key": {"label": None, "confidence": 0.0}}
        tonic, scale, strength = self.extract(np.ascontiguousarray(chunk.samples, dtype=np.float32))
        return {"key": {"label": f"{tonic} {scale}", "confidence": float(np.clip(strength, 0, 1))}}


class Rhythm(EssentiaAnalyzer):
    """BPM (with Essentia's confidence, 0-5.32 scaled to 0-1) and beats per chunk."""

    name = "essentia_gpu.rhythm"
    version = "1"
    params = {
        "min_bpm": mirflow.Param(40, int, min=30, max=300, help="slowest tempo considered"),
        "max_bpm": mirflow.Param(208, int, min=60, max=400, help="fastest tempo considered"),
    }
    outputs = {"tempo": mirflow.SCALAR, "beats": mirflow.EVENTS}

    @classmethod
    def check_params(cls, values):
        if values["min_bpm"] >= values["max_bpm"]:
            raise mirflow.ParamError(f"min_bpm ({values['min_bpm']}) must be below max_bpm ({values['max_bpm']})")

    def build(self):
        self.extract = self.es.RhythmExtractor2013(method="multifeature", minTempo=self.config["min_bpm"],
                                                   maxTempo=self.config["max_bpm"])

    def analyze(self, chunk, inputs):
        if chunk.is_silent() or chunk.duration < 2.0:
            return {"tempo": {"value": None, "confidence": 0.0}, "beats": []}
        bpm, ticks, confidence, _, _ = self.extract(np.ascontiguousarray(chunk.samples, dtype=np.float32))
        return {"tempo": {"value": float(bpm), "confidence": float(np.clip(confidence / 5.32, 0, 1))},
                "beats": [{"time": float(t)} for t in ticks]}


class Danceability(EssentiaAnalyzer):
    """Essentia's Danceability (detrended fluctuation analysis): about 0 (not) to 3 (very)."""

    name = "essentia_gpu.danceability"
    version = "1"
    outputs = {"danceability": mirflow.SCALAR}

    def build(self):
        self.extract = self.es.Danceability(sampleRate=self.sample_rate)

    def analyze(self, chunk, inputs):
        if chunk.is_silent() or chunk.duration < 2.0:
            return {"danceability": {"value": None, "confidence": 0.0}}
        value, _ = self.extract(np.ascontiguousarray(chunk.samples, dtype=np.float32))
        return {"danceability": {"value": float(value), "confidence": 1.0}}


BLOCK_HOP = 0.1  # seconds between EBU R128 momentary (400 ms) blocks


class Loudness(EssentiaAnalyzer):
    """EBU R128: a momentary and short-term loudness curve (LUFS, every 0.1 s) and the
    integrated loudness, gated over the whole track's momentary blocks (so chunking does not
    change it). Stereo as the standard measures it; mono counted as one channel."""

    name = "essentia_gpu.loudness"
    version = "1"
    channels = "all"
    outputs = {"loudness": mirflow.SCALAR, "momentary_loudness": mirflow.CURVE,
               "short_term_loudness": mirflow.CURVE}
    chunk_outputs = {"momentary_loudness": mirflow.CURVE, "short_term_loudness": mirflow.CURVE}

    def build(self):
        self.extract = self.es.LoudnessEBUR128(sampleRate=self.sample_rate, hopSize=BLOCK_HOP, startAtZero=True)

    def analyze(self, chunk, inputs):
        samples = np.atleast_2d(chunk.samples)
        if samples.shape[0] == 1:
            # Essentia measures two channels; a mono signal in both is +3.01 LU over the
            # standard's single channel, taken off below.
            stereo, offset = np.repeat(samples, 2, axis=0), -10 * np.log10(2)
        else:
            stereo, offset = samples[:2], 0.0
        momentary, short_term, _, _ = self.extract(np.ascontiguousarray(stereo.T, dtype=np.float32))
        times = np.arange(len(momentary)) * BLOCK_HOP
        return {"momentary_loudness": {"times": times, "values": np.asarray(momentary) + offset},
                "short_term_loudness": {"times": times[:len(short_term)], "values": np.asarray(short_term) + offset}}

    def merge(self, parts, track):
        """The curves joined at seams; the integrated loudness gated over the whole track's blocks."""
        from mirflow.aggregate import merge_curve

        momentary = merge_curve(parts, "momentary_loudness")
        short_term = merge_curve(parts, "short_term_loudness")
        value = integrated_loudness(np.asarray(momentary["values"], dtype=float))
        return {"loudness": {"value": value, "confidence": 1.0 if value is not None else 0.0, "unit": "LUFS"},
                "momentary_loudness": momentary, "short_term_loudness": short_term}


def integrated_loudness(momentary: np.ndarray) -> float | None:
    """EBU R128 integrated loudness from momentary (400 ms, 75 % overlap) block loudness:
    absolute gate at -70 LUFS, then a relative gate 10 LU below the mean of what passed."""
    blocks = momentary[momentary > -70.0]
    if len(blocks) == 0:
        return None
    mean = -0.691 + 10 * np.log10(np.mean(10 ** ((blocks + 0.691) / 10)))
    gated = blocks[blocks > mean - 10.0]
    return float(-0.691 + 10 * np.log10(np.mean(10 ** ((gated + 0.691) / 10))))
