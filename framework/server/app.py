"""The HTTP API and the live timeline page (FastAPI).

Every endpoint is described in the OpenAPI document served at ``/docs``. Uploads go to a
folder the server names (only a cleaned-up base name of the client's file is kept, for
the result); jobs are bounded (503 when full); the body size is limited before it is read.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from ..audio import DecodeError, check_decodable
from ..results import mirflow_version
from .engine import Engine
from .jobs import DONE, FAILED, Job, JobStore, QueueFull

STATIC = Path(__file__).with_name("static")
HEARTBEAT_SECONDS = 1.0  # a quiet stream still says something this often (the page shows elapsed time)


@dataclass
class Settings:
    """What ``mirflow serve`` passes in; every limit has a safe default."""

    pipelines: dict[str, Path] = field(default_factory=dict)  # name -> YAML file
    max_upload_mb: float = 200.0
    max_jobs: int = 8
    keep_finished: int = 100
    jobs: int | None = None  # CPU workers per pipeline (default: one per core)
    device: str | None = None
    disabled: tuple[str, ...] = ()


# -- the documented shapes -------------------------------------------------------------
class Problem(BaseModel):
    detail: str = Field(description="What is wrong, in one line.")


class StepInfo(BaseModel):
    id: str
    analyzer: str
    optional: bool
    skipped_because: str | None = Field(None, description="Why this optional step cannot run here, if it cannot.")


class PipelineInfo(BaseModel):
    name: str
    description: str | None
    steps: list[StepInfo]


class PluginInfo(BaseModel):
    name: str = Field(description="The analyzer's name, as used in pipelines.")
    plugin: str
    version: str
    resource: str = Field(description="cpu or gpu: the lane it runs in.")
    outputs: dict[str, str] = Field(description="Output name -> kind (events, segments, curve, label, scalar).")
    params: dict[str, Any] = Field(description="Parameter name -> default.")


class Health(BaseModel):
    status: str
    version: str
    jobs: dict[str, int] = Field(description="Jobs queued and running now, and the limit.")
    devices: dict[str, Any] = Field(description="Per backend (tensorflow, essentia, onnxruntime): the devices it "
                                                "really sees and, if no GPU, why; null until the probe is done.")


class JobInfo(BaseModel):
    id: str
    state: str = Field(description="queued, running, done, failed or cancelled.")
    pipeline: str
    filename: str
    created: float
    started: float | None
    finished: float | None
    error: str | None
    events: int = Field(description="Events so far; the last one's id.")
    result: dict[str, Any] | None = Field(None, description="The result (as the CLI writes it) once done.")


class JobCreated(BaseModel):
    id: str
    state: str
    status_url: str
    events_url: str


EVENTS_DOC = """Server-Sent Events, each with an `id` (resume with `Last-Event-ID`), an `event` type and
JSON `data`: `queued`, `started`, `decoded` (duration, chunk plan), `unit_started` / `unit_finished` /
`unit_failed` (step, chunk, kind, lane, seconds), `partial` (a chunk's or a merged step's timeline data:
`{step, chunk, outputs}`, chunk null for the whole track), then one of `result` (the result),
`failed` or `cancelled` (message). `heartbeat` events (no id) carry the elapsed seconds and the units
running, at least every 2 seconds while nothing else happens."""


def create_app(settings: Settings) -> FastAPI:
    """The application; plugins and pipelines are loaded once, workers start with the first job."""
    from ..pipeline import load_pipeline
    from ..plugin_manager import collect_analyzers, make_plugin_manager

    pm = make_plugin_manager(disabled=settings.disabled)
    registry = collect_analyzers(pm)
    pipelines = {name: load_pipeline(path, registry) for name, path in settings.pipelines.items()}
    state: dict[str, Any] = {"devices": {}}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scratch = Path(tempfile.mkdtemp(prefix="mirflow-serve-"))
        state["store"] = JobStore(scratch / "jobs", max_active=settings.max_jobs, keep_finished=settings.keep_finished)
        state["engine"] = Engine(pm, registry, pipelines, jobs=settings.jobs,
                                 device=settings.device, disabled=settings.disabled)
        threading.Thread(target=_probe_devices, args=(pm, state["devices"]), daemon=True).start()
        try:
            yield
        finally:
            await asyncio.to_thread(state["engine"].close)
            shutil.rmtree(scratch, ignore_errors=True)

    app = FastAPI(title="mirflow", version=mirflow_version(), lifespan=lifespan, description=(
        "Beats, downbeats, chords, key and tempo as one timeline per song. Upload a file with a pipeline "
        "name; get the result at once (`/api/audio/analyze`), as a stream of progress and partial results "
        "(`/api/audio/analyze-streaming`), or as a job to follow and resume (`/api/jobs`)."))
    app.add_middleware(UploadLimit, limit=int(settings.max_upload_mb * 1024 * 1024))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def store() -> JobStore:
        return state["store"]

    def engine() -> Engine:
        return state["engine"]

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health", response_model=Health, summary="Liveness, load and the devices each backend sees")
    async def health():
        active = store().active()
        return Health(status="ok", version=mirflow_version(), devices=dict(state["devices"]),
                      jobs={"queued": sum(j.state == "queued" for j in active),
                            "running": sum(j.state == "running" for j in active), "limit": settings.max_jobs})

    @app.get("/api/pipelines", response_model=list[PipelineInfo], summary="The pipelines this server runs")
    async def list_pipelines():
        return [PipelineInfo(name=name, description=p.description,
                             steps=[StepInfo(id=s.id, analyzer=s.analyzer, optional=s.optional,
                                             skipped_because=s.unavailable) for s in p.steps])
                for name, p in sorted(pipelines.items())]

    @app.get("/api/plugins", response_model=list[PluginInfo], summary="The analyzers installed")
    async def list_plugins():
        return [PluginInfo(name=name, plugin=registry.plugin_of.get(name, ""), version=cls.version,
                           resource=cls.resource, outputs=dict(cls.outputs),
                           params={k: _plain(p.default) for k, p in cls.params.items()})
                for name, cls in sorted(registry.analyzers.items())]

    async def new_job(file: UploadFile, pipeline: str) -> Job:
        if pipeline not in pipelines:
            raise HTTPException(404, f"no pipeline named {pipeline!r} (this server has: {', '.join(sorted(pipelines))})")
        try:
            job = store().create(pipeline, safe_filename(file.filename))
        except QueueFull as err:
            raise HTTPException(503, str(err), headers={"Retry-After": "10"}) from None
        try:
            await asyncio.to_thread(_save_upload, file, job.audio_path)
            await asyncio.to_thread(check_decodable, job.audio_path)
        except DecodeError as err:
            message = Engine._public(job, str(err))
            job.end(FAILED, error=message)
            raise HTTPException(415, message) from None
        except BaseException:
            job.end(FAILED, error=f"{job.filename}: the upload could not be stored")  # frees its place
            raise
        engine().submit(job)
        return job

    @app.post("/api/audio/analyze", summary="Analyze an upload and return the result",
              responses={200: {"description": "The result, as `mirflow run` writes it."},
                         404: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem},
                         422: {"model": Problem}, 503: {"model": Problem}})
    async def analyze(request: Request, file: UploadFile = File(description="An audio file."),
                      pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
        job = await new_job(file, pipeline)
        while not job.ended:
            if await request.is_disconnected():
                engine().cancel(job, "the client went away")
                return Response(status_code=499)
            await asyncio.sleep(0.1)
        if job.state != DONE:
            raise HTTPException(422, job.error or job.state)
        return JSONResponse(job.result)

    @app.post("/api/audio/analyze-streaming", summary="Analyze an upload, streaming progress (SSE)",
              description=EVENTS_DOC + "\n\nClosing the connection cancels the analysis.",
              responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": Problem},
                         413: {"model": Problem}, 415: {"model": Problem}, 503: {"model": Problem}})
    async def analyze_streaming(file: UploadFile = File(description="An audio file."),
                                pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
        job = await new_job(file, pipeline)
        return EventSourceResponse(stream(job, 0, cancel_on_close=True))

    @app.post("/api/jobs", status_code=202, response_model=JobCreated, summary="Start a job for an upload",
              responses={404: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem},
                         503: {"model": Problem}})
    async def create_job(file: UploadFile = File(description="An audio file."),
                         pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
        job = await new_job(file, pipeline)
        return JobCreated(id=job.id, state=job.state, status_url=f"/api/jobs/{job.id}",
                          events_url=f"/api/jobs/{job.id}/events")

    def get_job(job_id: str) -> Job:
        job = store().get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept for the last {settings.keep_finished})")
        return job

    @app.get("/api/jobs/{job_id}", response_model=JobInfo, summary="A job's state, and its result once done",
             responses={404: {"model": Problem}})
    async def job_status(job_id: str):
        return JobInfo(**get_job(job_id).info())

    @app.get("/api/jobs/{job_id}/events", summary="A job's events (SSE); resumes after Last-Event-ID",
             description=EVENTS_DOC, responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": Problem}})
    async def job_events(job_id: str, request: Request):
        job = get_job(job_id)
        last = request.headers.get("last-event-id", "0")
        return EventSourceResponse(stream(job, int(last) if last.isdigit() else 0, cancel_on_close=False))

    @app.get("/api/jobs/{job_id}/result", summary="Download the result as JSON or JAMS",
             responses={404: {"model": Problem}, 409: {"model": Problem}})
    async def job_result(job_id: str, format: str = "json"):
        job = get_job(job_id)
        if job.state != DONE:
            raise HTTPException(409, f"job {job_id} is {job.state}, it has no result")
        stem = Path(job.filename).stem
        if format == "jams" and job.jams:
            return Response(job.jams, media_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="{stem}.jams"'})
        if format != "json":
            raise HTTPException(404, f"no {format!r} result (json or jams)")
        return Response(json.dumps(job.result, indent=1), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.json"'})

    @app.delete("/api/jobs/{job_id}", response_model=JobInfo, summary="Cancel a job (its work stops)",
                responses={404: {"model": Problem}})
    async def cancel_job(job_id: str):
        job = get_job(job_id)
        engine().cancel(job)
        return JobInfo(**job.info(with_result=False))

    async def stream(job: Job, last_id: int, cancel_on_close: bool):
        """The job's events after ``last_id``, heartbeats while it is quiet; ends after the last."""
        quiet_since = time.monotonic()
        try:
            while True:
                for event in job.since(last_id):
                    last_id = event.id
                    quiet_since = time.monotonic()
                    yield {"id": str(event.id), "event": event.type, "data": json.dumps(event.data)}
                if job.ended and last_id >= len(job.events):
                    return
                if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = time.monotonic()
                    now = time.time()
                    yield {"event": "heartbeat", "data": json.dumps({
                        "job": job.id, "state": job.state, "elapsed": round(now - job.created, 2),
                        "running": [{"step": s, "chunk": c, "kind": k, "for": round(now - t, 2)}
                                    for (s, c, k), t in list(job.running_units.items())]})}
                await asyncio.sleep(0.1)
        finally:
            if cancel_on_close and not job.ended:
                engine().cancel(job, "the client closed the stream")

    return app


class UploadLimit:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length before reading, else while reading."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length and length.isdigit() and int(length) > self.limit:
            return await JSONResponse({"detail": self._message()}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self._message())
            return message

        return await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"upload larger than the server's limit of {self.limit / 1024 / 1024:.0f} MB"


def safe_filename(name: str | None) -> str:
    """A base name safe to create in the job's folder: no directories, no odd characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^A-Za-z0-9._ -]", "_", stem).strip(" .")[:100] or "upload"
    suffix = re.sub(r"[^A-Za-z0-9]", "", suffix)[:10]
    return f"{stem}.{suffix}" if suffix else stem


def _save_upload(file: UploadFile, target: Path) -> None:
    with open(target, "wb") as out:
        while block := file.file.read(1 << 20):
            out.write(block)


def _probe_devices(pm, into: dict) -> None:
    from ..devices import probe_all

    for backend, found in probe_all(pm).items():
        found.pop("log", None)
        into[backend] = found


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else repr(value)
