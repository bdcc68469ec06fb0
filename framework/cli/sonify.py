"""``mirflow sonify``: hear a result — the song with clicks, chord tones and section cues."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, finite_seconds, read_result, shown, unreadable_result


@click.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default=None,
              help="Audio to write: .wav, .flac or .ogg (default: beside RESULT, .clicks.wav).")
@click.option("--audio", "audio", type=click.Path(dir_okay=False), default=None,
              help="The song's file, when it is no longer where the result says.")
@click.option("--beats/--no-beats", default=True, show_default=True, help="A click on every beat.")
@click.option("--downbeats/--no-downbeats", default=True, show_default=True, help="A higher click on downbeats.")
@click.option("--chords/--no-chords", default=False, show_default=True, help="Each chord's triad, softly.")
@click.option("--sections/--no-sections", default=False, show_default=True, help="A cue where each section starts.")
@click.option("--mix", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="0: only the song; 1: only the clicks and tones.")
@click.option("--start", type=float, default=None, callback=finite_seconds, help="First second to write.")
@click.option("--end", type=float, default=None, callback=finite_seconds, help="Last second to write.")
@click.pass_obj
def sonify(obj, result, output, audio, beats, downbeats, chords, sections, mix, start, end):
    """Write RESULT's song mixed with what the analysis found, to check it by ear."""
    from ..sonify import Layers, SonifyError, sonify as write

    data = read_result(result, "path")
    target = Path(output) if output else Path(result).with_suffix(".clicks.wav")
    try:
        write(data, target, audio=audio, layers=Layers(beats, downbeats, chords, sections), mix=mix,
              start=start, end=end)
    except SonifyError as err:
        raise CliError(f"{shown(result)}: {err}") from None
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:  # fields of the wrong type
        raise unreadable_result(result, err) from None
    if not obj.quiet:
        click.echo(f"wrote {shown(target)}")
