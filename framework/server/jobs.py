"""Jobs: one uploaded file, its pipeline, the events it produced and its result.

Events are numbered per job and kept until the job is forgotten, so a client that loses
its connection reconnects with ``Last-Event-ID`` and misses nothing. The store is bounded:
at most ``max_active`` jobs queued or running (the server answers 503 beyond that), and
the ``keep_finished`` most recent finished jobs stay readable.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ENDED = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    """More jobs are queued or running than the server accepts."""


@dataclass
class JobEvent:
    id: int
    type: str
    data: dict[str, Any]


@dataclass
class Job:
    """A job's state; changed by the engine's thread, read by request handlers."""

    id: str
    pipeline: str
    filename: str
    folder: Path  # the job's own temporary folder: the upload lives here, nothing else of the client's
    audio_path: Path
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    jams: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    running_units: dict[tuple, float] = field(default_factory=dict)  # (step, chunk, kind) -> started
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    waiters: list = field(default_factory=list, repr=False)  # (event loop, asyncio.Event) of waiting handlers

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def add(self, type: str, data: dict[str, Any]) -> JobEvent:
        with self.lock:
            event = JobEvent(len(self.events) + 1, type, {"job": self.id, **data})
            self.events.append(event)
            waiters = list(self.waiters)
        for loop, ready in waiters:  # the engine's thread wakes the handlers on their own loops
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # that loop has closed
                pass
        return event

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once the job has more than ``seen`` events or has ended, or after ``timeout``
        seconds: request handlers wait on the job instead of polling it."""
        ready = asyncio.Event()
        waiter = (asyncio.get_running_loop(), ready)
        with self.lock:
            if len(self.events) > seen or self.state in ENDED:
                return
            self.waiters.append(waiter)
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self.lock:
                self.waiters.remove(waiter)

    def since(self, last_id: int) -> list[JobEvent]:
        with self.lock:
            return self.events[last_id:]

    def end(self, state: str, *, error: str | None = None, result=None, jams=None) -> None:
        """Record the outcome (once) and the event that says so; remove the upload."""
        with self.lock:
            if self.state in ENDED:
                return
            self.state, self.error, self.result, self.jams = state, error, result, jams
            self.finished = time.time()
            self.running_units.clear()
        if state == DONE:
            self.add("result", {"result": result})
        else:
            self.add(state, {"message": error})
        shutil.rmtree(self.folder, ignore_errors=True)

    def info(self, with_result: bool = True) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "pipeline": self.pipeline, "filename": self.filename,
                "created": self.created, "started": self.started, "finished": self.finished,
                "error": self.error, "events": len(self.events),
                "result": self.result if with_result and self.state == DONE else None}


class JobStore:
    """All jobs of one server, by id."""

    def __init__(self, root: Path, max_active: int = 8, keep_finished: int = 100):
        self.root = Path(root)
        self.max_active = max_active
        self.keep_finished = keep_finished
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def create(self, pipeline: str, filename: str) -> Job:
        """A new queued job with its own folder; QueueFull when the server is at its limit."""
        with self.lock:
            if sum(not job.ended for job in self.jobs.values()) >= self.max_active:
                raise QueueFull(f"{self.max_active} jobs are queued or running; try again later")
            job_id = uuid.uuid4().hex[:16]
            folder = self.root / job_id
            folder.mkdir(parents=True)
            job = Job(job_id, pipeline, filename, folder, folder / filename)
            self.jobs[job_id] = job
            self._forget_old()
            return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def active(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.ended]

    def _forget_old(self) -> None:
        ended = sorted((job for job in self.jobs.values() if job.ended), key=lambda job: job.finished or 0)
        for job in ended[:max(0, len(ended) - self.keep_finished)]:
            del self.jobs[job.id]
