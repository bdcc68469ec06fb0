"""One executor base: the :class:`Executor` protocol and the :class:`SlotPool` behind every backend.

The coordinator sees only the protocol. The pool holds what every backend needs: the queues
(a file's merges ahead of chunk work), the slots (a worker process, a Ray actor, a driver
thread, or this process) and the unit each runs, deadlines (a unit past its timeout has its
slot killed and fails alone), a retry (a unit whose worker died is tried once more, then
fails), busy seconds per lane, failed starts (workers that keep dying before they are ready
stop the run), and dropping a cancelled file's units.

A backend supplies only how a slot starts (``_start``), how a unit is sent to it
(``_send``), how it learns what happened (``_poll``: :class:`Ready`, :class:`Done`,
:class:`Died`, :class:`StartFailed`) and how a slot is killed (``_kill``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .units import DECODE, Completion, Unit, enqueue

MAX_ATTEMPTS = 2  # a unit whose worker died is tried once more
MAX_FAILED_STARTS = 3  # workers in a row that die before they are ready stop the run


class WorkersCannotStart(RuntimeError):
    """Workers die before they are ready, again and again (the run stops)."""


class Executor(Protocol):
    """Where units run. ``busy`` holds the seconds each lane ("cpu", "gpu") was busy."""

    busy: dict[str, float]

    def submit(self, unit: Unit) -> None: ...

    def pending(self) -> int:
        """Units queued or running."""

    def drop(self, file: str) -> int:
        """Forget the queued units of ``file``; how many units will not complete."""

    def wait(self, timeout: float | None = None) -> list[Completion]:
        """What completed within ``timeout`` seconds (an empty list when nothing is pending)."""

    def release(self, audio) -> None:
        """A finished file's decoded audio is no longer needed."""

    def close(self) -> None: ...


@dataclass
class Slot:
    """One place a unit runs, and the unit it runs (at most one: the pool keeps the queue)."""

    lane: str  # the queue it takes units from: "cpu", "gpu" (the Ray driver's: "decode", "export")
    index: int  # its place in the lane (a worker's numba cache is named after it)
    killable: bool = True  # a unit past its deadline can be stopped by killing the slot
    counted: bool = True  # its units count in the lanes' busy seconds
    handle: Any = None  # the backend's: a worker process, a Ray actor, a driver thread
    token: Any = None  # the backend's: what it waits on (a Ray object reference)
    ready: bool = False  # started and able to take a unit
    pid: int | None = None
    node: str | None = None  # the Ray node it runs on
    unit: Unit | None = None
    started_at: float = 0.0  # when its unit (or, before it is ready, the slot) started


@dataclass(frozen=True)
class Ready:
    slot: Slot
    pid: int
    node: str | None = None


@dataclass(frozen=True)
class Done:
    slot: Slot
    completion: Completion


@dataclass(frozen=True)
class Died:
    """The slot's worker died while ready; ``message`` is its unit's error if it dies twice."""

    slot: Slot
    message: str


@dataclass(frozen=True)
class StartFailed:
    """The slot's worker died before it was ready; ``detail`` goes into the error."""

    slot: Slot
    detail: Any


