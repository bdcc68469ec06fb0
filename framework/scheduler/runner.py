"""The code that runs one unit, wherever it runs (a worker process, a Ray actor, inline).

A :class:`UnitRunner` keeps each step's analyzer set up for the life of its process, so a
model loads once per worker, not once per unit. What it returns is a :class:`Completion`
holding one of the typed values of ``units.py``, or an error message.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..aggregate import Part, Track, default_aggregate
from ..analyzer import Analyzer, Fold
from ..audio import ChunkSpan, DecodeError, StoredAudio, check_decodable, store_audio
from ..contract import ContractError, check_outputs
from ..io import file_sha256
from ..results import expected_files, write_outputs
from .units import (DECODE, Analyzed, Batched, Completion, Decoded, Exported, Merged, Prepared, Unit,
                    UnitTimeout)


WARM_WAIT = 120  # seconds the first unit waits for the worker's warm-up imports (a first run compiles some)


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


def track_parts(analyzer: Analyzer, offsets: list[tuple[int, float]], raw: list[Any], track: Track,
                notes: list[str] | None = None) -> list[Part]:
    """Chunk outputs checked against the contract (mirflow.contract) and moved to track time,
    as the merge and the folds get them. ``offsets`` holds (chunk index, time of the chunk's
    first sample) per raw output; ``notes`` collects what the contract's rules cleaned."""
    kinds = analyzer.chunk_outputs or analyzer.outputs
    spans = {span.index: span for span in track.spans}
    final = track.spans[-1].index if track.spans else (offsets[-1][0] if offsets else None)  # the track's last chunk
    parts = []
    for (index, start), outputs in zip(offsets, raw):
        span = spans.get(index, ChunkSpan(0, 0.0, track.duration, 0.0, track.duration))
        where = f"{analyzer.name}: chunk {index}" if len(track.spans or raw) > 1 else analyzer.name
        normalized = check_outputs(kinds, outputs, offset=start, bound=span.end - start, where=where, notes=notes)
        parts.append(Part(span=span, outputs=normalized, last=index == final))
    return parts


