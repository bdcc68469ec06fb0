"""essentia_gpu: Essentia's descriptors (CPU lane).

Classical descriptors in :mod:`.classical`: key, rhythm, danceability, EBU R128 loudness.
"""

from __future__ import annotations

import mirflow

from .classical import Danceability, Key, Loudness, Rhythm, aggregate_loudness

__all__ = ["Danceability", "Key", "Loudness", "Rhythm"]


@mirflow.hookimpl
def register_analyzers(register):
    for cls in (Key, Rhythm, Danceability, Loudness):
        register(cls)


@mirflow.hookimpl
def aggregate(analyzer, parts, track):
    if isinstance(analyzer, Loudness):
        return aggregate_loudness(parts, track)
    return None
