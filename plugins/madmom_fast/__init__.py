"""madmom_fast: beats, downbeats, time signature and tempo from madmom's networks.

The networks run per chunk (at madmom's trained 100 fps, 44.1 kHz); the chunks'
activation functions are stitched with a crossfade over each overlap and decoded
once over the whole track, so every beat has one metrical level and no seam error.
Tempo and its curve are derived from the decoded beats, not estimated separately.

Modules: :mod:`.networks` (the RNNs per chunk, pitch classes, stitching), :mod:`.beats`
(the trackers and their shared decode), :mod:`.peaks` (beats from
the activation around the decoded frames), :mod:`.metre` (bar phase and the level a musician
writes), :mod:`.tempo`, :mod:`.viterbi` (the decoder; :mod:`.native` builds its kernels in C
once per machine); the block-at-a-time STFT is
:mod:`mirflow.plugins._stft` (shared with the chord recognizers).
"""

from __future__ import annotations

import mirflow
from mirflow.plugins._onnx import register_onnxruntime

from .beats import FPS, Beats, Decoded, Downbeats, RNNTracker  # noqa: F401
from .metre import CHROMA_FPS, bar_phase  # noqa: F401
from .networks import BlockedRNN, pitch_classes, stitch  # noqa: F401
from .peaks import beat_peaks, double_tempo_floor, heard, peak_times  # noqa: F401
from .tempo import Tempo, tempo_changes, tempo_curve  # noqa: F401


@mirflow.hookimpl
def register_analyzers(register):
    for cls in (Beats, Downbeats, Tempo):
        register(cls)


@mirflow.hookimpl
def register_backends(register):
    """madmom's networks run on onnxruntime."""
    register_onnxruntime(register)
