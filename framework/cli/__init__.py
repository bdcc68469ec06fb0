"""The ``mirflow`` command line. Each command group lives in its own module.

Heavy work is imported inside commands, so ``mirflow --help`` stays instant.
"""

from __future__ import annotations

import sys

import click

from .common import CliError, Context, shown


class PluginGroup(click.Group):
    """mirflow's commands plus those plugins add (``register_commands``), loaded lazily.

    Plugin commands are found the first time a command name is not a built-in one, or when
    commands are listed (``--help``), whatever global options come first; plugins named with
    ``--disable-plugin`` (or left out of ``MIRFLOW_PLUGINS``) add none. Listing built-ins and
    running them never loads a plugin.
    """

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        root = ctx.find_root()
        cached = root.meta.get("mirflow.plugin_commands")
        if cached is None:
            from ..plugin_manager import make_plugin_manager

            disabled = tuple(root.params.get("disabled") or ())
            found = click.Group()
            make_plugin_manager(disabled=disabled).hook.register_commands(cli=found)
            cached = root.meta["mirflow.plugin_commands"] = {
                name: command for name, command in found.commands.items() if name not in self.commands}
        return cached

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or self._plugin_commands(ctx).get(name)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mirflow", prog_name="mirflow")
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME",
              help="Do not load this plugin (repeatable). MIRFLOW_PLUGINS=a,b loads only those.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, disabled: tuple[str, ...]) -> None:
    """mirflow: beats, downbeats, chords, key and tempo as one timeline per song."""
    ctx.obj = Context(verbose=verbose, quiet=quiet, disabled=disabled)


def _add_builtin_commands() -> None:
    from . import doctor, evaluate, info, plot, run, serve, sonify, table

    cli.add_command(run.run)
    cli.add_command(info.plugins)
    cli.add_command(info.pipelines)
    cli.add_command(info.validate)
    cli.add_command(plot.plot)
    cli.add_command(sonify.sonify)
    cli.add_command(doctor.doctor)
    cli.add_command(evaluate.evaluate)
    cli.add_command(serve.serve)
    cli.add_command(table.table)


_add_builtin_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors (exit 2 for usage and input errors)."""
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        cli.main(args=args, prog_name="mirflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mirflow: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except CliError as err:
        # One line per problem (a pipeline's errors come as a block); no control character passes.
        click.echo("\n".join(f"mirflow: {shown(line)}" if n == 0 else shown(line)
                             for n, line in enumerate(str(err).split("\n"))), err=True)
        sys.exit(err.exit_code)
    except Exception as err:
        from ..scheduler.coordinator import Terminated  # here, not at the top: --help stays light

        if isinstance(err, Terminated):
            click.echo("mirflow: terminated (SIGTERM); the results already written are complete", err=True)
            sys.exit(143)
        if verbose:
            raise
        click.echo(f"mirflow: {type(err).__name__}: {shown(err)} (run with -v for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
