"""The pipeline model: what a validated pipeline is (steps, chunking, resources, output,
timeline bindings), its hash for resume, and the worker limit both the YAML key and the
``--jobs`` option obey. Validation, with every problem located in the YAML, is schema.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..analyzer import CURVE, EVENTS, LABEL, SCALAR, SEGMENTS
from ..audio import MAX_DURATION

# Descriptors that feed the result's `summary` and `timeline`, with the kind each needs.
DESCRIPTORS = {
    "beats": EVENTS,
    "downbeats": EVENTS,
    "chords": SEGMENTS,
    "key": LABEL,
    "keys": SEGMENTS,
    "tempo": SCALAR,
    "tempo_curve": CURVE,
    "time_signature": LABEL,
    "sections": SEGMENTS,
    "form": LABEL,
}
DEVICES = ("auto", "cpu", "gpu")
EXECUTORS = ("local", "ray")  # where units run: this machine's processes, or a Ray cluster
FORMATS = ("json", "jams", "lab", "csv")
QUALITIES = ("VHQ", "HQ", "MQ", "LQ", "QQ")
TOP_KEYS = ("name", "description", "audio", "chunking", "resources", "steps", "timeline", "output")


@dataclass(frozen=True)
class Step:
    id: str
    analyzer: str
    params: dict[str, Any]
    inputs: dict[str, tuple[str, str] | None]  # slot -> (step id, output) or None
    optional: bool = False
    unavailable: str | None = None  # an optional step that cannot run here: why, and the fix
    lane: str | None = None  # "cpu" or "gpu", decided per run (mirflow.scheduler.lanes); None: not yet


@dataclass(frozen=True)
class Chunking:
    enabled: bool = True
    min_duration: float = 60.0
    length: float = 120.0
    overlap: float = 10.0


@dataclass(frozen=True)
class Resources:
    device: str = "auto"
    executor: str = "local"  # or "ray" (mirflow[ray]): the same lanes as actors on a Ray cluster
    cpu_workers: int | None = None
    gpu_batch_size: int = 8
    files_in_flight: int | None = None  # decoded files held at once (default: from workers and batch)
    unit_timeout: float | None = None  # seconds one unit may run before its worker is killed; None: auto
    max_duration: float = MAX_DURATION  # longest audio accepted, checked from the header before decoding


@dataclass
class Pipeline:
    name: str
    path: str
    description: str = ""
    resample_quality: str = "HQ"
    chunking: Chunking = field(default_factory=Chunking)
    resources: Resources = field(default_factory=Resources)
    steps: list[Step] = field(default_factory=list)  # in an order that respects inputs
    timeline: dict[str, dict[str, Any]] = field(default_factory=dict)  # descriptor -> {"from"| "vote"}
    output_directory: str | None = None
    formats: tuple[str, ...] = ("json",)

    @property
    def hash(self) -> str:
        """Hash of everything that changes results (not where they are written)."""
        content = {
            "quality": self.resample_quality,
            "chunking": asdict(self.chunking),
            # The lane is where a step runs, not what it computes: results stay reusable.
            "steps": [{k: v for k, v in asdict(step).items() if k != "lane"} for step in self.steps],
            "timeline": self.timeline,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def step(self, step_id: str) -> Step:
        return next(step for step in self.steps if step.id == step_id)


def worker_limit() -> tuple[int, str]:
    """The most CPU workers a run may ask for, and why: the one rule for ``resources.cpu.workers``
    and for ``--jobs`` (``mirflow run``, ``serve``), so a typo cannot fork thousands of processes."""
    cores = os.cpu_count() or 1
    return 4 * cores, f"4 per core on this {cores}-core machine: each worker is a process holding its own models"


def check_workers(value: int) -> str | None:
    """What is wrong with ``value`` workers (the YAML key's words), or None."""
    most, why = worker_limit()
    return f"must be at most {most}, got {value} ({why})" if value > most else None
