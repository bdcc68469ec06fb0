"""The coordinator: turns files into units, follows their dependencies, batches the GPU
lane across files, bounds how many files are in flight, and writes each result the
moment its file is done. It never runs analysis itself; an executor does.
"""

from __future__ import annotations

import queue
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import events
from ..aggregate import chunk_preview
from ..audio import ChunkSpan, plan_chunks
from ..events import Event
from ..results import build_result, output_names
from .claims import Claim, scratch_dir
from .units import AGGREGATE, ANALYZE, BATCH, DECODE, EXPORT, PREPARE, Completion, Unit


AUTO_DECODE_TIMEOUT = 1800.0  # seconds; decoding a 6-hour FLAC takes about a minute


class Terminated(Exception):
    """The run stopped on SIGTERM (after releasing what it held); the CLI exits with 143."""


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
class StepState:
    """One step on one file: its record (what the result says) and where its units stand."""

    record: StepRecord
    started: bool = False  # its chunk units were queued
    chunks_left: int = 0  # chunks not analyzed yet
    prepares_left: int = 0  # a gpu step's prepare units still out
    parts: dict[int, tuple[float, Any]] = field(default_factory=dict)  # chunk -> (offset, raw outputs)
    merge: dict | None = None  # its aggregate payload, waiting for at-merge inputs


@dataclass
class GpuItem:
    """A chunk prepared in the CPU lane, waiting for a batch of its gpu step."""

    file: str
    chunk: int
    offset: float  # track time of the chunk's first sample
    features: Any  # what the analyzer's prepare() returned
    inputs: dict


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


@dataclass
class FileJob:
    path: str
    name: str
    began: float = 0.0
    claim: Claim | None = None
    audio: Any = None
    sha256: str | None = None
    spans: list[ChunkSpan] = field(default_factory=list)
    steps: dict[str, StepState] = field(default_factory=dict)  # step id -> its state, once decoded
    outstanding: int = 0  # units of this file submitted and not yet completed
    error: str | None = None  # the file could not be decoded
    up_to_date: bool = False  # an existing result already matches (resume)
    cancelled: bool = False  # Scheduler.cancel: its completions are ignored, nothing is written
    result: dict[str, Any] | None = None  # built when every step is done
    exporting: bool = False  # its export unit was submitted
    written: list[str] = field(default_factory=list)


