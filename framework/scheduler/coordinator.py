"""The coordinator: the event loop that admits files, turns each file's plan into units,
hands them to an executor and routes what comes back; it never runs analysis itself.

Its parts, one job each: a :class:`~.plan.FilePlan` per file (the step graph and the
phases), the :class:`~.batcher.GpuBatcher` (the GPU lane's batches across files), the
executor (``executors.py``: where units run) and the :class:`~.sink.ResultSink` (the result
built, exported, and the file's outcome). Files arrive through an inbox: ``run`` fills it
with a list, a server calls :meth:`Scheduler.submit` as uploads come.
"""

from __future__ import annotations

import queue
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import events
from ..events import Event
from ..results import output_names
from .batcher import GpuBatcher, GpuItem
from .claims import scratch_dir
from .plan import FilePlan, FileState, Next
from .records import FileOutcome, Status, StepRecord
from .sink import ResultSink
from .units import (AGGREGATE, ANALYZE, BATCH, DECODE, EXPORT, FOLD, PREPARE, AnalyzeWork, BatchWork, Completion,
                    DecodeWork, Unit)

__all__ = ["FileJob", "FileOutcome", "Scheduler", "Status", "StepRecord", "Terminated"]

AUTO_DECODE_TIMEOUT = 1800.0  # seconds; decoding a 6-hour FLAC takes about a minute


class Terminated(Exception):
    """The run stopped on SIGTERM (after releasing what it held); the CLI exits with 143."""


@dataclass(frozen=True)
class FileJob:
    """A file to analyze, as it waits in a scheduler's inbox: its path and its result's name."""

    path: str
    name: str


