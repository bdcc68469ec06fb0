"""``mirflow evaluate``: score a pipeline's results against reference annotations."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import click

from .common import CliError, expand_inputs, jobs_option, load_pipeline_or_fail, shown


@click.command()
@click.argument("pipeline")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--truth", "truth_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of annotations named like the audio: SONG.jams, .beats/.txt, .lab, .bpm, .key.")
@click.option("--results", "results_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Score results already in this folder instead of running PIPELINE.")
@click.option("--seams", is_flag=True,
              help="Also run with chunking forced on (30 s chunks) and off, and report how the timelines differ.")
@jobs_option("CPU worker processes.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.pass_obj
def evaluate(obj, pipeline, inputs, truth_dir, results_dir, seams, jobs, as_json):
    """Score PIPELINE on INPUTS against the annotations in --truth (mir_eval: beat and downbeat
    F-measure, tempo Acc1/Acc2, key MIREX score, chord major/minor and sevenths WCSR)."""
    try:
        from .. import evaluate as scoring

        import mir_eval  # noqa: F401
    except ImportError:
        raise CliError("mirflow evaluate needs mir_eval: pip install 'mirflow[eval]'") from None
    pm, registry = obj.plugins()
    spec = load_pipeline_or_fail(pipeline, registry)
    paths = expand_inputs(inputs)
    references, problems = {}, []
    for path in paths:  # every truth file read and checked before any audio: all problems at once
        files = scoring.references_for(path, truth_dir)
        if not files:
            problems.append(f"{shown(path)}: no annotation in {shown(truth_dir)} "
                            f"(expected {shown(Path(path).stem)}.jams, .beats, .lab, ...)")
            continue
        try:
            references[path] = scoring.load_reference(files)
        except scoring.ReferenceError as error:
            problems.extend(shown(line) for line in str(error).splitlines())
    if problems:
        raise CliError("\n".join(problems))
    with tempfile.TemporaryDirectory(prefix="mirflow-evaluate-") as temp:
        results = (_read_results(paths, Path(results_dir)) if results_dir
                   else _run(spec, registry, pm, paths, Path(temp) / "as-is", jobs, obj))
        rows = [(Path(p).name, scoring.score(scoring.predicted(results[p]), references[p])) for p in paths]
        seam_rows = _seam_report(spec, registry, pm, paths, Path(temp), jobs, obj) if seams else []
    if as_json:
        click.echo(json.dumps({"pipeline": spec.name, "files": dict(rows), "seams": dict(seam_rows)}, indent=2))
        return
    click.echo(scoring.table(rows))
    if seam_rows:
        click.echo("\nchunked (30 s chunks) vs. whole file:\n" + scoring.table(seam_rows))


def _read_results(paths: list[str], folder: Path) -> dict[str, dict]:
    from ..results import output_names

    names, results = output_names(paths), {}
    for path in paths:
        result_path = folder / f"{names[path]}.json"
        if not result_path.exists():
            raise CliError(f"{shown(path)}: no result {shown(result_path)} (run the pipeline first, or leave out --results)")
        try:
            results[path] = json.loads(result_path.read_text(encoding="utf-8"))
            results[path]["timeline"]  # noqa: B018  (what the scores read)
        except (OSError, ValueError, KeyError, TypeError):
            raise CliError(f"{shown(result_path)}: not a mirflow result (JSON with a 'timeline')") from None
    return results


def _run(spec, registry, pm, paths, out: Path, jobs, obj) -> dict[str, dict]:
    from ..scheduler import run_pipeline

    outcomes, _ = run_pipeline(spec, registry, pm, paths, jobs=jobs, inline=jobs == 1, disabled=obj.disabled,
                               output_dir=out, formats=("json",), force=True)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise CliError(failed[0].error or f"{failed[0].path}: analysis failed", exit_code=1)
    return _read_results(paths, out)


def _seam_report(spec, registry, pm, paths, temp: Path, jobs, obj) -> list[tuple[str, dict]]:
    """Per file: beat F-measure (10 ms window) and chord agreement of chunked vs. whole."""
    from .. import evaluate as scoring

    chunked = _run(replace(spec, chunking=replace(spec.chunking, enabled=True, min_duration=0.0, length=30.0,
                                                  overlap=min(spec.chunking.overlap, 10.0))),
                   registry, pm, paths, temp / "chunked", jobs, obj)
    whole = _run(replace(spec, chunking=replace(spec.chunking, enabled=False)), registry, pm, paths,
                 temp / "whole", jobs, obj)
    rows = []
    for path in paths:
        a, b = scoring.predicted(chunked[path]), scoring.predicted(whole[path])
        row = {}
        if b.beats is not None and len(b.beats):
            row["beats_agree"] = scoring.event_agreement(a.beats, b.beats)
        if b.chords:
            row["chords_agree"] = scoring.chord_scores(a.chords or [], b.chords)["chords_majmin"]
        row["chunks"] = float(len(chunked[path]["chunks"]))
        rows.append((Path(path).name, row))
    return rows
