"""mirflow: plugin-based music analysis that writes one accurate timeline per song.

Import stays light: no plugin loading, no heavy libraries. ``mirflow.analyze(path)`` runs a
pipeline and returns :class:`mirflow.Result` objects. Plugins write ``@mirflow.hookimpl`` and
subclass :class:`mirflow.Analyzer`.
"""

from .analyzer import (CURVE, EVENTS, LABEL, SCALAR, SEGMENTS, Analyzer, Fold, Folded, Param, ParamError,
                       Requirement, threads_per_worker)
from .api import AnalysisError, Result, analyze
from .hookspecs import hookimpl

__all__ = [
    "CURVE", "EVENTS", "LABEL", "SCALAR", "SEGMENTS",
    "AnalysisError", "Analyzer", "Fold", "Folded", "Param", "ParamError", "Requirement", "Result", "analyze",
    "hookimpl", "threads_per_worker",
]
