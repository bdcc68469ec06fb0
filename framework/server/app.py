"""The HTTP API and the live timeline page (FastAPI).

Every endpoint is described in the OpenAPI document served at ``/docs``. The routes live in
:mod:`.info_routes` (the page, health, pipelines, analyzers) and :mod:`.job_routes` (uploads
and jobs); what they share — settings, plugins, pipelines, the job store and the engine — is
in ``app.state``. Uploads go to a folder the server names (only a cleaned-up base name of the
client's file is kept, for the result); jobs are bounded (503 when full); the body size is
limited before it is read (:mod:`.uploads`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..results import mirflow_version
from . import info_routes, job_routes
from .engine import Engine
from .jobs import JobStore
from .uploads import UploadLimit

STATIC = Path(__file__).with_name("static")


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
    executor: str | None = None  # "ray": jobs run on a Ray cluster (default: each pipeline's own)
    idle_workers_timeout: float | None = 300.0  # seconds without a job before workers stop (None: never)
    ray_address: str | None = None


def create_app(settings: Settings) -> FastAPI:
    """The application; plugins and pipelines are loaded once, workers start with the first job."""
    from ..pipeline import load_pipeline
    from ..plugin_manager import collect_analyzers, make_plugin_manager

    pm = make_plugin_manager(disabled=settings.disabled)
    registry = collect_analyzers(pm)
    pipelines = {name: load_pipeline(path, registry) for name, path in settings.pipelines.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scratch = Path(tempfile.mkdtemp(prefix="mirflow-serve-"))
        app.state.store = JobStore(scratch / "jobs", max_active=settings.max_jobs, keep_finished=settings.keep_finished)
        app.state.engine = Engine(pm, registry, pipelines, jobs=settings.jobs, device=settings.device,
                                  disabled=settings.disabled, executor=settings.executor,
                                  ray_address=settings.ray_address, idle_timeout=settings.idle_workers_timeout)
        threading.Thread(target=_probe_devices, args=(pm, app.state.devices), daemon=True).start()
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.engine.close)
            shutil.rmtree(scratch, ignore_errors=True)

    app = FastAPI(title="mirflow", version=mirflow_version(), lifespan=lifespan, description=(
        "Beats, downbeats, chords, key and tempo as one timeline per song. Upload a file with a pipeline "
        "name; get the result at once (`/api/audio/analyze`), as a stream of progress and partial results "
        "(`/api/audio/analyze-streaming`), or as a job to follow and resume (`/api/jobs`)."))
    app.state.settings = settings
    app.state.registry = registry
    app.state.pipelines = pipelines
    app.state.devices = {}  # per backend, filled by the probe thread
    app.add_middleware(UploadLimit, limit=int(settings.max_upload_mb * 1024 * 1024))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(info_routes.router)
    app.include_router(job_routes.router)
    return app


def _probe_devices(pm, into: dict) -> None:
    from ..devices import probe_all

    for backend, found in probe_all(pm).items():
        found.pop("log", None)
        into[backend] = found