class Scheduler:
    """Runs a pipeline over files with an executor; see the module docstring."""

    def __init__(self, pipeline, registry, pm, *, make_executor, output_dir, formats=None,
                 max_files: int | None = None, force: bool = False, plot: bool = False,
                 keep_tracebacks: bool = False, idle_timeout: float | None = None, cpu_workers: int | None = None):
        self.pipeline = pipeline
        self.registry = registry
        self.pm = pm
        self.make_executor = make_executor
        self.sink = ResultSink(pipeline, registry, self.emit, output_dir=output_dir, formats=formats, plot=plot,
                               force=force)
        self.batcher = GpuBatcher(pipeline.resources.gpu_batch_size)
        self.max_files = max_files or pipeline.resources.files_in_flight
        self.keep_tracebacks = keep_tracebacks
        self.cpu_workers = cpu_workers  # CPU slots of its executor
        self.idle_timeout = idle_timeout  # seconds with no file in flight before the workers stop (None: never)
        self.executor = None
        self.busy: dict[str, float] = {}
        self.active: dict[str, FilePlan] = {}  # files in flight, by path
        self.inbox: queue.Queue = queue.Queue()  # FileJobs for submit(); serve() reads it by default
        self.cancel_requests: queue.Queue[str] = queue.Queue()  # from any thread; the loop applies them
        self.cancel_early: set[str] = set()  # cancelled before they were admitted
        self.stop_requested = False  # Ctrl-C or SIGTERM: the loop stops between completions
        self.terminated = False  # the stop came from SIGTERM (the CLI exits 143, not 130)
        self._ids = 0

    @property
    def output_dir(self) -> Path | None:
        return self.sink.output_dir

    @property
    def formats(self) -> tuple[str, ...]:
        return self.sink.formats

    # -- feeding it -------------------------------------------------------------------
    def submit(self, path: str, name: str) -> None:
        """Analyze ``path`` (from any thread) in a serving scheduler; its result is called ``name``."""
        self.inbox.put(FileJob(str(path), name))

    def end_of_input(self) -> None:
        """No more files: ``serve`` returns once the files in flight are done."""
        self.inbox.put(None)

    def cancel(self, path: str) -> None:
        """Stop work on ``path``, from any thread: its queued units are dropped, those running
        finish and are ignored, nothing is written, and it ends with FILE_CANCELLED."""
        self.cancel_requests.put(path)

    # -- events -------------------------------------------------------------------
    def emit(self, kind: str, **fields) -> None:
        self.pm.hook.progress(event=Event(kind, **fields))

    def _unit_started(self, unit: Unit, pid: int, node: str | None = None) -> None:
        self.emit(events.UNIT_STARTED, file=unit.file, step=unit.step, chunk=unit.chunk, lane=unit.lane,
                  data={"kind": unit.kind.value, "pid": pid, **({"node": node} if node else {}),
                        **self._batch_data(unit)})

    @staticmethod
    def _batch_data(unit: Unit) -> dict:
        """A GPU batch belongs to no one file: its events name the files it holds chunks of."""
        if unit.kind != BATCH:
            return {}
        return {"batch_size": len(unit.work.items), "files": sorted({f for f, _ in unit.work.owners})}

    # -- units ----------------------------------------------------------------------
    def _queue(self, plan: FilePlan, work: list[Next]) -> None:
        """Queue ``plan``'s next work on the CPU lane (GPU batches go through _flush_batches)."""
        for step, chunk, item in work:
            covers = item.span.end - item.span.start if isinstance(item, AnalyzeWork) else plan.duration
            plan.outstanding += 1
            self._send(Unit(self._next_id(), "cpu", item, file=plan.path, step=step, chunk=chunk,
                            timeout=self.timeout_for(covers)))

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _send(self, unit: Unit) -> None:
        self.executor.submit(unit)

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

    def serve(self, inbox: queue.Queue | None = None, on_outcome=lambda outcome: None) -> None:
        """Run files as they arrive in ``inbox`` (FileJobs; default: the one :meth:`submit`
        fills) until None arrives and the files in flight are done; ``on_outcome`` gets each
        file's outcome. Its workers stay warm between files, until ``idle_timeout`` seconds
        pass with no file in flight: then they stop (their memory goes back) and the next
        file starts them again."""
        inbox = self.inbox if inbox is None else inbox
        active = self.active
        active.clear()
        self.batcher.clear()
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
                self._apply_cancellations()
                if self.executor is None:
                    continue
                self._flush_batches()
                for completion in self.executor.wait(timeout=1.0):
                    self.complete(completion)
                for plan in [p for p in active.values() if p.finished()]:
                    if self._export(plan):
                        continue
                    del active[plan.path]
                    on_outcome(self.finish(plan))
                if active:
                    idle_since = time.monotonic()
                elif self.executor is not None and self.idle_timeout and \
                        time.monotonic() - idle_since >= self.idle_timeout:
                    self.close_executor()
                    self.executor = None  # the next file makes a new one
                    self.emit(events.WORKERS_STOPPED, data={"idle_seconds": round(time.monotonic() - idle_since, 1)})
        finally:
            restore()
            try:
                if self.executor is not None:
                    self.close_executor()  # it stays, closed, for its statistics (replaced workers, ...)
                for plan in active.values():  # interrupted: release what we held, write nothing half-done
                    if plan.claim:
                        plan.claim.release()
            finally:  # a Ctrl-C while the workers stop must not leave the scratch folder behind
                shutil.rmtree(temp_dir, ignore_errors=True)

    def close_executor(self) -> None:
        """Stop the executor's workers (and the models they hold), keeping its busy seconds."""
        self.executor.close()
        for lane, seconds in self.executor.busy.items():
            self.busy[lane] = self.busy.get(lane, 0.0) + seconds

    def _apply_cancellations(self) -> None:
        while True:
            try:
                path = self.cancel_requests.get_nowait()
            except queue.Empty:
                return
            plan = self.active.get(path)
            if plan is None:
                self.cancel_early.add(path)
            elif plan.state is not FileState.CANCELLED:
                plan.move(FileState.CANCELLED)
                plan.outstanding -= self.executor.drop(path)
                self.batcher.drop(path)

    def admit(self, job: FileJob) -> FileOutcome | None:
        """Claim the file and queue its decode; None, or an outcome if it is skipped."""
        plan = FilePlan(job.path, job.name, self.pipeline, self.registry, self.emit,
                        keep_tracebacks=self.keep_tracebacks)
        skipped = self.sink.claim(plan)
        if skipped:
            return skipped
        self.emit(events.FILE_STARTED, file=plan.path)
        wanted = frozenset((self.registry.get(s.analyzer).sample_rate, self.registry.get(s.analyzer).channels)
                           for s in self.pipeline.steps)
        self.active[plan.path] = plan
        self._queue(plan, [Next(None, None, DecodeWork(wanted, self.sink.existing(plan)))])
        return None

    # -- completions -------------------------------------------------------------------
    def complete(self, completion: Completion) -> None:
        """Tell listeners, then route the completion to its file's plan (or the sink)."""
        unit = completion.unit
        self.emit(events.UNIT_FINISHED if completion.ok else events.UNIT_FAILED, file=unit.file, step=unit.step,
                  chunk=unit.chunk, lane=unit.lane, seconds=completion.seconds,
                  data={"kind": unit.kind.value, "pid": completion.worker,
                        **({"node": completion.node} if completion.node else {}), **self._batch_data(unit),
                        **({} if completion.ok else {"message": completion.error})})
        if unit.kind == BATCH:
            self._complete_batch(completion)
            return
        plan = self.active[unit.file]
        plan.outstanding -= 1
        if plan.state is FileState.CANCELLED:
            if unit.kind == DECODE and completion.ok and completion.value.audio is not None:
                self.executor.release(completion.value.audio)
            return
        if unit.kind == DECODE:
            self._queue(plan, plan.decoded(completion))
        elif unit.kind == EXPORT:
            self.sink.exported(plan, completion)
        elif unit.kind in (ANALYZE, PREPARE):
            work, prepared = plan.chunk_done(unit, completion)
            if prepared is not None:
                self.batcher.add(unit.step, GpuItem(plan.path, unit.chunk, prepared.offset, prepared.features,
                                                    unit.work.inputs))
            self._queue(plan, work)
        elif unit.kind == FOLD:
            self._queue(plan, plan.fold_done(unit, completion))
        elif unit.kind == AGGREGATE:
            self._queue(plan, plan.merged(unit, completion))

    def _complete_batch(self, completion: Completion) -> None:
        for position, (path, _) in enumerate(completion.unit.work.owners):
            plan = self.active.get(path)
            if plan is None or plan.state is FileState.CANCELLED:
                continue
            self._queue(plan, plan.batch_done(completion, position))

    # -- the GPU lane: batches gathered across chunks and files ---------------------
    def _flush_batches(self) -> None:
        """Send full batches at once; a partial one only when no file in flight can still
        add a chunk to it (so a folder of short clips fills batches like one long song)."""
        def could_add(step_id: str) -> bool:
            return any(plan.could_add(step_id) for plan in self.active.values())

        for step_id, batch in self.batcher.ready(could_add):
            covers = len(batch) * self.pipeline.chunking.length
            self._send(Unit(self._next_id(), "gpu", BatchWork(
                items=tuple(item.features for item in batch), inputs=tuple(item.inputs for item in batch),
                owners=tuple((item.file, item.chunk) for item in batch), offsets=tuple(item.offset for item in batch)),
                step=step_id, timeout=self.timeout_for(covers)))

    # -- finishing a file -------------------------------------------------------------
    def _export(self, plan: FilePlan) -> bool:
        """Build the result of a file whose steps are all settled and, when it is written
        anywhere, queue its export unit; True while that export is still to come."""
        if plan.state is not FileState.ANALYZING:
            return False
        export = self.sink.build(plan)
        if export is None:
            plan.move(FileState.DONE)
            return False
        plan.move(FileState.EXPORTING)
        self._queue(plan, [Next(None, None, export)])
        return True

    def finish(self, plan: FilePlan) -> FileOutcome:
        try:
            return self.sink.outcome(plan)
        finally:
            if plan.audio is not None:
                self.executor.release(plan.audio)
            if plan.claim:
                plan.claim.release()
