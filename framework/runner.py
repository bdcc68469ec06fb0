"""The first runner: executes a pipeline over files, one unit at a time, in process.

A unit is one (file, chunk, step) analysis or one (file, step) aggregation. The
functions that run a unit (``analyze_chunks``, ``aggregate_step``) know nothing
about where they run, so the resource-aware scheduler can call the same code in
its CPU and GPU lanes. ``gpu`` steps get their chunks in batches of the pipeline's
``resources.gpu.batch_size``.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events
from .aggregate import Part, Track, default_aggregate, normalize
from .analyzer import Analyzer, AnalyzerError
from .audio import ChunkSpan, Decoded, DecodeError, decode, file_sha256, plan_chunks
from .events import Event
from .hookspecs import hookimpl
from .pipeline import Pipeline
from .results import build_result, output_names, write_outputs


@dataclass
class StepRecord:
    """How one step went on one file: the part of the result that says so."""

    analyzer: str
    version: str
    params: dict[str, Any]
    status: str = "pending"  # ok | failed | skipped
    device: str | None = None
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    ok: bool
    written: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    duration: float = 0.0


class SetupFailure(Exception):
    """An analyzer that could not be set up (missing library, no GPU, ...)."""


def prepare_analyzer(cls: type[Analyzer], params: dict[str, Any], device: str) -> Analyzer:
    """Instantiate and set up an analyzer; a missing library becomes a clear message."""
    analyzer = cls(**params)
    try:
        analyzer.setup(device)
    except ImportError as err:
        hint = getattr(cls, "install_hint", "") or f"pip install {err.name or 'the missing library'}"
        raise SetupFailure(f"{cls.name} cannot import {err.name or 'a library'} ({err}); install it with: {hint}") from None
    except Exception as err:
        raise SetupFailure(f"{cls.name}: setup failed: {err}") from None
    return analyzer


def analyze_chunks(analyzer: Analyzer, chunks: list, inputs: dict[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """Run one analyzer over chunks (batched for ``gpu``); return raw outputs per chunk."""
    if analyzer.resource == "gpu":
        results = []
        for first in range(0, len(chunks), batch_size):
            batch = chunks[first:first + batch_size]
            results.extend(analyzer.analyze_batch(batch, [inputs] * len(batch)))
        return results
    results = []
    for chunk in chunks:
        try:
            results.append(analyzer.analyze(chunk, inputs))
        except Exception as err:
            raise AnalyzerError(f"{type(err).__name__}: {err}", chunk=chunk.index,
                                details={"traceback": traceback.format_exc()}) from err
    return results


def aggregate_step(pm, analyzer: Analyzer, chunks: list, raw: list[dict[str, Any]], track: Track) -> dict[str, Any]:
    """Move chunk outputs to track time and merge them (plugin hook first, then defaults)."""
    kinds = getattr(analyzer, "chunk_outputs", None) or analyzer.outputs
    spans = {span.index: span for span in track.spans}
    parts = []
    for position, (chunk, outputs) in enumerate(zip(chunks, raw)):
        if not isinstance(outputs, dict):
            raise AnalyzerError(f"analyze() returned {type(outputs).__name__}, expected a dict", chunk=chunk.index)
        unknown = set(outputs) - set(kinds)
        if unknown:
            raise AnalyzerError(f"undeclared output {sorted(unknown)[0]!r}", chunk=chunk.index)
        normalized = {name: normalize(kinds[name], value, chunk.start) for name, value in outputs.items()}
        span = spans.get(chunk.index, ChunkSpan(0, 0.0, track.duration, 0.0, track.duration))
        parts.append(Part(span=span, outputs=normalized, last=position == len(chunks) - 1))
    merged = pm.hook.aggregate(analyzer=analyzer, parts=parts, track=track)
    return merged if merged is not None else default_aggregate(analyzer.outputs, parts)


class SerialRunner:
    """Runs every unit in this process, in dependency order; analyzers set up once per run."""

    def __init__(self, pipeline: Pipeline, registry, pm, *, device: str | None = None,
                 output_dir: str | Path = "results", formats: tuple[str, ...] | None = None,
                 keep_tracebacks: bool = False, plot: bool = False):
        self.pipeline = pipeline
        self.registry = registry
        self.pm = pm
        self.device = device or pipeline.resources.device
        self.output_dir = Path(output_dir)
        self.formats = formats or pipeline.formats
        self.keep_tracebacks = keep_tracebacks
        self.plot = plot
        self._analyzers: dict[str, Analyzer | SetupFailure] = {}

    def emit(self, kind: str, **fields) -> None:
        self.pm.hook.progress(event=Event(kind, **fields))

    def analyzer_for(self, step) -> Analyzer:
        """The step's analyzer, set up on first use and reused for every file."""
        if step.id not in self._analyzers:
            cls = self.registry.get(step.analyzer)
            try:
                self._analyzers[step.id] = prepare_analyzer(cls, step.params, self.device)
            except SetupFailure as failure:
                self._analyzers[step.id] = failure
        found = self._analyzers[step.id]
        if isinstance(found, SetupFailure):
            raise found
        return found

    def run(self, paths: list[str]) -> list[FileOutcome]:
        names = output_names(paths)
        self.emit(events.RUN_STARTED, data={"files": len(paths), "pipeline": self.pipeline.name})
        outcomes = [self.run_file(path, names[path]) for path in paths]
        self.emit(events.RUN_FINISHED, data={"files": len(paths), "failed": sum(not o.ok for o in outcomes)})
        return outcomes

    def run_file(self, path: str, name: str) -> FileOutcome:
        began = time.perf_counter()
        self.emit(events.FILE_STARTED, file=path)
        try:
            decoded = decode(path)
            content_hash = file_sha256(path)
        except DecodeError as err:
            self.emit(events.FILE_FAILED, file=path, data={"message": str(err)})
            return FileOutcome(path=path, ok=False, error=str(err), seconds=time.perf_counter() - began)
        chunking = self.pipeline.chunking
        spans = plan_chunks(decoded.duration, enabled=chunking.enabled, min_duration=chunking.min_duration,
                            length=chunking.length, overlap=chunking.overlap)
        self.emit(events.FILE_DECODED, file=path, data={"duration": decoded.duration, "chunks": len(spans)})
        track = Track(path=path, duration=decoded.duration, spans=spans)
        records = self.run_steps(decoded, track)
        result = build_result(
            pipeline=self.pipeline, path=path, decoded=decoded, content_hash=content_hash,
            spans=spans, records=records, registry=self.registry,
        )
        written = write_outputs(result, self.output_dir, name, self.formats)
        if self.plot:
            from .plot import plot_result

            written.append(str(plot_result(result, self.output_dir / f"{name}.png")))
        ok = all(r.status == "ok" or (r.status == "skipped" and self.pipeline.step(sid).optional)
                 for sid, r in records.items())
        seconds = time.perf_counter() - began
        self.emit(events.FILE_FINISHED, file=path, seconds=seconds, data={"ok": ok, "written": written})
        return FileOutcome(path=path, ok=ok, written=written, seconds=seconds, duration=decoded.duration)

    def run_steps(self, decoded: Decoded, track: Track) -> dict[str, StepRecord]:
        records: dict[str, StepRecord] = {}
        for step in self.pipeline.steps:
            cls = self.registry.get(step.analyzer)
            record = StepRecord(analyzer=cls.name, version=cls.version, params=step.params)
            records[step.id] = record
            failed_inputs = [sid for sid, _ in filter(None, step.inputs.values()) if records[sid].status != "ok"]
            if failed_inputs:
                record.status = "skipped"
                record.error = {"message": f"skipped: its input step {failed_inputs[0]!r} did not succeed"}
                continue
            inputs = {slot: (records[b[0]].outputs.get(b[1]) if b else None) for slot, b in step.inputs.items()}
            self.run_step(step, cls, decoded, track, inputs, record)
        return records

    def run_step(self, step, cls, decoded: Decoded, track: Track, inputs: dict, record: StepRecord) -> None:
        began = time.perf_counter()
        lane = cls.resource
        spans = track.spans if cls.chunked else [ChunkSpan(0, 0.0, track.duration, 0.0, track.duration)]
        chunk_index = None
        try:
            analyzer = self.analyzer_for(step)
            chunks = [decoded.chunk(span, cls.sample_rate, cls.channels, self.pipeline.resample_quality) for span in spans]
            for chunk in chunks:
                self.emit(events.UNIT_STARTED, file=track.path, step=step.id, chunk=chunk.index, lane=lane)
            raw = analyze_chunks(analyzer, chunks, inputs, self.pipeline.resources.gpu_batch_size)
            for chunk in chunks:
                self.emit(events.UNIT_FINISHED, file=track.path, step=step.id, chunk=chunk.index, lane=lane)
            record.outputs = aggregate_step(self.pm, analyzer, chunks, raw, track)
            record.status, record.device = "ok", analyzer.device
        except Exception as err:  # a failed unit becomes an error entry, never a crash
            chunk_index = getattr(err, "chunk", None)
            record.status = "failed"
            message = str(err) if isinstance(err, (AnalyzerError, SetupFailure)) else f"{type(err).__name__}: {err}"
            record.error = {"message": message, "chunk": chunk_index}
            if self.keep_tracebacks:
                record.error["traceback"] = getattr(err, "details", {}).get("traceback") or traceback.format_exc()
            self.emit(events.UNIT_FAILED, file=track.path, step=step.id, chunk=chunk_index, lane=lane,
                      data={"message": message})
        record.seconds = time.perf_counter() - began