class SlotPool:
    """An executor made of slots; subclasses supply ``_start``, ``_send``, ``_poll``, ``_kill``.

    ``eager``: dispatch a unit the moment it is submitted (workers run beside the
    coordinator); otherwise only inside ``wait`` (inline: the unit runs there).
    ``merges_first``: queue a file's merges ahead of chunk work (``units.enqueue``).
    ``noun`` names a slot's worker in a timeout's message."""

    def __init__(self, on_start, *, noun: str = "worker", eager: bool = True, merges_first: bool = True):
        self.on_start = on_start  # (unit, pid, node) when a unit starts: the UNIT_STARTED event
        self.noun = noun
        self.eager = eager
        self.merges_first = merges_first
        self.queues: dict[str, deque[Unit]] = {"cpu": deque(), "gpu": deque()}
        self.slots: list[Slot] = []
        self.attempts: dict[int, int] = {}  # unit id -> times sent
        self.busy = {"cpu": 0.0, "gpu": 0.0}
        self.replaced = 0  # slots started again (a worker died, hung, or held a cancelled decode)
        self.failed_starts = 0  # workers in a row that died before they were ready
        # Completions were just handed out: what they make ready (a fold, a merge) is about to
        # be submitted, so the slots they freed wait for the next ``wait`` to take a unit.
        self.deferred = False

    # -- what a backend supplies ------------------------------------------------------
    def _start(self, slot: Slot) -> None:
        """Start the slot's worker (``slot.ready`` once it can take units)."""
        raise NotImplementedError

    def _send(self, slot: Slot, unit: Unit) -> None:
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> list:
        """Block up to ``timeout`` seconds for what happened: Ready, Done, Died, StartFailed."""
        raise NotImplementedError

    def _kill(self, slot: Slot, unit: Unit | None) -> None:
        """Stop the slot's worker; ``unit``: what it ran (None: nothing, or it died)."""
        raise NotImplementedError

    def _cannot_start(self, detail: Any) -> str:
        return f"workers die while starting ({self.failed_starts} in a row): {detail}"

    def _interrupt(self, slot: Slot) -> int:
        """Stop the decode of a cancelled file that ``slot`` runs (a long decode must not go on
        writing); 1 when its completion will not come, 0 when it will (and is ignored)."""
        unit, slot.unit = slot.unit, None
        self.attempts.pop(unit.id, None)
        self._restart(slot, unit)
        return 1

    def queue_of(self, unit: Unit) -> str:
        return unit.lane

    # -- the pool ---------------------------------------------------------------------
    def add_slot(self, slot: Slot) -> None:
        self.queues.setdefault(slot.lane, deque())
        self.slots.append(slot)
        self._start(slot)

    def _restart(self, slot: Slot, unit: Unit | None) -> None:
        self._kill(slot, unit)
        slot.unit, slot.ready, slot.pid, slot.node, slot.token = None, False, None, None, None
        self._start(slot)
        self.replaced += 1

    def submit(self, unit: Unit) -> None:
        queue = self.queues[self.queue_of(unit)]
        if self.merges_first:
            enqueue(queue, unit)
        else:
            queue.append(unit)
        if self.eager and not self.deferred:
            self._dispatch()

    def pending(self) -> int:
        return sum(map(len, self.queues.values())) + sum(slot.unit is not None for slot in self.slots)

    def drop(self, file: str) -> int:
        """Forget the queued units of ``file`` and stop its decode if one runs; analysis units
        that run finish. How many units will not complete."""
        dropped = 0
        for name, units in self.queues.items():
            kept = deque(unit for unit in units if unit.file != file)
            dropped += len(units) - len(kept)
            self.queues[name] = kept
        for slot in self.slots:
            if slot.unit is not None and slot.unit.file == file and slot.unit.kind == DECODE:
                dropped += self._interrupt(slot)
        return dropped

    def _dispatch(self) -> None:
        for slot in self.slots:
            units = self.queues[slot.lane]
            if slot.ready and slot.unit is None and units:
                unit = units.popleft()
                self.attempts[unit.id] = self.attempts.get(unit.id, 0) + 1
                slot.unit, slot.started_at = unit, time.perf_counter()
                self._send(slot, unit)
                self.on_start(unit, slot.pid, slot.node)

    def wait(self, timeout: float | None = None) -> list[Completion]:
        """Block until something finishes (or ``timeout``); restart dead workers and kill those
        whose unit ran past its timeout."""
        self.deferred = False
        if not self.pending():
            return []
        self._dispatch()
        completions = self._kill_overdue()
        now = time.perf_counter()
        deadlines = [s.started_at + s.unit.timeout - now for s in self.slots
                     if s.killable and s.unit is not None and s.unit.timeout]
        if completions:
            timeout = 0.0
        elif deadlines:
            timeout = max(0.0, min([timeout if timeout is not None else float("inf"), *deadlines]))
        for event in self._poll(timeout):
            completions += self._handle(event)
        # A freed slot takes its next unit only after the caller has submitted what these
        # completions make ready: dispatched now, it took the next chunk of another step while
        # the fold or merge that the file's result waits for queued behind it.
        if completions and self.eager:
            self.deferred = True
        elif self.eager:
            self._dispatch()
        return completions

    def _handle(self, event) -> list[Completion]:
        slot = event.slot
        if isinstance(event, Ready):
            slot.ready, slot.pid, slot.node = True, event.pid, event.node
            self.failed_starts = 0
            return []
        if isinstance(event, StartFailed):
            self.failed_starts += 1
            if self.failed_starts >= MAX_FAILED_STARTS:
                raise WorkersCannotStart(self._cannot_start(event.detail))
            self._restart(slot, None)
            return []
        unit = slot.unit
        if unit is None:
            return []  # what a worker that was stopped meanwhile sent
        slot.unit = None
        if isinstance(event, Done):
            self.attempts.pop(unit.id, None)
            completion = replace(event.completion, unit=unit, worker=slot.pid, node=slot.node)
            if slot.counted:
                self.busy[unit.lane] += completion.seconds
            return [completion]
        pid, node, seconds = slot.pid, slot.node, time.perf_counter() - slot.started_at  # Died
        self._restart(slot, None)
        if self.attempts.get(unit.id, 0) < MAX_ATTEMPTS:
            self.queues[self.queue_of(unit)].appendleft(unit)
            return []
        self.attempts.pop(unit.id, None)
        return [Completion(unit, False, error=event.message, seconds=seconds, worker=pid, node=node)]

    def _kill_overdue(self) -> list[Completion]:
        """Kill and restart each slot whose unit ran past its timeout; that unit fails (no
        retry: it would hang again)."""
        completions = []
        now = time.perf_counter()
        for slot in self.slots:
            unit = slot.unit
            if not slot.killable or unit is None or not unit.timeout or now - slot.started_at < unit.timeout:
                continue
            pid, node, seconds = slot.pid, slot.node, now - slot.started_at
            slot.unit = None
            self.attempts.pop(unit.id, None)
            self._restart(slot, unit)
            if slot.counted:
                self.busy[unit.lane] += seconds
            noun = "decode" if slot.lane == DECODE else self.noun  # decodes may run in threads
            completions.append(Completion(unit, False, error=f"timed out after {unit.timeout:g} s "
                                          f"(resources.unit_timeout); its {noun} was stopped",
                                          seconds=seconds, worker=pid, node=node))
        return completions

    def release(self, audio) -> None:
        audio.remove()

    def close(self) -> None:
        for units in self.queues.values():
            units.clear()
