"""What a run says about each file: the step records a result is built from, and the outcome.

These are the scheduler's public values (``mirflow.scheduler`` exports them); the result's
JSON holds a step record as it is (``results.build_result``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Where a step stands on one file (a str: the result's JSON holds the plain value)."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # an optional step that cannot run here, or a required input failed


@dataclass
class StepRecord:
    """How one step went on one file: the part of the result that says so."""

    analyzer: str
    version: str
    params: dict[str, Any]
    status: Status = Status.PENDING
    device: str | None = None
    seconds: float = 0.0  # wall time of its units, summed over workers
    cpu_seconds: float = 0.0  # CPU time of the processes while they ran its units (all their threads)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # what the contract's rules cleaned (mirflow.contract)


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    ok: bool
    written: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    duration: float = 0.0
    skipped: str | None = None  # why it was not analyzed (up to date, claimed elsewhere)
    result: dict[str, Any] | None = None  # the result itself (docs/results.md), as written
