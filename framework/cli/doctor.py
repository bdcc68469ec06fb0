"""``mirflow doctor``: which devices each backend really sees, and why a GPU is not usable."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def doctor(obj, as_json):
    """For each backend the installed plugins use (TensorFlow, Essentia, onnxruntime, ...):
    devices seen, GPU or the reason not."""
    from ..devices import probe_all

    pm, _ = obj.plugins()
    found = probe_all(pm)
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    for backend, info in found.items():
        if "error" in info:
            click.echo(f"{backend:12} does not import: {info['error']}")
            continue
        state = "GPU usable" if info["gpu"] else "CPU only"
        click.echo(f"{backend:12} {info['version']:18} {state:10} devices: {', '.join(info['devices'])}")
        if info.get("reason"):
            click.echo(f"{'':12} why no GPU: {info['reason']}")
        for line in info.get("log", []):
            click.echo(f"{'':12} log: {line.strip()[:160]}")
