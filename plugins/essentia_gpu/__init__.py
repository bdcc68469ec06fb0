"""essentia_gpu: Essentia's descriptors (CPU lane) and Essentia's TensorFlow models (GPU lane).

Classical descriptors in :mod:`.classical`: key, rhythm, danceability, EBU R128 loudness.
Zoo models in :mod:`.models` (analyzers), :mod:`.runner` (patches and graphs) and
:mod:`.zoo` (models on disk, ``mirflow models``).
"""

from __future__ import annotations

import mirflow

from .classical import Danceability, Key, Loudness, Rhythm
from .models import Model, TempoCNN

__all__ = ["Danceability", "Key", "Loudness", "Rhythm", "Model", "TempoCNN"]


@mirflow.hookimpl
def register_analyzers(register):
    for cls in (Key, Rhythm, Danceability, Loudness, Model, TempoCNN):
        register(cls)


@mirflow.hookimpl
def register_commands(cli):
    from .commands import models

    cli.add_command(models)


@mirflow.hookimpl
def register_backends(register):
    """TensorFlow and Essentia, where they are installed (the `models` and `essentia` extras)."""
    from importlib.util import find_spec

    from .backends import ESSENTIA, TENSORFLOW

    if find_spec("tensorflow") is not None:
        register("tensorflow", TENSORFLOW)
    if find_spec("essentia") is not None:
        register("essentia", ESSENTIA)
