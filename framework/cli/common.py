"""What every command shares: options, plugin loading, pipeline lookup, error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a", ".wma", ".au")


class CliError(Exception):
    """An error to show as one line (``mirflow: ...``) with an exit code."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def shown(text) -> str:
    """``text`` (a file name, or a line naming one) with control characters escaped as Python
    writes them (``\\n``, ``\\x1b``, ``\\udcff`` for undecodable bytes): a name holding a newline or
    a terminal escape can neither split a line nor forge one. Used wherever a line names a file."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def executor_options(command):
    """--executor and --ray-address, as `run` and `serve` both take them."""
    import click

    command = click.option("--ray-address", default=None, metavar="ADDRESS",
                           help="The Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: RAY_ADDRESS, else a "
                                "new local instance with --jobs CPU slots).")(command)
    return click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
                        help="Where units run: worker processes here (local) or actors on a Ray cluster (ray, needs "
                             "mirflow[ray]); default: the pipeline's resources.executor.")(command)


def jobs_option(help: str):
    """--jobs, bounded by the rule of the pipeline key ``resources.cpu.workers`` (one rule, not two):
    an unbounded value forks processes until the machine runs out of memory."""
    import click

    def check(ctx, param, value):
        if value is not None:
            from ..pipeline.schema import check_workers

            problem = check_workers(value)
            if problem:
                raise CliError(f"--jobs: {problem}")
        return value

    return click.option("--jobs", type=click.IntRange(min=1), default=None, callback=check, help=help)


@dataclass
class Context:
    verbose: int = 0
    quiet: bool = False
    disabled: tuple[str, ...] = ()
    _loaded: tuple = field(default=(), repr=False)

    def plugins(self):
        """(plugin manager, analyzer registry), loaded once per command."""
        if not self._loaded:
            from ..plugin_manager import PluginError, collect_analyzers, make_plugin_manager

            pm = make_plugin_manager(disabled=self.disabled)
            try:
                registry = collect_analyzers(pm)
            except PluginError as err:
                raise CliError(str(err)) from None
            import click

            for plugin, error in registry.load_errors.items():
                click.echo(f"mirflow: warning: plugin {plugin!r} failed to load: {error}", err=True)
            self._loaded = (pm, registry)
        return self._loaded


def bundled_pipelines() -> dict[str, Path]:
    """Name -> path of the bundled pipelines (imported when asked: the pipeline package
    loads numpy, and ``mirflow --help`` must stay instant)."""
    from ..pipeline.bundled import bundled_pipelines as found

    return found()


def resolve_pipeline(argument: str) -> Path:
    """A pipeline file path, or the name of a bundled pipeline (``default``)."""
    from ..pipeline import find_pipeline

    try:
        return find_pipeline(argument)
    except LookupError as err:
        raise CliError(str(err)) from None


def load_pipeline_or_fail(argument: str, registry):
    from ..pipeline import PipelineError, load_pipeline

    try:
        return load_pipeline(resolve_pipeline(argument), registry)
    except PipelineError as err:
        raise CliError(str(err)) from None


def finite_seconds(ctx, param, value):
    """A click callback: --start/--end must be finite (click's float type takes ``nan``)."""
    import math

    if value is not None and not math.isfinite(value):
        raise CliError(f"--{param.name}: expected a finite number of seconds, got {value}")
    return value


def unreadable_result(path: str, error: Exception) -> CliError:
    """The one-line error for a result whose JSON parses but whose fields have the wrong types."""
    return CliError(f"{shown(path)}: not a valid mirflow result ({type(error).__name__}: {shown(error)})")


def read_result(path: str, source_field: str) -> dict:
    """A mirflow result document read from ``path``, with its timeline and the source field the
    command needs (``duration`` to draw, ``path`` to find the audio); one-line errors."""
    import json
    import math

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["timeline"], data["source"][source_field]  # noqa: B018  (a mirflow result has both)
    except OSError as err:
        raise CliError(f"{shown(path)}: cannot read ({err.strerror})") from None
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{shown(path)}: not a mirflow result (JSON with 'source' and 'timeline')") from None
    duration = data["source"].get("duration")
    if not isinstance(data["timeline"], dict):
        raise unreadable_result(path, TypeError("timeline must be a mapping"))
    if source_field == "duration" and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                       or not math.isfinite(duration) or duration < 0):
        raise unreadable_result(path, ValueError(f"source.duration must be a finite number of seconds, got {duration!r}"))
    return data


def expand_inputs(inputs: tuple[str, ...]) -> list[str]:
    """Files as given, directories searched recursively for audio, globs expanded."""
    import glob

    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not matches:
                raise CliError(f"{shown(item)}: directory holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            found.extend(matches)
        elif path.is_file():
            found.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise CliError(f"{shown(item)}: pattern matches no files")
            found.extend(matches)
        else:
            raise CliError(f"{shown(item)}: no such file or directory")
    return list(dict.fromkeys(found))
