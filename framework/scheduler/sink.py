"""The result sink: where a file's result goes once its steps are settled.

It claims the file's result name (several ``mirflow run`` processes on one folder never do
a file twice), tells a decode which existing result to check (resume), builds the result
value from the step records, says what to export (a unit: a plot takes a second and a
plugin's exporter may fail), and turns a finished file into its :class:`FileOutcome` and
its last event.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import events
from ..results import build_result, with_errors
from .claims import Claim
from .plan import FilePlan, FileState
from .records import FileOutcome
from .units import ExportWork, Existing


class ResultSink:
    def __init__(self, pipeline, registry, emit, *, output_dir, formats=None, plot: bool = False,
                 force: bool = False):
        self.pipeline, self.registry, self.emit = pipeline, registry, emit
        self.output_dir = Path(output_dir) if output_dir is not None else None  # None: results as values only
        formats = tuple(formats if formats is not None else pipeline.formats) if self.output_dir else ()
        if plot and self.output_dir and "png" not in formats:
            formats += ("png",)
        self.formats = formats
        self.force = force  # analyze again even when an up-to-date result exists

    def result_path(self, plan: FilePlan) -> Path | None:
        return self.output_dir / f"{plan.name}.json" if self.output_dir else None

    def claim(self, plan: FilePlan) -> FileOutcome | None:
        """Claim the file's result name; an outcome when another mirflow run holds it."""
        if self.output_dir is None:
            return None
        plan.claim = Claim.take(self.output_dir, plan.name)
        if plan.claim is not None:
            return None
        self.emit(events.FILE_SKIPPED, file=plan.path, data={"reason": "claimed by another mirflow run"})
        return FileOutcome(plan.path, ok=True, skipped="claimed by another mirflow run")

    def existing(self, plan: FilePlan) -> Existing | None:
        """The result a decode checks before decoding (None: analyze whatever is there)."""
        path = self.result_path(plan)
        if self.force or path is None or not path.exists():
            return None
        return Existing(str(path), self.pipeline.hash,
                        {s.id: self.registry.get(s.analyzer).version for s in self.pipeline.steps},
                        tuple(self.formats))

    def build(self, plan: FilePlan) -> ExportWork | None:
        """Build the result of a file whose steps are settled; its export, when it is
        written anywhere."""
        plan.result = build_result(pipeline=self.pipeline, path=plan.path, source=plan.audio,
                                   content_hash=plan.sha256, spans=plan.spans,
                                   records={sid: s.record for sid, s in plan.steps.items()}, registry=self.registry)
        if not self.formats:
            return None
        return ExportWork(plan.result, str(self.output_dir), plan.name, self.formats, plan.audio)

    def exported(self, plan: FilePlan, completion) -> None:
        if completion.ok:
            plan.result = with_errors(plan.result, completion.value.errors)
            plan.written = completion.value.written
            plan.move(FileState.DONE)
        else:
            plan.error = f"{plan.path}: writing the result failed: {completion.error}"
            plan.move(FileState.FAILED)

    def outcome(self, plan: FilePlan) -> FileOutcome:
        """The outcome of a finished file, told to listeners as its last event."""
        seconds = time.perf_counter() - plan.began
        if plan.state is FileState.CANCELLED:
            self.emit(events.FILE_CANCELLED, file=plan.path, data={"message": "cancelled"})
            return FileOutcome(plan.path, ok=False, error=f"{plan.path}: cancelled", seconds=seconds)
        if plan.state is FileState.FAILED:
            self.emit(events.FILE_FAILED, file=plan.path, data={"message": plan.error})
            return FileOutcome(plan.path, ok=False, error=plan.error, seconds=seconds)
        if plan.state is FileState.UP_TO_DATE:
            self.emit(events.FILE_SKIPPED, file=plan.path, data={"reason": "result is up to date"})
            return FileOutcome(plan.path, ok=True, skipped="result is up to date", seconds=seconds,
                               written=[str(self.result_path(plan))])
        result = plan.result
        ok = not result["errors"] or all(
            error.get("step") and self.pipeline.step(error["step"]).optional for error in result["errors"])
        self.emit(events.FILE_FINISHED, file=plan.path, seconds=seconds,
                  data={"ok": ok, "written": plan.written, "duration": plan.audio.duration, "result": result})
        return FileOutcome(plan.path, ok=ok, written=plan.written, seconds=seconds, duration=plan.audio.duration,
                           result=result)
