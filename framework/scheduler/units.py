"""Units of work and the code that runs one, wherever it runs (a worker process or inline).

A unit is one of:

- ``decode``: read a file once into shared raw float32 arrays (one per wanted rate), or
  report that an up-to-date result already exists (resume);
- ``analyze``: one (file, chunk, step) of a ``cpu`` step;
- ``prepare``: the CPU-lane half of a ``gpu`` step for one chunk (features);
- ``batch``: prepared chunks of one ``gpu`` step, from any files, through the model at once;
- ``aggregate``: one (file, step): merge its chunks (a DBN decode can be real work);
- ``export``: one file's result rendered in each format and written (a plot takes a second,
  and a plugin's exporter may fail: neither holds up or stops the coordinator).
"""

from __future__ import annotations

import json
import time
from collections import Counter
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aggregate import Part, Track, default_aggregate
from ..analyzer import Analyzer
from ..audio import ChunkSpan, DecodeError, check_decodable, file_sha256, store_audio
from ..contract import ContractError, check_outputs
from ..results import expected_files, write_outputs

DECODE, ANALYZE, PREPARE, BATCH, AGGREGATE, EXPORT = "decode", "analyze", "prepare", "batch", "aggregate", "export"


class UnitTimeout(Exception):
    """A unit ran past its ``timeout`` (an inline run interrupts it with SIGALRM)."""


class SetupFailure(Exception):
    """An analyzer that could not be set up (missing library, no GPU, ...)."""


def prepare_analyzer(cls: type[Analyzer], params: dict[str, Any], device: str, role: str = "model") -> Analyzer:
    """Instantiate and set up an analyzer (``role`` "features": only the CPU half of a gpu
    analyzer); a missing library becomes a clear message saying what to install."""
    analyzer = cls(**params)
    try:
        if role == "features":
            analyzer.setup_features()
        else:
            analyzer.setup(device)
    except ImportError as err:
        hint = cls.install_command() if (cls.extra or cls.install_hint) else f"pip install {err.name or 'the missing library'}"
        raise SetupFailure(f"{cls.name} cannot import {err.name or 'a library'} ({err}); install it with: {hint}") from None
    except Exception as err:
        raise SetupFailure(f"{cls.name}: setup failed: {err}") from None
    return analyzer


def aggregate_step(pm, analyzer: Analyzer, offsets: list[tuple[int, float]], raw: list[Any],
                   track: Track, notes: list[str] | None = None) -> dict[str, Any]:
    """Move chunk outputs to track time and merge them (plugin hook first, then defaults).

    ``offsets`` holds (chunk index, time of the chunk's first sample) per raw output. What
    the analyzer returned per chunk and what the hook returns are both checked against the
    contract (mirflow.contract); ``notes`` collects what its rules cleaned.
    """
    kinds = analyzer.chunk_outputs or analyzer.outputs
    spans = {span.index: span for span in track.spans}
    parts = []
    for position, ((index, start), outputs) in enumerate(zip(offsets, raw)):
        span = spans.get(index, ChunkSpan(0, 0.0, track.duration, 0.0, track.duration))
        where = f"{analyzer.name}: chunk {index}" if len(raw) > 1 else analyzer.name
        normalized = check_outputs(kinds, outputs, offset=start, bound=span.end - start, where=where, notes=notes)
        parts.append(Part(span=span, outputs=normalized, last=position == len(raw) - 1))
    merged = pm.hook.aggregate(analyzer=analyzer, parts=parts, track=track)
    if merged is None:
        merged = default_aggregate(analyzer.outputs, parts)
    return check_outputs(analyzer.outputs, merged, bound=track.duration, where=f"{analyzer.name}: aggregate",
                         notes=notes)


@dataclass
class Unit:
    """One schedulable piece of work; ``payload`` holds what the runner needs."""

    id: int
    kind: str
    lane: str  # "cpu" or "gpu"
    file: str | None = None
    step: str | None = None
    chunk: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    timeout: float | None = None  # seconds before its worker is killed (resources.unit_timeout)


def enqueue(queue, unit: Unit) -> None:
    """Append ``unit`` to an executor's queue, a file's merges ahead of chunk work.

    A merge (aggregate) is one serial unit that the file's later steps and its export wait
    for; queued behind the other steps' chunks it ran only after all of them, on one core
    while the others idled (a 60-minute song: the beats merge waited 30 s in the queue, then
    ran alone for 28 s). Ahead of them it overlaps with the remaining chunk work. Merges keep
    their order among themselves; everything else is first come, first served."""
    if unit.kind != AGGREGATE:
        queue.append(unit)
        return
    ahead = 0
    while ahead < len(queue) and queue[ahead].kind == AGGREGATE:
        ahead += 1
    queue.insert(ahead, unit)


@dataclass
class Completion:
    """What came back for a unit: a value, or an error message (with traceback)."""

    unit: Unit
    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the process that ran it, all its threads, while it ran
    worker: int | None = None
    node: str | None = None  # the Ray node that ran it (None: this machine)


