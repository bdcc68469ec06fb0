"""Jobs over HTTP: analyze an upload at once, as a stream of events, or as a job to follow,
resume, download and cancel. Handlers wait on their job (it wakes them when an event is
added) instead of polling it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from ..audio import DecodeError, check_decodable
from .engine import Engine
from .jobs import DONE, FAILED, Job, QueueFull
from .models import EVENTS_DOC, JobCreated, JobInfo, Problem
from .uploads import safe_filename, save_upload

HEARTBEAT_SECONDS = 1.0  # a quiet stream still says something this often (the page shows elapsed time)
DISCONNECT_CHECK_SECONDS = 0.5  # how often /api/audio/analyze looks whether its client went away

router = APIRouter()
UPLOAD_ERRORS = {404: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem}, 503: {"model": Problem}}


async def new_job(request: Request, file: UploadFile, pipeline: str) -> Job:
    state = request.app.state
    if pipeline not in state.pipelines:
        raise HTTPException(404, f"no pipeline named {pipeline!r} (this server has: {', '.join(sorted(state.pipelines))})")
    try:
        job = state.store.create(pipeline, safe_filename(file.filename))
    except QueueFull as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "10"}) from None
    try:
        await asyncio.to_thread(save_upload, file, job.audio_path)
        await asyncio.to_thread(check_decodable, job.audio_path)
    except DecodeError as err:
        message = Engine._public(job, str(err))
        job.end(FAILED, error=message)
        raise HTTPException(415, message) from None
    except BaseException:
        job.end(FAILED, error=f"{job.filename}: the upload could not be stored")  # frees its place
        raise
    state.engine.submit(job)
    return job


def get_job(request: Request, job_id: str) -> Job:
    job = request.app.state.store.get(job_id)
    if job is None:
        keep = request.app.state.settings.keep_finished
        raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept for the last {keep})")
    return job


@router.post("/api/audio/analyze", summary="Analyze an upload and return the result",
             responses={200: {"description": "The result, as `mirflow run` writes it."}, 422: {"model": Problem},
                        **UPLOAD_ERRORS})
async def analyze(request: Request, file: UploadFile = File(description="An audio file."),
                  pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
    job = await new_job(request, file, pipeline)
    while not job.ended:
        await job.wait(len(job.events), DISCONNECT_CHECK_SECONDS)
        if not job.ended and await request.is_disconnected():
            request.app.state.engine.cancel(job, "the client went away")
            return Response(status_code=499)
    if job.state != DONE:
        raise HTTPException(422, job.error or job.state)
    return JSONResponse(job.result)


@router.post("/api/audio/analyze-streaming", summary="Analyze an upload, streaming progress (SSE)",
             description=EVENTS_DOC + "\n\nClosing the connection cancels the analysis.",
             responses={200: {"content": {"text/event-stream": {}}}, **UPLOAD_ERRORS})
async def analyze_streaming(request: Request, file: UploadFile = File(description="An audio file."),
                            pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
    job = await new_job(request, file, pipeline)
    return EventSourceResponse(stream(request.app.state.engine, job, 0, cancel_on_close=True))


@router.post("/api/jobs", status_code=202, response_model=JobCreated, summary="Start a job for an upload",
             responses=UPLOAD_ERRORS)
async def create_job(request: Request, file: UploadFile = File(description="An audio file."),
                     pipeline: str = Form("default", description="A pipeline name from /api/pipelines.")):
    job = await new_job(request, file, pipeline)
    return JobCreated(id=job.id, state=job.state, status_url=f"/api/jobs/{job.id}",
                      events_url=f"/api/jobs/{job.id}/events")


@router.get("/api/jobs/{job_id}", response_model=JobInfo, summary="A job's state, and its result once done",
            responses={404: {"model": Problem}})
async def job_status(request: Request, job_id: str):
    return JobInfo(**get_job(request, job_id).info())


@router.get("/api/jobs/{job_id}/events", summary="A job's events (SSE); resumes after Last-Event-ID",
            description=EVENTS_DOC, responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": Problem}})
async def job_events(request: Request, job_id: str):
    job = get_job(request, job_id)
    last = request.headers.get("last-event-id", "0")
    return EventSourceResponse(stream(request.app.state.engine, job, int(last) if last.isdigit() else 0,
                                      cancel_on_close=False))


@router.get("/api/jobs/{job_id}/result", summary="Download the result as JSON or JAMS",
            responses={404: {"model": Problem}, 409: {"model": Problem}})
async def job_result(request: Request, job_id: str, format: str = "json"):
    job = get_job(request, job_id)
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


@router.delete("/api/jobs/{job_id}", response_model=JobInfo, summary="Cancel a job (its work stops)",
               responses={404: {"model": Problem}})
async def cancel_job(request: Request, job_id: str):
    job = get_job(request, job_id)
    request.app.state.engine.cancel(job)
    return JobInfo(**job.info(with_result=False))


async def stream(engine: Engine, job: Job, last_id: int, cancel_on_close: bool):
    """The job's events after ``last_id`` as they come, heartbeats while it is quiet; ends after the last."""
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
            await job.wait(last_id, max(0.0, HEARTBEAT_SECONDS - (time.monotonic() - quiet_since)))
    finally:
        if cancel_on_close and not job.ended:
            engine.cancel(job, "the client closed the stream")
