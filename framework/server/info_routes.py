"""What the server is and runs: the page, health, pipelines and analyzers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from ..results import mirflow_version
from .models import Health, PipelineInfo, PluginInfo, StepInfo

STATIC = Path(__file__).with_name("static")
router = APIRouter()


@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(STATIC / "index.html")


@router.get("/api/health", response_model=Health, summary="Liveness, load and the devices each backend sees")
async def health(request: Request):
    state = request.app.state
    active = state.store.active()
    return Health(status="ok", version=mirflow_version(), devices=dict(state.devices),
                  jobs={"queued": sum(j.state == "queued" for j in active),
                        "running": sum(j.state == "running" for j in active), "limit": state.settings.max_jobs})


@router.get("/api/pipelines", response_model=list[PipelineInfo], summary="The pipelines this server runs")
async def list_pipelines(request: Request):
    return [PipelineInfo(name=name, description=p.description,
                         steps=[StepInfo(id=s.id, analyzer=s.analyzer, optional=s.optional,
                                         skipped_because=s.unavailable) for s in p.steps])
            for name, p in sorted(request.app.state.pipelines.items())]


@router.get("/api/plugins", response_model=list[PluginInfo], summary="The analyzers installed")
async def list_plugins(request: Request):
    registry = request.app.state.registry
    return [PluginInfo(name=name, plugin=registry.plugin_of.get(name, ""), version=cls.version,
                       resource=cls.resource, outputs=dict(cls.outputs),
                       params={k: _plain(p.default) for k, p in cls.params.items()})
            for name, cls in sorted(registry.analyzers.items())]


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else repr(value)