class UnitRunner:
    """Runs units for one pipeline in one process; analyzers are set up once and kept."""

    def __init__(self, pipeline, registry, pm, *, device: str, temp_dir: str):
        self.pipeline = pipeline
        self.registry = registry
        self.pm = pm
        self.device = device
        self.temp_dir = temp_dir
        self._analyzers: dict[tuple[str, str], Analyzer | SetupFailure] = {}
        self.setups: Counter = Counter()  # (step, role) -> set-ups in this process (kept: one each)

    def run(self, unit: Unit) -> Completion:
        began, cpu = time.perf_counter(), time.process_time()

        def spent() -> dict:
            return {"seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu}

        try:
            value = getattr(self, f"run_{unit.kind}")(unit)
            return Completion(unit, True, value, **spent())
        except (SetupFailure, DecodeError, ContractError, UnitTimeout) as err:  # their messages are complete sentences already
            return Completion(unit, False, error=str(err), **spent())
        except Exception as err:
            return Completion(unit, False, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(),
                              **spent())

    def analyzer(self, step_id: str, role: str) -> Analyzer:
        """The step's analyzer, set up for ``role`` (``model`` on the device, ``features``
        for the CPU half of a gpu step, ``cpu`` otherwise) on first use."""
        key = (step_id, role)
        if key not in self._analyzers:
            step = self.pipeline.step(step_id)
            cls = self.registry.get(step.analyzer)
            self.setups[key] += 1
            try:
                self._analyzers[key] = prepare_analyzer(cls, step.params, self.device, role)
            except SetupFailure as failure:
                self._analyzers[key] = failure
        found = self._analyzers[key]
        if isinstance(found, SetupFailure):
            raise found
        return found

    def run_decode(self, unit: Unit) -> dict[str, Any]:
        path = unit.file
        check_decodable(path, self.pipeline.resources.max_duration)  # the header before hours of hashing
        sha256 = file_sha256(path)
        existing = unit.payload.get("existing")
        if sha256 and existing and up_to_date(existing["path"], sha256, existing["pipeline_hash"], existing["versions"],
                                              existing.get("formats", ("json",)), self.registry.exporters):
            return {"skip": True, "sha256": sha256}
        audio = store_audio(path, unit.payload["wanted"], self.temp_dir, self.pipeline.resample_quality,
                            max_duration=self.pipeline.resources.max_duration, stop=unit.payload.get("stop"))
        return {"skip": False, "sha256": sha256, "audio": audio}

    @staticmethod
    def chunk(unit: Unit, analyzer: Analyzer):
        """The unit's chunk as its analyzer wants it (rate, channels, level)."""
        return unit.payload["audio"].chunk(unit.payload["span"], analyzer.sample_rate, analyzer.channels,
                                           normalized=analyzer.level_normalized)

    def run_analyze(self, unit: Unit) -> tuple[float, dict[str, Any]]:
        analyzer = self.analyzer(unit.step, "cpu")
        chunk = self.chunk(unit, analyzer)
        return chunk.start, analyzer.analyze(chunk, unit.payload["inputs"])

    def run_prepare(self, unit: Unit) -> tuple[float, Any]:
        analyzer = self.analyzer(unit.step, "features")
        chunk = self.chunk(unit, analyzer)
        return chunk.start, analyzer.prepare(chunk, unit.payload["inputs"])

    def run_batch(self, unit: Unit) -> dict[str, Any]:
        analyzer = self.analyzer(unit.step, "model")
        outputs = batch_with_backoff(analyzer, unit.payload["items"], unit.payload["inputs"])
        return {"outputs": outputs, "device": analyzer.device}

    def run_aggregate(self, unit: Unit) -> dict[str, Any]:
        step = self.pipeline.step(unit.step)
        cls = self.registry.get(step.analyzer)
        analyzer = self.analyzer(unit.step, "features" if cls.resource == "gpu" else "cpu")
        track = Track(path=unit.file, duration=unit.payload["duration"], spans=unit.payload["spans"],
                      inputs=unit.payload.get("inputs") or {})
        notes: list[str] = []
        outputs = aggregate_step(self.pm, analyzer, unit.payload["offsets"], unit.payload["raw"], track, notes)
        return {"outputs": outputs, "notes": notes}

    def run_export(self, unit: Unit) -> dict[str, Any]:
        """The result written in each format; returned too, with the exporters' errors in it."""
        result, to = unit.payload["result"], unit.payload
        written = write_outputs(result, to["directory"], to["name"], to["formats"], self.registry.exporters)
        return {"result": result, "written": written}


def is_out_of_memory(error: Exception) -> bool:
    """GPU allocators say it in many ways; TensorFlow raises ResourceExhaustedError."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(mark in text for mark in ("resourceexhausted", "out of memory", "oom when allocating"))


def batch_with_backoff(analyzer: Analyzer, items: list, inputs: list) -> list:
    """Run a batch; on a GPU out-of-memory error halve it and retry, down to one item."""
    try:
        outputs = analyzer.analyze_batch(items, inputs)
    except Exception as err:
        if not is_out_of_memory(err) or len(items) == 1:
            raise
        half = len(items) // 2
        return (batch_with_backoff(analyzer, items[:half], inputs[:half])
                + batch_with_backoff(analyzer, items[half:], inputs[half:]))
    if len(outputs) != len(items):
        raise ValueError(f"analyze_batch returned {len(outputs)} results for {len(items)} items")
    return outputs


def up_to_date(result_path: str, sha256: str, pipeline_hash: str, versions: dict[str, str],
               formats=("json",), exporters=None) -> bool:
    """Whether an existing result is for the same bytes, pipeline and analyzer versions, and
    complete: every step ok, and every file of every requested format there (a set written
    by a run with fewer formats, or cut short, is not)."""
    from ..exports import EXPORTERS

    path = Path(result_path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        if not (result["source"]["sha256"] == sha256
                and result["pipeline"]["hash"] == pipeline_hash
                and {sid: s["version"] for sid, s in result["steps"].items()} == versions
                and all(s["status"] == "ok" for s in result["steps"].values())):
            return False
        files = expected_files(result, path.parent, path.name.removesuffix(".json"), formats, exporters or EXPORTERS)
        return files is not None and all(file.is_file() for file in files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
