"""``mirflow run``: a pipeline over files, directories or globs."""

from __future__ import annotations

import time

import click

from .common import CliError, executor_options, expand_inputs, jobs_option, load_pipeline_or_fail, shown


@click.command()
@click.argument("pipeline")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Where results go (default: the pipeline's output.directory, else ./results).")
@click.option("--format", "formats", default=None, metavar="LIST",
              help="Comma-separated result formats: json, jams, lab, csv, mid, png and any a plugin adds "
                   "(default: the pipeline's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Override the pipeline's resources.device.")
@jobs_option("CPU worker processes (default: resources.cpu.workers, else one per core; at most 4 per core). "
             "--jobs 1 runs everything in this process.")
@click.option("--force", is_flag=True, help="Recompute files whose result is already up to date.")
@click.option("--plot", is_flag=True, help="Also write a PNG of each timeline (needs mirflow[plot]).")
@executor_options
@click.pass_obj
def run(obj, pipeline, inputs, output_dir, formats, device, jobs, force, plot, executor, ray_address):
    """Run PIPELINE (a YAML file or a bundled name) over INPUTS (files, folders, globs).

    Files whose result already exists for the same audio, pipeline and analyzer versions
    are skipped (resume); several runs on one folder share the files between them.
    """
    from ..scheduler import ExecutorUnavailable, NothingForTheGpu, run_pipeline
    from ..caches import numba_cache_is_cold

    pm, registry = obj.plugins()
    spec = load_pipeline_or_fail(pipeline, registry)
    executor = executor or spec.resources.executor
    if ray_address and executor != "ray":
        raise CliError("--ray-address needs --executor ray (or resources.executor: ray in the pipeline)")
    paths = expand_inputs(inputs)
    chosen_formats = _parse_formats(formats, registry.exporters) if formats else spec.formats
    if plot:
        from .plot import require_matplotlib

        require_matplotlib()
    from .progress import ProgressLine

    pm.register(ProgressLine(len(paths), live=None if not obj.quiet else False, log=obj.verbose > 0,
                             on_file=None if obj.quiet else print_file_event))
    inline = jobs == 1 and executor == "local"
    if executor == "local" and not inline and not obj.quiet and numba_cache_is_cold() and _compiles(spec, registry):
        click.echo("mirflow: first run on this machine: numba compiles librosa's code for it as the workers "
                   "start (about 40 s more, once)", err=True)
    output_dir = output_dir or spec.output_directory or "results"
    try:  # before any worker starts: a read-only or impossible folder stops the run at once
        from ..io import check_writable

        check_writable(output_dir)
    except OSError as err:
        raise CliError(f"{shown(output_dir)}: cannot write results there ({err.strerror or err})") from None
    began = time.perf_counter()
    try:
        outcomes, scheduler = run_pipeline(
            spec, registry, pm, paths, jobs=jobs, inline=inline, disabled=obj.disabled,
            device=device, formats=chosen_formats, output_dir=output_dir,
            force=force, plot=plot, keep_tracebacks=obj.verbose > 0, executor=executor, ray_address=ray_address)
    except NothingForTheGpu as err:
        raise CliError(str(err)) from None
    except ExecutorUnavailable as err:
        raise CliError(str(err)) from None
    elapsed = time.perf_counter() - began
    if not obj.quiet:
        click.echo(final_table(outcomes, elapsed, scheduler.busy, scheduler.cpu_workers))
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        if outcome.error:
            click.echo(f"mirflow: {shown(outcome.error)}", err=True)
    if failed:
        unread = sum(o.result is None for o in failed)
        where = [f"{len(failed) - unread} with a result that lists them under 'errors'" if len(failed) > unread else "",
                 f"{unread} without a result" if unread else ""]
        raise CliError(f"{len(failed)} of {len(outcomes)} files had errors ({', '.join(w for w in where if w)})",
                       exit_code=1)


def final_table(outcomes, elapsed: float, busy: dict, workers) -> str:
    """Files ok / failed / skipped, wall time, realtime factor and how busy each lane was."""
    import os

    audio = sum(o.duration for o in outcomes)
    counts = {"ok": sum(o.ok and not o.skipped for o in outcomes), "failed": sum(not o.ok for o in outcomes),
              "skipped": sum(bool(o.skipped) for o in outcomes)}
    speed = f"{audio / elapsed:.1f}x realtime" if elapsed > 0 and audio else "-"
    cpu_slots = workers or os.cpu_count() or 1
    lanes = ", ".join(f"{lane} busy {seconds:.1f} s ({seconds / (elapsed * (cpu_slots if lane == 'cpu' else 1)):.0%})"
                      for lane, seconds in busy.items() if seconds > 0 and elapsed > 0)
    return (f"files: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped | "
            f"{elapsed:.1f} s for {audio:.0f} s of audio ({speed})" + (f" | {lanes}" if lanes else ""))


def _parse_formats(text: str, known) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    for fmt in chosen:
        if fmt not in known:
            raise CliError(f"--format: unknown format {fmt!r} (choose from {', '.join(known)})")
    return chosen


def print_file_event(event) -> None:
    """A few readable lines about one file, printed the moment it is done."""
    from .. import events

    if event.kind == events.FILE_SKIPPED:
        click.echo(f"{shown(event.file)}: skipped ({event.data.get('reason')})")
    elif event.kind == events.FILE_FAILED:
        click.echo(f"{shown(event.file)}: failed, no result")
    elif event.data.get("result") is not None:
        click.echo(summary_text(event.data["result"], event.data.get("written") or [], event.seconds or 0.0))


def summary_text(result: dict, written: list[str], seconds: float) -> str:
    summary, timeline, source = result["summary"], result["timeline"], result["source"]
    lines = [f"{shown(source['name'])}  ({source['duration']:.1f} s, {len(result['chunks'])} chunk(s))"]
    if (summary.get("tempo") or {}).get("bpm") is not None:
        lines.append(f"  tempo      {summary['tempo']['bpm']:.1f} BPM")
    if "key" in summary:
        lines.append(f"  key        {summary['key']['label']}  (confidence {summary['key'].get('confidence') or 0:.2f})")
    if "time_signature" in summary:
        lines.append(f"  metre      {summary['time_signature']['label']}")
    if timeline["beats"]:
        downbeats = f", downbeats {len(timeline['downbeats'])}" if timeline["downbeats"] else ""
        lines.append(f"  beats      {len(timeline['beats'])}{downbeats}")
    if timeline["chords"]:
        labels = [c["label"] for c in timeline["chords"]]
        labels_text = " ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
        lines.append(f"  chords     {labels_text}  ({len(labels)} segments)")
    if timeline.get("sections"):
        sections_text = " ".join(f"{s['label']}" + (f"({s['function']})" if s.get("function") else "")
                                 for s in timeline["sections"][:10]) + (" ..." if len(timeline["sections"]) > 10 else "")
        lines.append(f"  sections   {sections_text}")
    changes = next((step["outputs"].get("tempo_changes") for step in result["steps"].values()
                    if step["status"] == "ok" and step["outputs"].get("tempo_changes")), None)
    if changes:
        lines.append("  tempo changes " + ", ".join(f"{c['time']:.0f}s {c['from_bpm']:.0f}->{c['to_bpm']:.0f} BPM"
                                                   for c in changes[:6]))
    if len(timeline["keys"]) > 1:
        lines.append("  key changes " + ", ".join(f"{k['start']:.0f}s {k['label']}" for k in timeline["keys"]))
    for note in source.get("notes") or []:
        lines.append(f"  note       {note}")
    for error in result["errors"]:
        skipped = result["steps"].get(error.get("step") or "", {}).get("status") == "skipped"
        lines.append(f"  {'skipped' if skipped else 'error':<11}{error.get('step') or error.get('stage')}: "
                     + (error["message"].removeprefix("skipped: ") if skipped else error["message"]))
    speed = f", {source['duration'] / seconds:.1f}x realtime" if seconds else ""
    lines.append(f"  wrote      {shown(', '.join(written)) or 'nothing'}  ({seconds:.1f} s{speed})")
    return "\n".join(shown(line) for line in lines)  # a message may name a file: one line each


def _compiles(spec, registry) -> bool:
    """Whether a step of the pipeline compiles code as the workers set it up (librosa's numba).
    A plugin whose answer fails only loses the notice: the run goes on."""

    def compiles(step) -> bool:
        try:
            return bool(registry.analyzers[step.analyzer](**step.params).compiles_on_first_run())
        except Exception:  # noqa: BLE001 - a third-party plugin's bug must not stop the run
            return False

    return any(compiles(step) for step in spec.steps)
