"""``mirflow table``: one row per result file, for a library's overview (mirflow.table)."""

from __future__ import annotations

import click

from .common import CliError

SUFFIXES = (".csv", ".jsonl", ".parquet")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the table here: .csv, .jsonl or .parquet (needs pyarrow). Default: CSV on stdout.")
@click.option("--columns", default=None, metavar="LIST",
              help="Comma-separated columns, in this order (default: all the fixed ones; "
                   "summary.<name> for any other summary entry).")
@click.pass_obj
def table(obj, results, output, columns):
    """One row per result JSON in RESULTS (files, or folders searched recursively).

    Files that are not results mirflow can read are named on stderr, one line each, and left
    out; the command fails (exit 1) only when none could be read.
    """
    from pathlib import Path

    from .. import table as library
    from ..io import write_atomic

    suffix = Path(output).suffix.lower() if output else ".csv"
    if suffix not in SUFFIXES:
        raise CliError(f"{output}: unknown table format {suffix or '(no suffix)'!r} (write .csv, .jsonl or .parquet)")
    paths = library.find_results(results)
    rows, skipped = [], 0
    for path in paths:
        try:
            rows.append(library.row(library.load_result(path), path))
        except library.NotAResult as err:
            skipped += 1
            click.echo(f"mirflow: {path}: {err}", err=True)
    if not rows:
        where = ", ".join(results)
        raise CliError(f"no mirflow result could be read in {where}" + (f" ({skipped} files skipped)" if skipped else ""),
                       exit_code=1)
    try:
        chosen = library.choose_columns(columns, rows)
        content = library.render(rows, chosen, suffix)
    except ValueError as err:
        raise CliError(str(err)) from None
    if output is None:
        click.echo(content, nl=False)
        return
    write_atomic(Path(output), content)
    if not obj.quiet:
        click.echo(f"{output}: {len(rows)} rows" + (f" ({skipped} files skipped)" if skipped else ""), err=True)
