"""The shapes the API documents at ``/docs`` (pydantic models) and the events' description."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