def aggregate_step(pm, analyzer: Analyzer, offsets: list[tuple[int, float]], raw: list[Any],
                   track: Track, notes: list[str] | None = None) -> dict[str, Any]:
    """Move chunk outputs to track time and merge them: a plugin's ``aggregate`` hook first
    (to override someone else's merge), then the analyzer's own ``merge``, then the defaults.

    What the analyzer returned per chunk (:func:`track_parts`) and what the hook returns are
    both checked against the contract (mirflow.contract); ``notes`` collects what its rules
    cleaned.
    """
    parts = track_parts(analyzer, offsets, raw, track, notes)
    merged = pm.hook.aggregate(analyzer=analyzer, parts=parts, track=track)
    if merged is None:
        merged = analyzer.merge(parts, track)
    if merged is None:
        merged = default_aggregate(analyzer.outputs, parts)
    return check_outputs(analyzer.outputs, merged, bound=track.duration, where=f"{analyzer.name}: aggregate",
                         notes=notes)


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
        self._warming: threading.Thread | None = None

    def start_warming(self) -> None:
        """:meth:`warm` in a thread of its own, started as the worker starts, while the
        coordinator is still decoding the first file. The first unit waits for it to end
        (:meth:`run`): two threads importing at once can deadlock in Python's import system
        (a package whose modules import each other: one thread holds ``madmom``'s import lock
        and waits for a submodule's, the other the reverse, and Python raises ``_DeadlockError``
        in one of them), so the imports are never concurrent with a unit's own. The wait costs
        nothing the worker would not spend anyway: it imports those libraries for its units."""
        self._warming = threading.Thread(target=self.warm, name="mirflow-warm", daemon=True)
        self._warming.start()

    def run(self, unit: Unit) -> Completion:
        if self._warming is not None:
            self._warming.join(WARM_WAIT)  # past it (a plugin's warm that hangs), the unit goes on
            self._warming = None
        began, cpu = time.perf_counter(), time.process_time()

        def spent() -> dict:
            return {"seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu}

        try:
            value = getattr(self, f"run_{unit.kind.value}")(unit)
            return Completion(unit, True, value, **spent())
        except (SetupFailure, DecodeError, ContractError, UnitTimeout) as err:  # their messages are complete sentences already
            return Completion(unit, False, error=str(err), **spent())
        except Exception as err:
            return Completion(unit, False, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(),
                              **spent())

    def warm(self) -> None:
        """Every step's :meth:`Analyzer.warm`, in pipeline order (in :meth:`start_warming`'s
        thread, while the worker waits for its first unit). A failure is left for the step's
        set-up to report."""
        for step in self.pipeline.steps:
            try:
                self.registry.get(step.analyzer).warm()
            except Exception:  # noqa: BLE001 - the set-up raises it again, as a SetupFailure of the step
                pass

    def analyzer(self, step_id: str, role: str) -> Analyzer:
        """The step's analyzer, set up for ``role`` (``model`` on the device, ``features``
        for the CPU half of a gpu step, ``cpu`` otherwise) on first use."""
        key = (step_id, role)
        if key not in self._analyzers:
            step = self.pipeline.step(step_id)
            cls = self.registry.get(step.analyzer)
            self.setups[key] += 1
            try:
                # An "auto" analyzer in the CPU lane runs on the CPU, whatever the run asked for.
                device = "cpu" if role == "cpu" and cls.resource == "auto" else self.device
                self._analyzers[key] = prepare_analyzer(cls, step.params, device, role)
            except SetupFailure as failure:
                self._analyzers[key] = failure
        found = self._analyzers[key]
        if isinstance(found, SetupFailure):
            raise found
        return found

    def run_decode(self, unit: Unit) -> Decoded:
        path, work = unit.file, unit.work
        check_decodable(path, self.pipeline.resources.max_duration)  # the header before hours of hashing
        existing = work.existing

        def decode() -> StoredAudio:
            return store_audio(path, set(work.wanted), self.temp_dir, self.pipeline.resample_quality,
                               max_duration=self.pipeline.resources.max_duration, stop=work.stop)

        if existing is None:  # no result to compare with: hash while decoding (hashlib releases the GIL)
            with ThreadPoolExecutor(max_workers=1) as pool:
                hashing = pool.submit(file_sha256, path)
                audio = decode()
                try:
                    return Decoded(hashing.result(), audio=audio)
                except BaseException:
                    audio.remove()
                    raise
        sha256 = file_sha256(path)
        if sha256 and up_to_date(existing.path, sha256, existing.pipeline_hash, existing.versions,
                                 existing.formats, self.registry.exporters):
            return Decoded(sha256, skip=True)
        return Decoded(sha256, audio=decode())

    @staticmethod
    def chunk(unit: Unit, analyzer: Analyzer):
        """The unit's chunk as its analyzer wants it (rate, channels, level)."""
        return unit.work.audio.chunk(unit.work.span, analyzer.sample_rate, analyzer.channels,
                                     normalized=analyzer.level_normalized)

    def run_analyze(self, unit: Unit) -> Analyzed:
        analyzer = self.analyzer(unit.step, "cpu")
        chunk = self.chunk(unit, analyzer)
        return Analyzed(chunk.start, analyzer.analyze(chunk, unit.work.inputs))

    def run_prepare(self, unit: Unit) -> Prepared:
        analyzer = self.analyzer(unit.step, "features")
        chunk = self.chunk(unit, analyzer)
        return Prepared(chunk.start, analyzer.prepare(chunk, unit.work.inputs))

    def run_batch(self, unit: Unit) -> Batched:
        analyzer = self.analyzer(unit.step, "model")
        outputs = batch_with_backoff(analyzer, list(unit.work.items), list(unit.work.inputs))
        return Batched(outputs, analyzer.device)

    def run_aggregate(self, unit: Unit) -> Merged:
        step = self.pipeline.step(unit.step)
        analyzer = self.analyzer(unit.step, "features" if step.lane == "gpu" else "cpu")
        work = unit.work
        track = Track(path=unit.file, duration=work.duration, spans=list(work.spans), inputs=work.inputs or {},
                      folded=work.folded)
        notes: list[str] = []
        outputs = aggregate_step(self.pm, analyzer, list(work.offsets), list(work.raw), track, notes)
        return Merged(outputs, notes)

    def run_fold(self, unit: Unit) -> Fold | None:
        """Chunk ``index`` folded into what the fold before it carried (``Analyzer.fold``)."""
        step = self.pipeline.step(unit.step)
        analyzer = self.analyzer(unit.step, "features" if step.lane == "gpu" else "cpu")
        work = unit.work
        track = Track(path=unit.file, duration=work.duration, spans=list(work.spans))
        parts = track_parts(analyzer, list(work.offsets), list(work.raw), track)
        fold = analyzer.fold(work.carry, work.index, parts, track)
        if fold is not None and not isinstance(fold, Fold):  # checked here: the coordinator reads it
            raise ContractError(f"fold() returned {type(fold).__name__}, expected mirflow.Fold or None")
        return fold

    def run_export(self, unit: Unit) -> Exported:
        """The result written in each format: the paths, and the errors of exporters that
        failed (the result itself does not travel back). The file's decoded audio is still
        held (it is released when the file finishes): exporters that draw or measure the
        sound read it instead of decoding the source again."""
        work = unit.work
        track = work.audio.track() if work.audio is not None else None
        written, errors = write_outputs(work.result, work.directory, work.name, work.formats, self.registry.exporters,
                                        track)
        return Exported(written, errors)


def run_in_thread(runner: UnitRunner, unit: Unit, finished, stopper: threading.Event | None = None) -> threading.Event:
    """Run ``unit`` in a daemon thread of this process (the process executor's decodes, the Ray
    driver's decodes and exports) and hand its Completion to ``finished`` there. The returned event
    (``stopper``, if given) ends a decode between two blocks: a cancel, a timeout."""
    stopper = stopper or threading.Event()
    if unit.kind == DECODE:
        unit = replace(unit, work=replace(unit.work, stop=stopper))
    threading.Thread(target=lambda: finished(runner.run(unit)), name=f"mirflow-{unit.kind.value}", daemon=True).start()
    return stopper


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
               formats, exporters) -> bool:
    """Whether an existing result is for the same bytes, pipeline and analyzer versions, and
    complete: every step ok, and every file of every requested format there (a set written
    by a run with fewer formats, or cut short, is not)."""
    path = Path(result_path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        if not (result["source"]["sha256"] == sha256
                and result["pipeline"]["hash"] == pipeline_hash
                and {sid: s["version"] for sid, s in result["steps"].items()} == versions
                and all(s["status"] == "ok" for s in result["steps"].values())):
            return False
        files = expected_files(result, path.parent, path.name.removesuffix(".json"), formats, exporters)
        return files is not None and all(file.is_file() for file in files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
