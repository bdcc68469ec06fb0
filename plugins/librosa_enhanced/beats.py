"""librosa_enhanced.beats: beats without a trained model (librosa's dynamic-programming tracker).

For pipelines that must not run non-commercial models (madmom's networks are CC BY-NC-SA 4.0):
the same per-chunk onset envelope as ``librosa_enhanced.tempo`` (shared), stitched over the
whole track; the tempo from :meth:`Tempo.estimate`; then Ellis's (2007) dynamic-programming
beat tracker (``librosa.beat.beat_track``) over the whole envelope at once, so beats have one
phase and no seam. No bar positions: downbeats need a model.
"""

from __future__ import annotations

import numpy as np

import mirflow

from .tempo import ONSET_HOP, RATE, Tempo, stitched_envelope


class Beats(Tempo):
    """Beats and tempo from the onset envelope, no trained model (librosa's DP beat tracker)."""

    name = "librosa_enhanced.beats"
    version = "1"
    params = {**Tempo.params, "tightness": mirflow.Param(100.0, float, min=1.0, max=1000.0,
                                                          help="how strictly beats keep the tempo")}
    outputs = {"beats": mirflow.EVENTS, "tempo": mirflow.SCALAR}

    def track(self, envelope: np.ndarray) -> dict:
        """Beat times over the whole track's envelope, and the tempo they follow."""
        tempo = self.estimate(envelope)["tempo"]
        if tempo["value"] is None:
            return {"beats": [], "tempo": tempo}
        import librosa

        _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=RATE, hop_length=ONSET_HOP,
                                           bpm=tempo["value"], tightness=self.config["tightness"], trim=True,
                                           units="time")
        return {"beats": [{"time": float(t)} for t in beats], "tempo": tempo}


def aggregate_beats(analyzer: Beats, parts, track) -> dict:
    return analyzer.track(stitched_envelope(parts, track.duration))

