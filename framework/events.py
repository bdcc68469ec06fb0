"""Progress events, sent through the ``progress`` hook to whoever listens."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Event kinds, in the order a file sees them.
RUN_STARTED = "run_started"
FILE_STARTED = "file_started"
FILE_DECODED = "file_decoded"
UNIT_STARTED = "unit_started"
UNIT_FINISHED = "unit_finished"
UNIT_FAILED = "unit_failed"
CHUNK_RESULT = "chunk_result"  # a chunk's events, segments and labels in track time, before the merge
STEP_FINISHED = "step_finished"  # a step's merged outputs, before the file's result is written
FILE_FINISHED = "file_finished"
FILE_FAILED = "file_failed"
FILE_SKIPPED = "file_skipped"  # up to date already, or claimed by another mirflow run
FILE_CANCELLED = "file_cancelled"  # Scheduler.cancel: nothing written
RUN_FINISHED = "run_finished"
WORKERS_STARTED = "workers_started"  # the executor's workers (processes, actors) came up for a file
WORKERS_STOPPED = "workers_stopped"  # ... and went after the idle timeout (mirflow serve)


@dataclass
class Event:
    """One thing that happened; ``chunk`` is None for track-level units (aggregation)."""

    kind: str
    file: str | None = None
    step: str | None = None
    chunk: int | None = None
    lane: str | None = None
    seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
