"""``mirflow serve``: the streaming analysis API and the live timeline page (``mirflow[server]``)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, bundled_pipelines, executor_options, jobs_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes the server to the network).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--pipelines", "pipelines_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="A folder of pipeline YAML files to offer beside the bundled ones (same name wins).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), default=200.0, show_default=True)
@click.option("--max-jobs", type=click.IntRange(min=1), default=8, show_default=True,
              help="Jobs queued or running at once; more get 503.")
@jobs_option("CPU worker processes per pipeline (default: one per core; at most 4 per core).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Override the pipelines' resources.device.")
@click.option("--idle-workers-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              metavar="SECONDS", help="Stop a pipeline's workers (and the memory their models hold) after this "
                                      "long without a job; the next job starts them again. 0: keep them.")
@executor_options
@click.pass_obj
def serve(obj, host, port, pipelines_dir, max_upload_mb, max_jobs, jobs, device, idle_workers_timeout, executor,
          ray_address):
    """Serve the analysis API (docs at /docs) and the live timeline page (at /)."""
    try:
        import uvicorn

        from ..server.app import Settings, create_app
    except ImportError as err:
        raise CliError(f"mirflow serve needs the server extra: pip install 'mirflow[server]' ({err})") from None
    from ..pipeline import PipelineError

    pipelines = dict(bundled_pipelines())
    if pipelines_dir:
        found = sorted(Path(pipelines_dir).glob("*.y*ml"))
        if not found:
            raise CliError(f"{pipelines_dir}: no pipeline files (*.yaml) in this folder")
        pipelines.update({path.stem: path for path in found})
    if ray_address and executor != "ray":
        raise CliError("--ray-address needs --executor ray")
    if executor == "ray":  # connect now: a cluster that cannot be reached stops the server before it listens
        import os

        from ..scheduler import ExecutorUnavailable, connect_ray

        try:
            connect_ray(ray_address, jobs or os.cpu_count() or 1)
        except ExecutorUnavailable as err:
            raise CliError(str(err)) from None
    settings = Settings(pipelines=pipelines, max_upload_mb=max_upload_mb, max_jobs=max_jobs, jobs=jobs,
                        device=device, disabled=obj.disabled, executor=executor, ray_address=ray_address,
                        idle_workers_timeout=idle_workers_timeout or None)
    try:
        app = create_app(settings)
    except PipelineError as err:
        raise CliError(str(err)) from None
    if not obj.quiet:
        click.echo(f"mirflow: serving {len(pipelines)} pipelines on http://{host}:{port}/ (API docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if obj.quiet else "info")
