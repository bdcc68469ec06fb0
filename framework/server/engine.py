"""The server's engine: one long-lived scheduler per pipeline, fed with jobs as they arrive.

The CLI runs a list of files and stops; a server keeps its workers (and the models they
loaded) alive between requests, and concurrent jobs on one pipeline share its CPU workers
and its GPU lane, whose batches fill across them. The scheduler's progress events arrive
through the ``progress`` hook and become each job's numbered events.
"""

from __future__ import annotations

import json
import threading
import time

from .. import events
from ..hookspecs import hookimpl
from ..results import to_jsonable
from ..scheduler import build_scheduler
from .jobs import CANCELLED, DONE, FAILED, RUNNING, Job

UNIT_EVENTS = {events.UNIT_STARTED: "unit_started", events.UNIT_FINISHED: "unit_finished",
               events.UNIT_FAILED: "unit_failed"}


class PipelineRunner:
    """One pipeline's scheduler, running in its own thread until the server stops."""

    def __init__(self, name: str, pipeline, registry, pm, *, jobs: int | None,
                 device: str | None, disabled: tuple, on_broken, executor: str | None = None,
                 ray_address: str | None = None, actor_cpus: float = 1.0, idle_timeout: float | None = None):
        self.name = name
        # Results come back as values (no files, no claims): the job keeps them.
        self.scheduler = build_scheduler(pipeline, registry, pm, jobs=jobs, device=device, disabled=disabled,
                                         output_dir=None, force=True, executor=executor, ray_address=ray_address,
                                         actor_cpus=actor_cpus, idle_timeout=idle_timeout)
        self.on_broken = on_broken
        self.thread = threading.Thread(target=self._serve, name=f"mirflow-engine-{name}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.scheduler.serve()
        except BaseException as err:  # the thread must say why it stopped, not vanish
            self.on_broken(self.name, f"the {self.name!r} pipeline's scheduler stopped: {type(err).__name__}: {err}")

    def submit(self, path: str, name: str) -> None:
        self.scheduler.submit(path, name)

    def close(self, timeout: float = 10.0) -> None:
        self.scheduler.end_of_input()
        self.thread.join(timeout)


class Engine:
    """Submits jobs to their pipeline's runner and turns scheduler events into job events."""

    def __init__(self, pm, registry, pipelines: dict, *, jobs: int | None = None,
                 device: str | None = None, disabled: tuple = (), executor: str | None = None,
                 ray_address: str | None = None, idle_timeout: float | None = None):
        self.pm = pm
        self.registry = registry
        self.pipelines = pipelines  # name -> loaded Pipeline
        self.jobs, self.device, self.disabled = jobs, device, disabled
        # On Ray each pipeline's CPU actors reserve a share of a slot: every pipeline gets one
        # actor per slot, as each gets one worker process per core here, and none waits for
        # another's actors to go.
        self.executor, self.ray_address = executor, ray_address
        self.idle_timeout = idle_timeout  # workers of a pipeline with no job for this long stop
        self.actor_cpus = 1.0 / max(1, len(pipelines))
        self.runners: dict[str, PipelineRunner] = {}
        self.by_path: dict[str, Job] = {}
        self.lock = threading.Lock()
        pm.register(self, name="mirflow-server-engine")

    def submit(self, job: Job) -> None:
        with self.lock:
            runner = self.runners.get(job.pipeline)
            if runner is None:
                runner = self.runners[job.pipeline] = PipelineRunner(
                    job.pipeline, self.pipelines[job.pipeline], self.registry, self.pm,
                    jobs=self.jobs, device=self.device, disabled=self.disabled, on_broken=self._broken,
                    executor=self.executor, ray_address=self.ray_address, actor_cpus=self.actor_cpus,
                    idle_timeout=self.idle_timeout)
            self.by_path[str(job.audio_path)] = job
        job.add("queued", {"pipeline": job.pipeline, "filename": job.filename})
        runner.submit(str(job.audio_path), job.id)

    def cancel(self, job: Job, reason: str = "cancelled") -> None:
        """End the job now; its scheduler drops its queued units and ignores what still returns."""
        if job.ended:
            return
        job.end(CANCELLED, error=reason)
        runner = self.runners.get(job.pipeline)
        if runner is not None:
            runner.scheduler.cancel(str(job.audio_path))

    def close(self) -> None:
        for job in list(self.by_path.values()):
            self.cancel(job, "the server is shutting down")
        for runner in self.runners.values():
            runner.close()

    def _broken(self, pipeline: str, message: str) -> None:
        with self.lock:
            self.runners.pop(pipeline, None)  # the next job starts a fresh one
        for path, job in list(self.by_path.items()):
            if job.pipeline == pipeline:
                del self.by_path[path]
                job.end(FAILED, error=message)

    # -- scheduler events -> job events -------------------------------------------
    def _jobs_of(self, event) -> list[Job]:
        paths = [event.file] if event.file else event.data.get("files", [])
        return [job for job in (self.by_path.get(path) for path in paths) if job is not None and not job.ended]

    @hookimpl
    def progress(self, event) -> None:
        for job in self._jobs_of(event):
            self._forward(job, event)
        if event.kind in (events.FILE_FINISHED, events.FILE_FAILED, events.FILE_CANCELLED, events.FILE_SKIPPED):
            job = self.by_path.pop(event.file, None)  # nothing to delete: the scheduler writes no files here
            if job is not None and event.kind != events.FILE_FINISHED:
                job.end(CANCELLED if event.kind == events.FILE_CANCELLED else FAILED,
                        error=self._public(job, event.data.get("message") or event.data.get("reason", "")))

    def _forward(self, job: Job, event) -> None:
        data = event.data
        if event.kind == events.FILE_STARTED:
            job.state, job.started = RUNNING, time.time()
            job.add("started", {})
        elif event.kind == events.FILE_DECODED:
            job.add("decoded", {"duration": data["duration"], "chunks": data["spans"],
                                "plan": self._plan(job, data["spans"], data["duration"])})
        elif event.kind in UNIT_EVENTS:
            key = (event.step, event.chunk, data.get("kind"))
            if event.kind == events.UNIT_STARTED:
                job.running_units[key] = time.time()
            else:
                job.running_units.pop(key, None)
            details = {"step": event.step, "chunk": event.chunk, "kind": data.get("kind"), "lane": event.lane,
                       "seconds": event.seconds, "message": self._public(job, data.get("message"))}
            if "files" in data:  # a GPU batch: how many chunks, from how many files (any job's)
                details.update(batch_size=data["batch_size"], batch_files=len(data["files"]))
            job.add(UNIT_EVENTS[event.kind], details)
        elif event.kind in (events.CHUNK_RESULT, events.STEP_FINISHED):
            job.add("partial", {"step": event.step, "chunk": event.chunk, "outputs": to_jsonable(data["outputs"])})
        elif event.kind == events.FILE_FINISHED:
            self._finish(job, data["result"])

    def _plan(self, job: Job, spans: list[dict], duration: float) -> list[dict]:
        """Each step's units over the song: every chunk, or one for a whole-track step."""
        whole = [{"index": 0, "start": 0.0, "end": duration, "core_start": 0.0, "core_end": duration}]
        return [{"step": step.id, "chunks": spans if self.registry.get(step.analyzer).chunked else whole}
                for step in self.pipelines[job.pipeline].steps]

    def _finish(self, job: Job, result: dict) -> None:
        from ..exports import to_jams

        # The client knows its file by name; server paths are none of its business. The result
        # is a value (already strict JSON): the job's copy replaces only what it changes.
        result = {**result, "source": {**result["source"], "path": job.filename},
                  "pipeline": {**result["pipeline"], "path": None},
                  "errors": [{**error, "file": job.filename, "message": self._public(job, error.get("message"))}
                             for error in result["errors"]]}
        jams = json.dumps(to_jams(result), indent=1, allow_nan=False) + "\n"
        errors = "; ".join(f"{e.get('step') or e.get('stage')}: {e['message']}" for e in result.get("errors", []))
        job.end(DONE, result=result, jams=jams, error=errors or None)

    @staticmethod
    def _public(job: Job, message: str | None) -> str | None:
        if not message:
            return message
        for path in (str(job.audio_path.resolve()), str(job.audio_path)):
            message = message.replace(path, job.filename)
        return message
