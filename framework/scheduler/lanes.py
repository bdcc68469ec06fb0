"""Which lane runs each step of a run: the CPU workers or the GPU process.

A ``cpu`` or ``gpu`` analyzer always runs in its lane. An ``auto`` analyzer (one with both
halves: ``analyze`` for the CPU lane, ``prepare`` and ``analyze_batch`` for the GPU lane) goes
to the GPU lane when the run asks for ``gpu``, or for ``auto`` on a machine where the analyzer
says a GPU is usable (``Analyzer.gpu_problem``); otherwise to the CPU lane, so that a run
without a GPU is the run it was before the analyzer had a GPU path. Decided once per run, in
the coordinator, and carried by the pipeline's steps to every worker and actor: they must all
agree on where a step's chunks go.
"""

from __future__ import annotations

from dataclasses import replace


def lane(cls, device: str) -> str:
    """"cpu" or "gpu": where a step of analyzer class ``cls`` runs when the run asks for ``device``."""
    if cls.resource != "auto":
        return cls.resource
    if device == "cpu":
        return "cpu"
    return "gpu" if device == "gpu" or cls.gpu_problem() is None else "cpu"


def with_lanes(pipeline, registry, device: str):
    """A copy of ``pipeline`` whose steps say their lane for a run on ``device``."""
    steps = [replace(step, lane=lane(registry.get(step.analyzer), device)) for step in pipeline.steps]
    return replace(pipeline, steps=steps)


def gpu_steps(pipeline) -> list:
    """The steps of a laned pipeline that run in the GPU lane (and are not skipped)."""
    return [step for step in pipeline.steps if step.lane == "gpu" and not step.unavailable]
