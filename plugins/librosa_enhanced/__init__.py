"""librosa_enhanced: key with key changes, tempo, beats without a model, and energy curves from shared features.

The spectral features (chroma, onset envelope, STFT curves) are computed once per chunk
in :mod:`.features` and shared by every analyzer here and by ``chords.templates``.
"""

from __future__ import annotations

import mirflow

from .beats import Beats, aggregate_beats
from .curves import Features, aggregate_features
from mirflow.dsp.features import chroma_cqt
from .key import PROFILES, Key, aggregate_key, key_label, key_scores
from .tempo import Tempo, aggregate_tempo

__all__ = ["Beats", "Features", "Key", "Tempo", "PROFILES", "chroma_cqt", "key_label", "key_scores"]


@mirflow.hookimpl
def register_analyzers(register):
    for cls in (Key, Tempo, Beats, Features):
        register(cls)


@mirflow.hookimpl
def aggregate(analyzer, parts, track):
    """Key and tempo decode the whole track's stitched curves; features summarize theirs."""
    if isinstance(analyzer, Beats):  # before Tempo: a Beats is a Tempo
        return aggregate_beats(analyzer, parts, track)
    if isinstance(analyzer, Key):
        return aggregate_key(analyzer, parts, track)
    if isinstance(analyzer, Tempo):
        return aggregate_tempo(analyzer, parts, track)
    if isinstance(analyzer, Features):
        return aggregate_features(parts, track)
    return None
