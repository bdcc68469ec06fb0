"""One file's plan: its steps, the phase each step is in, and the units to queue next.

The step graph is the pipeline's (steps ordered by their inputs). A step moves through
:class:`StepPhase` by explicit transitions: ``WAITING`` for the steps it needs per chunk,
``ANALYZING`` while its chunk units are out, ``MERGE_WAITING`` once every chunk is in but an
input it needs only at the merge (``at_merge``) is not, or (an analyzer that folds its merge
chunk by chunk, ``folds.py``) its last folds are still out, ``MERGING`` while its aggregate unit
is out, and ``SETTLED`` once its record says ok, failed or skipped. The file as a whole is
in one :class:`FileState`. A plan never queues anything itself: its methods return the work
to queue next (:class:`Next`), which the coordinator turns into units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, NamedTuple

from .. import events
from ..aggregate import chunk_preview
from ..audio import ChunkSpan, plan_chunks
from .folds import FoldStream
from .records import Status, StepRecord
from .units import (PREPARE, AnalyzeWork, Binding, Completion, Decoded, MergeWork, PrepareWork, Unit)


class StepPhase(Enum):
    WAITING = "waiting"  # for the steps whose outputs its chunks need
    ANALYZING = "analyzing"  # its chunk (or prepare and batch) units are out
    MERGE_WAITING = "merge waiting"  # every chunk is in; an at-merge input or its last folds are not yet
    MERGING = "merging"  # its aggregate unit is out
    SETTLED = "settled"  # its record says ok, failed or skipped


STEP_MOVES = {
    StepPhase.WAITING: {StepPhase.ANALYZING, StepPhase.SETTLED},
    StepPhase.ANALYZING: {StepPhase.MERGE_WAITING, StepPhase.SETTLED},
    StepPhase.MERGE_WAITING: {StepPhase.MERGING, StepPhase.SETTLED},
    StepPhase.MERGING: {StepPhase.SETTLED},
    StepPhase.SETTLED: set(),
}


class FileState(Enum):
    DECODING = "decoding"  # admitted, its decode unit is out
    ANALYZING = "analyzing"  # decoded: its steps are running
    EXPORTING = "exporting"  # its result is built, its export unit is out
    DONE = "done"  # its result is built (and written, when it is written anywhere)
    FAILED = "failed"  # it could not be decoded, or its result could not be written
    UP_TO_DATE = "up to date"  # an existing result already matches (resume)
    CANCELLED = "cancelled"  # Scheduler.cancel: its completions are ignored, nothing is written


FILE_MOVES = {
    FileState.DECODING: {FileState.ANALYZING, FileState.FAILED, FileState.UP_TO_DATE},
    FileState.ANALYZING: {FileState.EXPORTING, FileState.DONE},
    FileState.EXPORTING: {FileState.DONE, FileState.FAILED},
}
ENDED = {FileState.DONE, FileState.FAILED, FileState.UP_TO_DATE, FileState.CANCELLED}


class Next(NamedTuple):
    """Work a plan wants queued for its file."""

    step: str | None
    chunk: int | None
    work: Any


@dataclass
class StepState:
    """One step on one file: its record (what the result says) and where its units stand."""

    record: StepRecord
    phase: StepPhase = StepPhase.WAITING
    chunks_left: int = 0  # chunks not analyzed yet
    prepares_left: int = 0  # a gpu step's prepare units still out
    parts: dict[int, tuple[float, Any]] = field(default_factory=dict)  # chunk -> (offset, raw outputs)
    merge: MergeWork | None = None  # in MERGE_WAITING: its merge, waiting for at-merge inputs (or folds)
    folds: FoldStream | None = None  # its folds, when its analyzer folds and the file has several chunks

    def move(self, phase: StepPhase) -> None:
        if phase not in STEP_MOVES[self.phase]:
            raise RuntimeError(f"a step cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase

    def settle(self, status: Status, error: dict | None = None) -> None:
        self.move(StepPhase.SETTLED)
        self.record.status = status
        if error is not None:
            self.record.error = error


class FilePlan:
    """One file in flight: its state, its decoded audio, its steps and its units still out."""

    def __init__(self, path: str, name: str, pipeline, registry, emit, *, keep_tracebacks: bool = False):
        self.path, self.name = path, name
        self.pipeline, self.registry, self.emit = pipeline, registry, emit
        self.keep_tracebacks = keep_tracebacks  # a failed step's error keeps its traceback
        self.state = FileState.DECODING
        self.began = time.perf_counter()
        self.claim = None  # its Claim beside the result, when results are written
        self.audio = None
        self.sha256: str | None = None
        self.spans: list[ChunkSpan] = []
        self.steps: dict[str, StepState] = {}  # step id -> its state, once decoded
        self.outstanding = 0  # units of this file queued and not yet completed
        self.error: str | None = None  # why it failed (FAILED)
        self.result: dict[str, Any] | None = None  # built when every step is settled
        self.written: list[str] = []

    def move(self, state: FileState) -> None:
        cancelling = state is FileState.CANCELLED and self.state is not state  # any file may be cancelled, once
        if state not in FILE_MOVES.get(self.state, set()) and not cancelling:
            raise RuntimeError(f"{self.path}: a file cannot go from {self.state.value} to {state.value}")
        self.state = state

    @property
    def duration(self) -> float | None:
        return self.audio.duration if self.audio is not None else None

    def finished(self) -> bool:
        """Whether nothing of it is out and nothing more will be queued (before its export)."""
        if self.outstanding:
            return False
        if self.state in ENDED:
            return True
        return self.state is FileState.ANALYZING and bool(self.steps) and \
            all(s.phase is StepPhase.SETTLED for s in self.steps.values())

    def could_add(self, step_id: str) -> bool:
        """Whether this file may still prepare chunks for the gpu step ``step_id``."""
        if self.state is FileState.DECODING:
            return True
        if self.state is not FileState.ANALYZING:
            return False
        state = self.steps[step_id]
        if state.phase is StepPhase.WAITING:
            return True  # not started: waits for its inputs
        return state.phase is StepPhase.ANALYZING and state.prepares_left > 0

    # -- completions ------------------------------------------------------------------
    def decoded(self, completion: Completion) -> list[Next]:
        if not completion.ok:
            error = completion.error
            self.error = error if error.startswith(self.path) else f"{self.path}: {error}"
            self.move(FileState.FAILED)
            return []
        value: Decoded = completion.value
        self.sha256 = value.sha256
        if value.skip:
            self.move(FileState.UP_TO_DATE)
            return []
        self.audio = value.audio
        chunking = self.pipeline.chunking
        self.spans = plan_chunks(self.audio.duration, enabled=chunking.enabled, min_duration=chunking.min_duration,
                                 length=chunking.length, overlap=chunking.overlap)
        self.emit(events.FILE_DECODED, file=self.path, data={"duration": self.audio.duration, "chunks": len(self.spans),
                                                              "spans": [s.__dict__ for s in self.spans],
                                                              "notes": list(self.audio.notes)})
        for step in self.pipeline.steps:
            cls = self.registry.get(step.analyzer)
            state = StepState(StepRecord(analyzer=cls.name, version=cls.version, params=step.params))
            if getattr(step, "unavailable", None):  # an optional step that cannot run here
                state.settle(Status.SKIPPED, {"message": f"skipped: {step.unavailable}"})
            self.steps[step.id] = state
        self.move(FileState.ANALYZING)
        return self.ready_steps()

    def chunk_done(self, unit: Unit, completion: Completion) -> tuple[list[Next], Any]:
        """An analyze or prepare unit came back: what to queue next, and (a prepare) the
        prepared value for the GPU batcher."""
        state = self.steps[unit.step]
        state.record.seconds += completion.seconds
        state.record.cpu_seconds += completion.cpu_seconds
        if unit.kind == PREPARE:
            state.prepares_left -= 1
        if state.phase is StepPhase.SETTLED:
            return [], None
        if not completion.ok:
            self.fail(unit.step, completion)
            return self.ready_steps(), None
        if unit.kind == PREPARE:
            return [], completion.value
        return self.part_done(unit.step, unit.chunk, completion.value.offset, completion.value.outputs), None

    def batch_done(self, completion: Completion, position: int) -> list[Next]:
        """The chunk at ``position`` of a GPU batch (a chunk of this file) came back."""
        work, step_id = completion.unit.work, completion.unit.step
        (_, chunk), offset, share = work.owners[position], work.offsets[position], len(work.owners)
        state = self.steps[step_id]
        if state.phase is StepPhase.SETTLED:
            return []
        state.record.seconds += completion.seconds / share
        state.record.cpu_seconds += completion.cpu_seconds / share
        if not completion.ok:
            self.fail(step_id, completion)
            return self.ready_steps()
        state.record.device = completion.value.device
        return self.part_done(step_id, chunk, offset, completion.value.outputs[position])

    def fold_done(self, unit: Unit, completion: Completion) -> list[Next]:
        """A fold unit came back: the next fold, and the merge if it waited for this one. A
        failed fold fails nothing: the folding stops and the merge does its whole work."""
        state = self.steps[unit.step]
        state.record.seconds += completion.seconds
        state.record.cpu_seconds += completion.cpu_seconds
        if state.phase is StepPhase.SETTLED:
            return []
        if not completion.ok:
            state.record.notes.append(f"the fold of chunk {unit.chunk} failed ({completion.error}); "
                                      "merged without folding")
        state.folds.done(completion)
        queued = self.next_fold(unit.step)
        return queued + (self.ready_steps() if state.phase is StepPhase.MERGE_WAITING else [])

    def next_fold(self, step_id: str) -> list[Next]:
        """The step's next fold unit, when it can be queued now."""
        folds = self.steps[step_id].folds
        work = folds.next_work() if folds else None
        return [] if work is None else [Next(step_id, work.index, work)]

    def merged(self, unit: Unit, completion: Completion) -> list[Next]:
        state = self.steps[unit.step]
        record = state.record
        record.seconds += completion.seconds
        record.cpu_seconds += completion.cpu_seconds
        if completion.ok:
            state.settle(Status.OK)
            record.outputs, record.notes = completion.value.outputs, record.notes + completion.value.notes
            record.device = record.device or "cpu"
            self.emit(events.STEP_FINISHED, file=self.path, step=unit.step, data={"outputs": record.outputs})
        else:
            self.fail(unit.step, completion)
        return self.ready_steps()

    def fail(self, step_id: str, completion: Completion) -> None:
        error = {"message": completion.error, "chunk": completion.unit.chunk}
        if self.keep_tracebacks and completion.traceback:
            error["traceback"] = completion.traceback
        self.steps[step_id].settle(Status.FAILED, error)
        self.steps[step_id].folds = None  # a fold still out comes back to a settled step and is ignored

    # -- the step graph ---------------------------------------------------------------
    def spans_for(self, step) -> list[ChunkSpan]:
        if self.registry.get(step.analyzer).chunked:
            return self.spans
        return [ChunkSpan(0, 0.0, self.audio.duration, 0.0, self.audio.duration)]

    def step_inputs(self, step, at_merge: bool) -> dict[str, Binding | None]:
        """The step's input bindings needed to analyze chunks, or (``at_merge``) to merge them."""
        requires = self.registry.get(step.analyzer).requires
        return {slot: Binding(*binding) if binding else None for slot, binding in step.inputs.items()
                if getattr(requires.get(slot), "at_merge", False) == at_merge}

    def input_state(self, step, bindings: dict[str, Binding | None]) -> str | None:
        """'ready', 'waiting', or the id of a required input step that did not succeed
        (an optional input that failed is passed as None)."""
        requires = self.registry.get(step.analyzer).requires
        for slot, binding in bindings.items():
            if binding and self.steps[binding.step].record.status in (Status.FAILED, Status.SKIPPED) \
                    and not requires[slot].optional:
                return binding.step
        if all(self.steps[b.step].phase is StepPhase.SETTLED for b in bindings.values() if b):
            return "ready"
        return "waiting"

    def input_values(self, bindings: dict[str, Binding | None]) -> dict[str, Any]:
        def value(binding: Binding | None):
            record = self.steps[binding.step].record if binding else None
            return record.outputs.get(binding.output) if record and record.status == Status.OK else None

        return {slot: value(binding) for slot, binding in bindings.items()}

    def ready_steps(self) -> list[Next]:
        """The chunk units of every step whose inputs are all settled, and the merges whose
        at-merge inputs are; the steps whose required inputs failed are skipped (repeated
        until nothing changes: skips cascade)."""
        queued: list[Next] = []
        changed = True
        while changed:
            changed = False
            for step in self.pipeline.steps:
                state = self.steps[step.id]
                if state.phase not in (StepPhase.WAITING, StepPhase.MERGE_WAITING):
                    continue  # its chunks or its merge are out, or it is settled
                merging = state.phase is StepPhase.MERGE_WAITING
                readiness = self.input_state(step, self.step_inputs(step, at_merge=merging))
                if readiness == "waiting":
                    continue
                if readiness != "ready":
                    state.merge = state.folds = None
                    state.settle(Status.SKIPPED, {"message": f"skipped: its input step {readiness!r} did not succeed"})
                    changed = True
                elif merging:
                    if state.folds and state.folds.busy():
                        continue  # fold_done asks again when its last fold is back
                    merge, state.merge = state.merge, None
                    folded, state.folds = state.folds.folded() if state.folds else None, None
                    state.move(StepPhase.MERGING)
                    inputs = self.input_values(self.step_inputs(step, at_merge=True))
                    queued.append(Next(step.id, None, replace(merge, inputs=inputs, folded=folded)))
                else:
                    queued += self.start_step(step)
        return queued

    def start_step(self, step) -> list[Next]:
        values = self.input_values(self.step_inputs(step, at_merge=False))
        spans = self.spans_for(step)
        state = self.steps[step.id]
        state.move(StepPhase.ANALYZING)
        state.chunks_left, state.parts = len(spans), {}
        if self.registry.get(step.analyzer).folds and len(spans) > 1:  # one chunk: nothing to fold ahead of the merge
            state.folds = FoldStream(spans, self.audio.duration)
        gpu = step.lane == "gpu"
        if gpu:
            state.prepares_left = len(spans)
        work = PrepareWork if gpu else AnalyzeWork
        return [Next(step.id, span.index, work(self.audio, span, values)) for span in spans]

    def part_done(self, step_id: str, chunk: int, offset: float, value: Any) -> list[Next]:
        self.preview(step_id, chunk, offset, value)
        state = self.steps[step_id]
        state.parts[chunk] = (offset, value)
        state.chunks_left -= 1
        if state.folds:
            state.folds.add(chunk, offset, value)
        folds = self.next_fold(step_id)
        if state.chunks_left:
            return folds
        parts, state.parts = sorted(state.parts.items()), {}
        state.merge = MergeWork(offsets=tuple((index, offset) for index, (offset, _) in parts),
                                raw=tuple(value for _, (_, value) in parts), duration=self.audio.duration,
                                spans=tuple(self.spans_for(self.pipeline.step(step_id))))
        state.move(StepPhase.MERGE_WAITING)
        return folds + self.ready_steps()

    def preview(self, step_id: str, chunk: int, offset: float, value: Any) -> None:
        """Tell listeners what this chunk found, in track time, before the step is merged."""
        step = self.pipeline.step(step_id)
        cls = self.registry.get(step.analyzer)
        span = next((s for s in self.spans_for(step) if s.index == chunk), None)
        if span is None or not isinstance(value, dict):
            return
        try:
            found = chunk_preview(cls.chunk_outputs or cls.outputs, value, offset, span)
        except (KeyError, TypeError, ValueError):
            return  # malformed output: the merge will say so
        if found:
            self.emit(events.CHUNK_RESULT, file=self.path, step=step_id, chunk=chunk, data={"outputs": found})