class Scheduler:
    """Runs a pipeline over files with an executor; see the module docstring."""

    def __init__(self, pipeline, registry, pm, *, make_executor, output_dir, formats=None,
                 max_files: int | None = None, force: bool = False, plot: bool = False,
                 keep_tracebacks: bool = False, idle_timeout: float | None = None):
        self.pipeline = pipeline
        self.registry = registry
        self.pm = pm
        self.make_executor = make_executor
        self.output_dir = Path(output_dir) if output_dir is not None else None  # None: results as values only
        self.formats = tuple(formats if formats is not None else pipeline.formats) if self.output_dir else ()
        if plot and self.output_dir and "png" not in self.formats:
            self.formats += ("png",)
        self.batch_size = pipeline.resources.gpu_batch_size
        self.max_files = max_files or pipeline.resources.files_in_flight
        self.force = force
        self.keep_tracebacks = keep_tracebacks
        self.cpu_workers: int | None = None  # CPU slots of its executor (build_scheduler sets it)
        self.idle_timeout = idle_timeout  # seconds with no file in flight before the workers stop (None: never)
        self.executor = None
        self._ids = 0
        self.busy: dict[str, float] = {}
        self.cancel_requests: queue.Queue[str] = queue.Queue()  # from any thread; the loop applies them
        self.cancel_early: set[str] = set()  # cancelled before they were admitted

    # -- events -------------------------------------------------------------------
    def emit(self, kind: str, **fields) -> None:
        self.pm.hook.progress(event=Event(kind, **fields))

    def _unit_started(self, unit: Unit, pid: int, node: str | None = None) -> None:
        self.emit(events.UNIT_STARTED, file=unit.file, step=unit.step, chunk=unit.chunk, lane=unit.lane,
                  data={"kind": unit.kind, "pid": pid, **({"node": node} if node else {}), **self._batch_data(unit)})

    @staticmethod
    def _batch_data(unit: Unit) -> dict:
        """A GPU batch belongs to no one file: its events name the files it holds chunks of."""
        if unit.kind != BATCH:
            return {}
        return {"batch_size": len(unit.payload["items"]), "files": sorted({f for f, _ in unit.payload["owners"]})}

    def submit(self, job: FileJob, kind: str, **fields) -> None:
        """Queue a unit of ``job`` on the CPU lane (GPU batches go through flush_batches)."""
        self._ids += 1
        job.outstanding += 1
        payload = fields.get("payload", {})
        covers = (payload["span"].end - payload["span"].start if "span" in payload
                  else job.audio.duration if job.audio is not None else None)
        self.executor.submit(Unit(self._ids, kind, "cpu", file=job.path, timeout=self.timeout_for(covers), **fields))

    def timeout_for(self, audio_seconds: float | None) -> float:
        """``resources.unit_timeout``, or by default 300 s (setting models up, compiling) plus 4 s
        per second of audio the unit covers: bounds a hung analyzer without cutting a long merge
        short. A decode (its duration not known yet) gets AUTO_DECODE_TIMEOUT."""
        if self.pipeline.resources.unit_timeout is not None:
            return self.pipeline.resources.unit_timeout
        if audio_seconds is None:
            return AUTO_DECODE_TIMEOUT
        return 300.0 + 4.0 * audio_seconds

    # -- the loop -----------------------------------------------------------------
    stop_requested = False
    terminated = False  # the stop came from SIGTERM (the CLI exits 143, not 130)

    def _stop_on_interrupt(self):
        """Ctrl-C and SIGTERM (what ``kill``, ``timeout`` and service managers send) set a flag
        that the loop checks between completions, so that a stop never lands inside a result
        write; finished results stay, claims and scratch audio are released. A second Ctrl-C
        interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.terminated = self.terminated or signum == signal.SIGTERM

        for number in previous:
            signal.signal(number, handler)
        return lambda: [signal.signal(number, saved) for number, saved in previous.items()]

    def run(self, paths: list[str]) -> list[FileOutcome]:
        """Run the pipeline over ``paths``; their outcomes, in the same order."""
        names = output_names(paths)
        inbox: queue.Queue = queue.Queue()
        for path in paths:
            inbox.put(FileJob(path, names[path]))
        inbox.put(None)
        outcomes: dict[str, FileOutcome] = {}
        self.emit(events.RUN_STARTED, data={"files": len(paths), "pipeline": self.pipeline.name})
        self.serve(inbox, lambda outcome: outcomes.__setitem__(outcome.path, outcome))
        ordered = [outcomes[path] for path in paths]
        self.emit(events.RUN_FINISHED, data={"files": len(paths), "failed": sum(not o.ok for o in ordered),
                                             "busy": self.busy})
        return ordered

    def serve(self, inbox: queue.Queue, on_outcome=lambda outcome: None) -> None:
        """Run files as they arrive in ``inbox`` (FileJobs) until None arrives and the files in
        flight are done; ``on_outcome`` gets each file's outcome. ``run`` fills the inbox with
        a list; a server puts uploads there as they come, so its workers stay warm, until
        ``idle_timeout`` seconds pass with no file in flight: then they stop (their memory goes
        back) and the next file starts them again."""
        self.active: dict[str, FileJob] = {}
        active = self.active
        self.gpu_items: dict[str, list[GpuItem]] = {}  # gpu step -> prepared chunks waiting for a batch
        temp_dir = scratch_dir("mirflow-audio-")
        self.busy = {}
        restore = self._stop_on_interrupt()
        closed = False
        idle_since = time.monotonic()
        try:
            while not closed or active:
                if self.stop_requested:
                    raise Terminated() if self.terminated else KeyboardInterrupt
                while not closed and len(active) < self.max_files:
                    try:  # with nothing in flight, wait here for work instead of spinning
                        job = inbox.get(block=not active, timeout=0.5)
                    except queue.Empty:
                        break
                    if job is None:
                        closed = True
                    elif job.path in self.cancel_early:
                        self.cancel_early.discard(job.path)
                        self.emit(events.FILE_CANCELLED, file=job.path, data={"message": "cancelled"})
                        on_outcome(FileOutcome(job.path, ok=False, error=f"{job.path}: cancelled"))
                    else:
                        if self.executor is None:
                            self.executor = self.make_executor(temp_dir, self._unit_started)
                            self.emit(events.WORKERS_STARTED, data={"workers": self.cpu_workers})
                        skipped = self.admit(job)
                        if skipped:
                            on_outcome(skipped)
                        else:
                            active[job.path] = job
                self.apply_cancellations()
                if self.executor is None:
                    continue
                self.flush_batches()
                for completion in self.executor.wait(timeout=1.0):
                    self.complete(completion)
                for job in [j for j in active.values() if self.finished(j)]:
                    if self.export(job):
                        continue
                    del active[job.path]
                    on_outcome(self.finish(job))
                if active:
                    idle_since = time.monotonic()
                elif self.executor is not None and self.idle_timeout and \
                        time.monotonic() - idle_since >= self.idle_timeout:
                    self.close_executor()
                    self.executor = None  # the next file makes a new one
                    self.emit(events.WORKERS_STOPPED, data={"idle_seconds": round(time.monotonic() - idle_since, 1)})
        finally:
            restore()
            if self.executor is not None:
                self.close_executor()  # it stays, closed, for its statistics (replaced workers, ...)
            for job in active.values():  # interrupted: release what we held, write nothing half-done
                if job.claim:
                    job.claim.release()
            shutil.rmtree(temp_dir, ignore_errors=True)

    def close_executor(self) -> None:
        """Stop the executor's workers (and the models they hold), keeping its busy seconds."""
        self.executor.close()
        for lane, seconds in self.executor.busy.items():
            self.busy[lane] = self.busy.get(lane, 0.0) + seconds

    # -- cancelling a file ------------------------------------------------------------
    def cancel(self, path: str) -> None:
        """Stop work on ``path``, from any thread: its queued units are dropped, those running
        finish and are ignored, nothing is written, and it ends with FILE_CANCELLED."""
        self.cancel_requests.put(path)

    def apply_cancellations(self) -> None:
        while True:
            try:
                path = self.cancel_requests.get_nowait()
            except queue.Empty:
                return
            job = self.active.get(path)
            if job is None:
                self.cancel_early.add(path)
            elif not job.cancelled:
                job.cancelled = True
                job.outstanding -= self.executor.drop(path)
                for items in self.gpu_items.values():
                    items[:] = [item for item in items if item.file != path]

    def admit(self, job: FileJob) -> FileOutcome | None:
        """Claim the file and queue its decode; None, or an outcome if it is skipped."""
        job.began = time.perf_counter()
        result_path = self.output_dir / f"{job.name}.json" if self.output_dir else None
        if self.output_dir:
            job.claim = Claim.take(self.output_dir, job.name)
            if job.claim is None:
                self.emit(events.FILE_SKIPPED, file=job.path, data={"reason": "claimed by another mirflow run"})
                return FileOutcome(job.path, ok=True, skipped="claimed by another mirflow run")
        self.emit(events.FILE_STARTED, file=job.path)
        wanted = {(self.registry.get(s.analyzer).sample_rate, self.registry.get(s.analyzer).channels)
                  for s in self.pipeline.steps}
        existing = None if self.force or result_path is None or not result_path.exists() else {
            "path": str(result_path), "pipeline_hash": self.pipeline.hash,
            "versions": {s.id: self.registry.get(s.analyzer).version for s in self.pipeline.steps},
            "formats": self.formats}
        self.submit(job, DECODE, payload={"wanted": wanted, "existing": existing})
        return None

    def complete(self, completion: Completion) -> None:
        unit = completion.unit
        self.emit(events.UNIT_FINISHED if completion.ok else events.UNIT_FAILED, file=unit.file, step=unit.step,
                  chunk=unit.chunk, lane=unit.lane, seconds=completion.seconds,
                  data={"kind": unit.kind, "pid": completion.worker,
                        **({"node": completion.node} if completion.node else {}), **self._batch_data(unit),
                        **({} if completion.ok else {"message": completion.error})})
        if unit.kind == BATCH:
            self.complete_batch(completion)
            return
        job = self.active[unit.file]
        job.outstanding -= 1
        if job.cancelled:
            if unit.kind == DECODE and completion.ok and completion.value.get("audio") is not None:
                self.executor.release(completion.value["audio"])
            return
        if unit.kind == DECODE:
            self.decoded(job, completion)
        elif unit.kind == EXPORT:
            if completion.ok:
                job.result, job.written = completion.value["result"], completion.value["written"]
            else:
                job.error = f"{job.path}: writing the result failed: {completion.error}"
        elif unit.kind in (ANALYZE, PREPARE):
            self.chunk_done(job, unit, completion)
        elif unit.kind == AGGREGATE:
            record = job.steps[unit.step].record
            record.seconds += completion.seconds
            record.cpu_seconds += completion.cpu_seconds
            if completion.ok:
                record.status, record.outputs = Status.OK, completion.value["outputs"]
                record.notes = completion.value["notes"]
                record.device = record.device or "cpu"
                self.emit(events.STEP_FINISHED, file=job.path, step=unit.step, data={"outputs": record.outputs})
            else:
                self.fail(job, unit.step, completion)
            self.start_ready_steps(job)

    def decoded(self, job: FileJob, completion: Completion) -> None:
        if not completion.ok:
            job.error = completion.error if completion.error.startswith(job.path) else f"{job.path}: {completion.error}"
            return
        value = completion.value
        job.sha256 = value["sha256"]
        if value["skip"]:
            job.up_to_date = True
            return
        job.audio = value["audio"]
        chunking = self.pipeline.chunking
        job.spans = plan_chunks(job.audio.duration, enabled=chunking.enabled, min_duration=chunking.min_duration,
                                length=chunking.length, overlap=chunking.overlap)
        self.emit(events.FILE_DECODED, file=job.path, data={"duration": job.audio.duration, "chunks": len(job.spans),
                                                             "spans": [s.__dict__ for s in job.spans],
                                                             "notes": list(job.audio.notes)})
        for step in self.pipeline.steps:
            cls = self.registry.get(step.analyzer)
            record = StepRecord(analyzer=cls.name, version=cls.version, params=step.params)
            if getattr(step, "unavailable", None):  # an optional step that cannot run here
                record.status = Status.SKIPPED
                record.error = {"message": f"skipped: {step.unavailable}"}
            job.steps[step.id] = StepState(record)
        self.start_ready_steps(job)

    def spans_for(self, job: FileJob, step) -> list[ChunkSpan]:
        if self.registry.get(step.analyzer).chunked:
            return job.spans
        return [ChunkSpan(0, 0.0, job.audio.duration, 0.0, job.audio.duration)]

    def step_inputs(self, step, at_merge: bool) -> dict:
        """The step's input bindings needed to analyze chunks, or (``at_merge``) to merge them."""
        requires = self.registry.get(step.analyzer).requires
        return {slot: binding for slot, binding in step.inputs.items()
                if getattr(requires.get(slot), "at_merge", False) == at_merge}

    def input_state(self, job: FileJob, step, bindings: dict) -> str | None:
        """'ready', 'waiting', or the id of a required input step that did not succeed
        (an optional input that failed is passed as None)."""
        requires = self.registry.get(step.analyzer).requires
        for slot, binding in bindings.items():
            if binding and job.steps[binding[0]].record.status in (Status.FAILED, Status.SKIPPED) \
                    and not requires[slot].optional:
                return binding[0]
        if all(job.steps[b[0]].record.status != Status.PENDING for b in bindings.values() if b):
            return "ready"
        return "waiting"

    def input_values(self, job: FileJob, bindings: dict) -> dict:
        def value(binding):
            record = job.steps[binding[0]].record if binding else None
            return record.outputs.get(binding[1]) if record and record.status == Status.OK else None

        return {slot: value(binding) for slot, binding in bindings.items()}

    def start_ready_steps(self, job: FileJob) -> None:
        """Queue the chunk units of every step whose inputs are all done, and the merges
        whose at-merge inputs are; skip the steps whose required inputs failed (repeated
        until nothing changes: skips cascade)."""
        changed = True
        while changed:
            changed = False
            for step in self.pipeline.steps:
                state = job.steps[step.id]
                record = state.record
                if record.status != Status.PENDING:
                    continue
                merging = state.merge is not None
                if state.started and not merging:
                    continue  # its chunks or its merge are running
                readiness = self.input_state(job, step, self.step_inputs(step, at_merge=merging))
                if readiness == "waiting":
                    continue
                if readiness != "ready":
                    record.status = Status.SKIPPED
                    record.error = {"message": f"skipped: its input step {readiness!r} did not succeed"}
                    state.merge = None
                    changed = True
                elif merging:
                    payload, state.merge = state.merge, None
                    payload["inputs"] = self.input_values(job, self.step_inputs(step, at_merge=True))
                    self.submit(job, AGGREGATE, step=step.id, payload=payload)
                else:
                    self.start_step(job, step)

    def start_step(self, job: FileJob, step) -> None:
        values = self.input_values(job, self.step_inputs(step, at_merge=False))
        spans = self.spans_for(job, step)
        state = job.steps[step.id]
        state.started, state.chunks_left, state.parts = True, len(spans), {}
        gpu = self.registry.get(step.analyzer).resource == "gpu"
        if gpu:
            state.prepares_left = len(spans)
        for span in spans:
            self.submit(job, PREPARE if gpu else ANALYZE, step=step.id, chunk=span.index,
                        payload={"audio": job.audio, "span": span, "inputs": values})

    def chunk_done(self, job: FileJob, unit: Unit, completion: Completion) -> None:
        state = job.steps[unit.step]
        state.record.seconds += completion.seconds
        state.record.cpu_seconds += completion.cpu_seconds
        if unit.kind == PREPARE:
            state.prepares_left -= 1
        if state.record.status != Status.PENDING:
            return
        if not completion.ok:
            self.fail(job, unit.step, completion)
            self.start_ready_steps(job)
            return
        offset, value = completion.value
        if unit.kind == PREPARE:
            self.gpu_items.setdefault(unit.step, []).append(
                GpuItem(job.path, unit.chunk, offset, value, unit.payload["inputs"]))
            return
        self.part_done(job, unit.step, unit.chunk, offset, value)

    def part_done(self, job: FileJob, step_id: str, chunk: int, offset: float, value: Any) -> None:
        self.preview(job, step_id, chunk, offset, value)
        state = job.steps[step_id]
        state.parts[chunk] = (offset, value)
        state.chunks_left -= 1
        if state.chunks_left == 0:
            parts, state.parts = sorted(state.parts.items()), {}
            spans = self.spans_for(job, self.pipeline.step(step_id))
            state.merge = {
                "offsets": [(index, offset) for index, (offset, _) in parts],
                "raw": [value for _, (_, value) in parts],
                "duration": job.audio.duration, "spans": spans}
            self.start_ready_steps(job)

    def preview(self, job: FileJob, step_id: str, chunk: int, offset: float, value: Any) -> None:
        """Tell listeners what this chunk found, in track time, before the step is merged."""
        cls = self.registry.get(self.pipeline.step(step_id).analyzer)
        span = next((s for s in self.spans_for(job, self.pipeline.step(step_id)) if s.index == chunk), None)
        if span is None or not isinstance(value, dict):
            return
        try:
            found = chunk_preview(cls.chunk_outputs or cls.outputs, value, offset, span)
        except (KeyError, TypeError, ValueError):
            return  # malformed output: the merge will say so
        if found:
            self.emit(events.CHUNK_RESULT, file=job.path, step=step_id, chunk=chunk, data={"outputs": found})

    def fail(self, job: FileJob, step_id: str, completion: Completion) -> None:
        record = job.steps[step_id].record
        record.status = Status.FAILED
        record.error = {"message": completion.error, "chunk": completion.unit.chunk}
        if self.keep_tracebacks and completion.traceback:
            record.error["traceback"] = completion.traceback

    # -- the GPU lane: batches gathered across chunks and files ---------------------
    def flush_batches(self) -> None:
        """Send full batches at once; a partial one only when no file in flight can still
        add a chunk to it (so a folder of short clips fills batches like one long song)."""
        for step_id, items in self.gpu_items.items():
            more = any(self.could_add(job, step_id) for job in self.active.values())
            while len(items) >= self.batch_size or (items and not more):
                batch, items[:] = items[:self.batch_size], items[self.batch_size:]
                self._ids += 1
                covers = len(batch) * self.pipeline.chunking.length
                self.executor.submit(Unit(self._ids, BATCH, "gpu", step=step_id, timeout=self.timeout_for(covers), payload={
                    "items": [item.features for item in batch],
                    "inputs": [item.inputs for item in batch],
                    "owners": [(item.file, item.chunk) for item in batch],
                    "offsets": [item.offset for item in batch]}))

    def could_add(self, job: FileJob, step_id: str) -> bool:
        """Whether ``job`` may still prepare chunks for the gpu step ``step_id``."""
        if job.error or job.up_to_date or job.cancelled:
            return False
        if not job.steps:
            return True  # still decoding
        state = job.steps[step_id]
        if state.record.status != Status.PENDING:
            return False
        if not state.started:
            return True  # not started: waits for its inputs
        return state.prepares_left > 0

    def complete_batch(self, completion: Completion) -> None:
        unit = completion.unit
        owners = unit.payload["owners"]
        for position, (path, chunk) in enumerate(owners):
            job = self.active.get(path)
            if job is None or job.cancelled or job.steps[unit.step].record.status != Status.PENDING:
                continue
            record = job.steps[unit.step].record
            record.seconds += completion.seconds / len(owners)
            record.cpu_seconds += completion.cpu_seconds / len(owners)
            if completion.ok:
                record.device = completion.value["device"]
                self.part_done(job, unit.step, chunk, unit.payload["offsets"][position],
                               completion.value["outputs"][position])
            else:
                self.fail(job, unit.step, completion)
                self.start_ready_steps(job)

    # -- finishing a file -------------------------------------------------------------
    def finished(self, job: FileJob) -> bool:
        if job.outstanding:
            return False
        if job.error or job.up_to_date or job.cancelled:
            return True
        return bool(job.steps) and all(s.record.status != Status.PENDING for s in job.steps.values())

    def export(self, job: FileJob) -> bool:
        """Build the result of a file whose steps are all done and, when it is written anywhere,
        queue its export unit; True while that export is still to come."""
        if job.error or job.up_to_date or job.cancelled or job.exporting:
            return False
        job.exporting = True
        job.result = build_result(pipeline=self.pipeline, path=job.path, source=job.audio, content_hash=job.sha256,
                                  spans=job.spans, records={sid: s.record for sid, s in job.steps.items()},
                                  registry=self.registry)
        if not self.formats:
            return False
        self.submit(job, EXPORT, payload={"result": job.result, "directory": str(self.output_dir),
                                          "name": job.name, "formats": self.formats})
        return True

    def finish(self, job: FileJob) -> FileOutcome:
        seconds = time.perf_counter() - job.began
        try:
            if job.cancelled:
                self.emit(events.FILE_CANCELLED, file=job.path, data={"message": "cancelled"})
                return FileOutcome(job.path, ok=False, error=f"{job.path}: cancelled", seconds=seconds)
            if job.error:
                self.emit(events.FILE_FAILED, file=job.path, data={"message": job.error})
                return FileOutcome(job.path, ok=False, error=job.error, seconds=seconds)
            if job.up_to_date:
                self.emit(events.FILE_SKIPPED, file=job.path, data={"reason": "result is up to date"})
                return FileOutcome(job.path, ok=True, skipped="result is up to date", seconds=seconds,
                                   written=[str(self.output_dir / f"{job.name}.json")])
            ok = not job.result["errors"] or all(
                error.get("step") and self.pipeline.step(error["step"]).optional for error in job.result["errors"])
            self.emit(events.FILE_FINISHED, file=job.path, seconds=seconds,
                      data={"ok": ok, "written": job.written, "duration": job.audio.duration, "result": job.result})
            return FileOutcome(job.path, ok=ok, written=job.written, seconds=seconds, duration=job.audio.duration,
                               result=job.result)
        finally:
            if job.audio is not None:
                self.executor.release(job.audio)
            if job.claim:
                job.claim.release()
