"""``mirflow plot``: a PNG of a result's timeline."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, finite_seconds, read_result, shown, unreadable_result


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError("plotting needs matplotlib: pip install 'mirflow[plot]'") from None


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise CliError(f"--size: expected WIDTHxHEIGHT in pixels such as 1600x900, got {text!r}") from None
    if not (100 <= width <= 20000 and 100 <= height <= 20000):
        raise CliError(f"--size: {width}x{height} is outside 100..20000 pixels")
    return width, height


@click.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default=None, help="PNG to write (default: beside RESULT, .png).")
@click.option("--start", type=float, default=None, callback=finite_seconds, help="First second to show.")
@click.option("--end", type=float, default=None, callback=finite_seconds, help="Last second to show.")
@click.option("--size", default="1600x900", show_default=True, help="Picture size in pixels.")
@click.pass_obj
def plot(obj, result, output, start, end, size):
    """Draw RESULT (a mirflow JSON result): waveform, beats, chords, keys, tempo, chunk seams."""
    require_matplotlib()
    from ..plot import PlotError, plot_result

    width, height = parse_size(size)
    data = read_result(result, "duration")
    target = Path(output) if output else Path(result).with_suffix(".png")
    try:
        plot_result(data, target, start=start, end=end, width=width, height=height)
    except PlotError as err:
        raise CliError(f"{shown(result)}: {err}") from None
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:  # fields of the wrong type
        raise unreadable_result(result, err) from None
    if not obj.quiet:
        click.echo(f"wrote {shown(target)}")