# --- several files at once: one SerialRunner per spawned worker process ---------------

_worker: SerialRunner | None = None  # set in each worker process by _start_worker


class _Forward:
    """Sends a worker's progress events to the coordinating process."""

    def __init__(self, queue):
        self.queue = queue

    @hookimpl
    def progress(self, event):
        event.data.setdefault("pid", os.getpid())
        self.queue.put(event)


def _start_worker(pipeline_path: str, disabled: tuple[str, ...], options: dict, queue) -> None:
    global _worker
    from .pipeline import load_pipeline
    from .plugin_manager import collect_analyzers, make_plugin_manager

    pm = make_plugin_manager(disabled=disabled)
    registry = collect_analyzers(pm)
    pm.register(_Forward(queue))
    _worker = SerialRunner(load_pipeline(pipeline_path, registry), registry, pm, **options)


def _run_in_worker(path: str, name: str) -> FileOutcome:
    return _worker.run_file(path, name)


def run_files(pipeline: Pipeline, registry, pm, paths: list[str], *, jobs: int = 1,
              disabled: tuple[str, ...] = (), **options) -> list[FileOutcome]:
    """Run ``paths`` with up to ``jobs`` worker processes, one file per worker at a time.

    Workers are spawned (never forked: a forked child of a process that touched CUDA or
    TensorFlow can deadlock), load the plugins and set analyzers up once, and send
    their progress events back to ``pm``'s listeners. One job runs in this process.
    """
    workers = max(1, min(jobs, len(paths)))
    if workers == 1:
        return SerialRunner(pipeline, registry, pm, **options).run(paths)
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    names = output_names(paths)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()

    def forward() -> None:
        while (event := queue.get()) is not None:
            pm.hook.progress(event=event)

    forwarder = threading.Thread(target=forward, daemon=True)
    forwarder.start()
    pm.hook.progress(event=Event(events.RUN_STARTED, data={"files": len(paths), "pipeline": pipeline.name}))
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(str(pipeline.path), tuple(disabled), options, queue)) as pool:
            futures = [pool.submit(_run_in_worker, path, names[path]) for path in paths]
            outcomes = [future.result() for future in futures]
    finally:
        queue.put(None)
        forwarder.join()
    pm.hook.progress(event=Event(events.RUN_FINISHED, data={"files": len(paths), "failed": sum(not o.ok for o in outcomes)}))
    return outcomes
