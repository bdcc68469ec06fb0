"""``mirflow models``: list, add and pull Essentia zoo models."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def models():
    """Essentia's TensorFlow models: which are installed and where, add or download them.

    The folder is MIRFLOW_MODELS, else ~/.local/share/mirflow/models.
    """


@models.command("list")
def list_models():
    """Known and installed models: installed or not, and the file or the command to get it."""
    from .models import describe_models
    from .zoo import models_dir

    click.echo(f"models folder: {models_dir()}")
    rows = describe_models()
    width = max(len(name) for name, _, _ in rows)
    for name, state, where in rows:
        click.echo(f"{name:<{width}}  {state:<9}  {where}")


@models.command("add")
@click.argument("graph", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("metadata", type=click.Path(dir_okay=False, path_type=Path), required=False)
def add_model(graph: Path, metadata: Path | None):
    """Install GRAPH (NAME.pb) with its zoo METADATA (default: NAME.json beside it)."""
    from mirflow.cli.common import CliError

    from .zoo import ModelError, add

    try:
        click.echo(f"installed {add(graph, metadata or graph.with_suffix('.json'))}")
    except ModelError as error:
        raise CliError(str(error)) from None


@models.command("pull")
@click.argument("names", nargs=-1, required=True)
def pull_models(names):
    """Download models by name from Essentia's model site (MIRFLOW_MODELS_URL overrides it)."""
    from mirflow.cli.common import CliError

    from .zoo import ModelError, pull

    for name in names:
        try:
            pull(name, say=click.echo)
        except ModelError as error:
            raise CliError(str(error)) from None
