"""mirflow: plugin-based music analysis that writes one accurate timeline per song.

Import stays light: no plugin loading, no heavy libraries. Plugins write
``@mirflow.hookimpl`` and subclass :class:`mirflow.Analyzer`.
"""

from .analyzer import (CURVE, EVENTS, LABEL, SCALAR, SEGMENTS, Analyzer, Param, ParamError, Requirement,
                       threads_per_worker)
from .hookspecs import hookimpl

__all__ = [
    "CURVE", "EVENTS", "LABEL", "SCALAR", "SEGMENTS",
    "Analyzer", "Param", "ParamError", "Requirement", "hookimpl", "threads_per_worker",
]
