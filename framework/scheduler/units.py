"""Units of work and what comes back for them: typed values that cross process boundaries.

A unit is one of (its ``kind``, a :class:`UnitKind`, follows from the type of its ``work``):

- ``decode`` (:class:`DecodeWork`): read a file once into shared raw float32 arrays (one per
  wanted rate), or report that an up-to-date result already exists (resume);
- ``analyze`` (:class:`AnalyzeWork`): one (file, chunk, step) of a ``cpu`` step;
- ``prepare`` (:class:`PrepareWork`): the CPU-lane half of a ``gpu`` step for one chunk (features);
- ``batch`` (:class:`BatchWork`): prepared chunks of one ``gpu`` step, from any files, through
  the model at once;
- ``fold`` (:class:`FoldWork`): one (file, step, chunk) of a step whose analyzer folds its merge
  chunk by chunk (``Analyzer.fold``): chunk k and its neighbours folded into what the fold of
  chunk k - 1 carried, so that the merge has little left after the last chunk;
- ``aggregate`` (:class:`MergeWork`): one (file, step): merge its chunks (a DBN decode can be
  real work);
- ``export`` (:class:`ExportWork`): one file's result rendered in each format and written (a
  plot takes a second, and a plugin's exporter may fail: neither holds up the coordinator).

Every work item and every completion value is a frozen dataclass: what the coordinator sent
is what the worker ran, and a value never changes after it was made (a retry sends the same
unit again; the executor counts its attempts). The code that runs a unit is in ``runner.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from ..audio import ChunkSpan


class UnitKind(StrEnum):
    """What a unit does (a str: events carry the plain value)."""

    DECODE = "decode"
    ANALYZE = "analyze"
    PREPARE = "prepare"
    BATCH = "batch"
    FOLD = "fold"
    AGGREGATE = "aggregate"
    EXPORT = "export"


DECODE, ANALYZE, PREPARE, BATCH, FOLD, AGGREGATE, EXPORT = (
    UnitKind.DECODE, UnitKind.ANALYZE, UnitKind.PREPARE, UnitKind.BATCH, UnitKind.FOLD, UnitKind.AGGREGATE,
    UnitKind.EXPORT)
SERIAL = (FOLD, AGGREGATE)  # the units a file's result waits for one after another


class Binding(NamedTuple):
    """Where a step's input comes from: ``output`` of the step ``step``."""

    step: str
    output: str


class UnitTimeout(Exception):
    """A unit ran past its ``timeout`` (an inline run interrupts it with SIGALRM)."""


# -- work: what a unit carries ---------------------------------------------------------
@dataclass(frozen=True)
class Existing:
    """A result already on disk that a decode checks before decoding (resume)."""

    path: str
    pipeline_hash: str
    versions: dict[str, str]
    formats: tuple[str, ...] = ("json",)  # every file of each must be there (a set cut short is not)


@dataclass(frozen=True)
class DecodeWork:
    kind: ClassVar[UnitKind] = DECODE
    wanted: frozenset  # (sample rate, layout) pairs the steps want
    existing: Existing | None = None
    stop: Any = None  # a threading.Event that ends a decode running in a thread early (a cancel, a timeout)


@dataclass(frozen=True)
class AnalyzeWork:
    kind: ClassVar[UnitKind] = ANALYZE
    audio: Any  # the file's StoredAudio
    span: ChunkSpan
    inputs: dict[str, Any]  # slot -> value of the inputs needed per chunk


@dataclass(frozen=True)
class PrepareWork(AnalyzeWork):
    kind: ClassVar[UnitKind] = PREPARE


@dataclass(frozen=True)
class BatchWork:
    kind: ClassVar[UnitKind] = BATCH
    items: tuple  # what each chunk's prepare() returned
    inputs: tuple  # each chunk's inputs
    owners: tuple[tuple[str, int], ...]  # (file, chunk) of each item
    offsets: tuple[float, ...]  # track time of each chunk's first sample


@dataclass(frozen=True)
class FoldWork:
    kind: ClassVar[UnitKind] = FOLD
    index: int  # the chunk folded
    offsets: tuple[tuple[int, float], ...]  # (chunk index, time of its first sample): index - 1 .. index + 1
    raw: tuple  # those chunks' outputs, in chunk order
    carry: Any  # what the fold of chunk index - 1 returned as its carry (None for chunk 0)
    duration: float
    spans: tuple[ChunkSpan, ...]  # every chunk of the file


@dataclass(frozen=True)
class MergeWork:
    kind: ClassVar[UnitKind] = AGGREGATE
    offsets: tuple[tuple[int, float], ...]  # (chunk index, time of its first sample) per raw output
    raw: tuple  # each chunk's outputs, in chunk order
    duration: float
    spans: tuple[ChunkSpan, ...]
    inputs: dict[str, Any] = field(default_factory=dict)  # the at-merge inputs, added when they are ready
    folded: Any = None  # mirflow.Folded when every chunk was folded, added when the merge is queued


@dataclass(frozen=True)
class ExportWork:
    kind: ClassVar[UnitKind] = EXPORT
    result: dict[str, Any]
    directory: str
    name: str
    formats: tuple[str, ...]
    audio: Any = None  # the file's StoredAudio, still held: exporters that draw the sound read it


@dataclass(frozen=True)
class Unit:
    """One schedulable piece of work, on the ``cpu`` or the ``gpu`` lane."""

    id: int
    lane: str
    work: Any  # one of the *Work classes above
    file: str | None = None
    step: str | None = None
    chunk: int | None = None
    timeout: float | None = None  # seconds before its worker is killed (resources.unit_timeout)

    @property
    def kind(self) -> UnitKind:
        return self.work.kind


# -- completions: what comes back -----------------------------------------------------
@dataclass(frozen=True)
class Decoded:
    sha256: str | None
    audio: Any = None  # the StoredAudio; None when an up-to-date result exists
    skip: bool = False  # an existing result is up to date


@dataclass(frozen=True)
class Analyzed:
    offset: float  # track time of the chunk's first sample
    outputs: Any  # what analyze() returned (checked by the contract at the merge)


@dataclass(frozen=True)
class Prepared:
    offset: float
    features: Any  # what prepare() returned, for a batch


@dataclass(frozen=True)
class Batched:
    outputs: list
    device: str


@dataclass(frozen=True)
class Merged:
    outputs: dict[str, Any]
    notes: list[str]


@dataclass(frozen=True)
class Exported:
    written: list[str]
    errors: list[dict[str, Any]]  # exporters that failed (stage export): the sink adds them to the result


@dataclass(frozen=True)
class Completion:
    """What came back for a unit: a value (one of the classes above), or an error message."""

    unit: Unit | None
    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the process that ran it, all its threads, while it ran
    worker: int | None = None
    node: str | None = None  # the Ray node that ran it (None: this machine)


def enqueue(queue: deque, unit: Unit) -> None:
    """Append ``unit`` to an executor's queue, a file's merges and folds ahead of chunk work.

    A merge (aggregate) is one serial unit that the file's later steps and its export wait
    for; queued behind the other steps' chunks it ran only after all of them, on one core
    while the others idled (a 60-minute song: the beats merge waited 30 s in the queue, then
    ran alone for 28 s). Ahead of them it overlaps with the remaining chunk work. Merges keep
    their order among themselves; everything else is first come, first served. A fold is on
    the same serial path (each waits for the one before, the merge for the last), so it goes
    there too."""
    if unit.kind not in SERIAL:
        queue.append(unit)
        return
    ahead = 0
    while ahead < len(queue) and queue[ahead].kind in SERIAL:
        ahead += 1
    queue.insert(ahead, unit)
