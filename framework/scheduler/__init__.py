"""Running a pipeline over files: a coordinator that plans units and an executor that runs them.

``run_pipeline`` is the entry point for the CLI and for library users; ``build_scheduler``
gives a scheduler that a server keeps and feeds (``Scheduler.submit``, ``Scheduler.serve``).
The parts (docs/architecture.md): ``plan`` (one file's steps and phases), ``lanes`` (which
lane runs each step), ``batcher`` (the GPU lane), ``coordinator`` (the event loop), ``sink``
(results and exports), ``units`` (typed work), ``runner`` (running a unit), ``slots`` (the
executor base) and the executors.
"""

from __future__ import annotations

import os
from pathlib import Path

from .coordinator import FileJob, Scheduler, Terminated
from .executors import InlineExecutor, ProcessExecutor, plugin_handoff
from .lanes import gpu_steps, with_lanes
from .records import FileOutcome, StepRecord
from .runner import UnitRunner
from .slots import Executor
from .units import Binding, Completion, Unit, UnitKind

__all__ = ["Binding", "Completion", "Executor", "ExecutorUnavailable", "FileJob", "FileOutcome", "NothingForTheGpu",
           "Scheduler", "StepRecord", "Terminated", "Unit", "UnitKind", "build_scheduler", "connect_ray", "run_pipeline"]


def run_pipeline(pipeline, registry, pm, paths: list[str], **options) -> tuple[list[FileOutcome], Scheduler]:
    """Run ``pipeline`` over ``paths``; return the outcomes and the scheduler (for its stats).
    Options as for :func:`build_scheduler`."""
    scheduler = build_scheduler(pipeline, registry, pm, **options)
    return scheduler.run([str(p) for p in paths]), scheduler


class NothingForTheGpu(ValueError):
    """``device: gpu`` for a pipeline without a step that runs in the GPU lane."""


class ExecutorUnavailable(RuntimeError):
    """The chosen executor cannot run here (Ray not installed, or its cluster unreachable)."""


def connect_ray(address: str | None, cpus: int) -> None:
    """Join the Ray cluster at ``address`` (or start a local instance with ``cpus`` slots); an
    ExecutorUnavailable saying what to install or which address did not answer."""
    from .ray_cluster import RayNotInstalled, connect

    try:
        connect(address, cpus)
    except RayNotInstalled as err:
        raise ExecutorUnavailable(str(err)) from None
    except Exception as err:  # ConnectionError, a version mismatch, a bad address ...
        where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
        first = (str(err).strip().splitlines() or [""])[0]
        raise ExecutorUnavailable(f"cannot connect to the Ray cluster at {where}: {type(err).__name__}: {first}") from None


def build_scheduler(pipeline, registry, pm, *, jobs: int | None = None, inline: bool = False,
                    output_dir: str | Path = "results", formats=None, device: str | None = None,
                    max_files: int | None = None, force: bool = False, plot: bool = False,
                    keep_tracebacks: bool = False, disabled: tuple[str, ...] = (),
                    executor: str | None = None, ray_address: str | None = None,
                    actor_cpus: float = 1.0, idle_timeout: float | None = None) -> Scheduler:
    """A scheduler for ``pipeline`` (``run`` a list of files, or ``serve`` an inbox).

    ``inline`` runs every unit in this process (no workers: simplest to debug); otherwise
    ``jobs`` CPU worker processes (default: the pipeline's ``resources.cpu.workers``, else one
    per core) plus one GPU-lane process when the pipeline has ``gpu`` steps.

    ``executor`` "ray" (default: the pipeline's ``resources.executor``) runs the same lanes as
    Ray actors on the cluster at ``ray_address`` (default: RAY_ADDRESS, else a new local
    instance with ``jobs`` CPU slots); ``jobs`` then defaults to the cluster's CPU slots, and
    each CPU actor reserves ``actor_cpus`` of a slot (a server with several pipelines gives
    each a share, as its local worker pools share the cores). ``idle_timeout``: seconds without
    a file in flight after which a serving scheduler stops its workers (None: never).
    """
    device = device or pipeline.resources.device
    pipeline = with_lanes(pipeline, registry, device)
    on_ray = (executor or pipeline.resources.executor) == "ray" and not inline
    if on_ray:
        from .ray_cluster import cluster_slots

        connect_ray(ray_address, jobs or pipeline.resources.cpu_workers or os.cpu_count() or 1)
    workers = jobs or pipeline.resources.cpu_workers or (cluster_slots()[0] if on_ray else os.cpu_count()) or 1
    gpu_lane = bool(gpu_steps(pipeline))
    if device == "gpu" and not gpu_lane:
        # An error, not a warning: asking for the GPU and running on the CPU is the silent
        # fallback the old app was blamed for.
        raise NothingForTheGpu(f"{pipeline.path}: device gpu, but no step of pipeline {pipeline.name!r} can run on "
                               "a GPU (they are all cpu steps); use --device cpu or auto")
    batch = pipeline.resources.gpu_batch_size
    files = max_files or pipeline.resources.files_in_flight or (max(batch, 2 * workers) if gpu_lane else 2 * workers)

    def make_executor(temp_dir: str, on_start):
        if inline:
            return InlineExecutor(UnitRunner(pipeline, registry, pm, device=device, temp_dir=temp_dir), on_start)
        if on_ray:
            from .ray_executor import RayExecutor

            return RayExecutor(cpu_workers=workers, gpu_lane=gpu_lane, pipeline=pipeline, registry=registry, pm=pm,
                               disabled=disabled, handoff=plugin_handoff(pm), device=device, temp_dir=temp_dir,
                               on_start=on_start, actor_cpus=actor_cpus)
        return ProcessExecutor(cpu_workers=workers, gpu_lane=gpu_lane, pipeline=pipeline, registry=registry, pm=pm,
                               disabled=disabled, handoff=plugin_handoff(pm), device=device, temp_dir=temp_dir,
                               on_start=on_start)

    return Scheduler(pipeline, registry, pm, make_executor=make_executor, output_dir=output_dir,
                     formats=formats, max_files=files, force=force, plot=plot, keep_tracebacks=keep_tracebacks,
                     idle_timeout=idle_timeout, cpu_workers=1 if inline else workers)
