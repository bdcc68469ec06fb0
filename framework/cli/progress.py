"""A progress line on stderr, fed by the ``progress`` hook like any other listener."""

from __future__ import annotations

import sys
import time

import click

from .. import events
from ..hookspecs import hookimpl
from .common import shown


class ProgressLine:
    """Files done / total, units done, elapsed and ETA; redrawn in place on a terminal.

    Off a terminal (CI, pipes) it prints nothing unless ``log`` is set, then one line
    per finished or failed file. ``on_file`` gets each file's finishing event as it comes
    (``mirflow run`` prints the file's summary then, not at the end of the run).
    """

    def __init__(self, total_files: int, *, live: bool | None = None, log: bool = False, on_file=None):
        self.total = total_files
        self.on_file = on_file
        self.live = sys.stderr.isatty() if live is None else live
        self.log = log
        self.files_done = 0
        self.units_done = 0
        self.units_failed = 0
        self.began = time.monotonic()

    @hookimpl
    def progress(self, event) -> None:
        if event.kind == events.UNIT_FINISHED:
            self.units_done += 1
        elif event.kind == events.UNIT_FAILED:
            self.units_failed += 1
        elif event.kind in (events.FILE_FINISHED, events.FILE_FAILED, events.FILE_SKIPPED):
            self.files_done += 1
            if self.log:
                state = {events.FILE_FAILED: "failed", events.FILE_SKIPPED: "skipped"}.get(
                    event.kind, "done" if event.data.get("ok") else "failed")
                self._clear()
                click.echo(f"{state}: {shown(event.file)}", err=True)
            if self.on_file:
                self._clear()
                self.on_file(event)
        elif event.kind == events.RUN_FINISHED:
            self._clear()
            return
        if self.live:
            self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.began
        eta = ""
        if 0 < self.files_done < self.total:
            eta = f"  ETA {_clock(elapsed / self.files_done * (self.total - self.files_done))}"
        failed = f", {self.units_failed} failed" if self.units_failed else ""
        line = f"[{self.files_done}/{self.total} files] {self.units_done} units{failed}  {_clock(elapsed)}{eta}"
        sys.stderr.write("\r" + line.ljust(70))
        sys.stderr.flush()

    def _clear(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:02d}:{seconds:02d}"
