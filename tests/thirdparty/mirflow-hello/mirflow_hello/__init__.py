"""A third-party plugin: the loudness of each chunk in dBFS."""

import mirflow
from mirflow.audio import rms_db


class Loudness(mirflow.Analyzer):
    """RMS level in dBFS."""

    name = "hello.loudness"
    sample_rate = None
    outputs = {"loudness_db": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        level = rms_db(chunk.samples)
        return {"loudness_db": max(level, -120.0)}


@mirflow.hookimpl
def register_analyzers(register):
    register(Loudness)


@mirflow.hookimpl
def register_commands(cli):
    import click

    @cli.command()
    def hello():
        """Say hello from a third-party plugin."""
        click.echo("hello from mirflow-hello")
