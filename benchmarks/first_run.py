"""The first run after an install against warm runs, per bundled pipeline, on the bundled example.

    .venv/bin/python benchmarks/first_run.py                 # default, fast and full
    .venv/bin/python benchmarks/first_run.py --write         # also rewrite the table in docs/performance.md

A first run is ``mirflow run PIPELINE examples/example.ogg`` (the whole command, one worker per
core) with ``XDG_CACHE_HOME`` pointing at an empty folder, so mirflow's numba caches are empty as
after ``pip install``; the same command then runs ``--warm`` more times with those caches (each
``--force``d into a fresh output folder). What compiles on a first run: librosa's numba
functions when a step imports librosa (``Analyzer.compiles_on_first_run``), mirflow's beat
Viterbi and LSTM kernels (built in C, once per machine) and, where a pipeline asks for it, the
8-bit chord network.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from run import MIRFLOW, ROOT, arguments, measure, publish

EXAMPLE = ROOT / "examples" / "example.ogg"


def timed_runs(pipeline: str, warm: int, temp: Path) -> tuple[float, list[float]]:
    """Wall seconds of the first run on empty caches, then of ``warm`` runs after it."""
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environment["XDG_CACHE_HOME"] = str(temp / f"cache-{pipeline}")
    walls = []
    for n in range(1 + warm):
        wall, _, _ = measure([MIRFLOW, "-q", "run", pipeline, str(EXAMPLE), "-o", str(temp / f"out-{pipeline}-{n}"),
                              "--force", "--format", "json"], env=environment)
        walls.append(wall)
        print(f"{pipeline} run {n + 1}: {wall:.1f} s", flush=True)
    return walls[0], walls[1:]


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--pipelines", default="default,fast,full")
    parser.add_argument("--warm", type=int, default=3, help="warm runs after the first (their median is the reference)")
    args = parser.parse_args()
    lines = [f"Machine: {os.cpu_count()} cores; `mirflow run PIPELINE examples/example.ogg` (60 s of audio, whole "
             "command, one worker per core); first run with empty caches, then warm runs.", "",
             "| pipeline | first run | warm runs | median warm | first / warm | compiles librosa's numba code |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as temp:
        for pipeline in args.pipelines.split(","):
            first, warm = timed_runs(pipeline, args.warm, Path(temp))
            median = statistics.median(warm)
            lines.append(f"| `{pipeline}` | {first:.1f} s | {', '.join(f'{w:.1f}' for w in warm)} s | {median:.1f} s | "
                         f"{first / median:.1f}x | {'yes' if compiles(pipeline) else 'no'} |")
    publish("\n".join(lines), "first_run", args.write)


def compiles(pipeline: str) -> bool:
    from mirflow.cli.run import _compiles
    from mirflow.pipeline import find_pipeline, load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

    registry = collect_analyzers(make_plugin_manager())
    return _compiles(load_pipeline(find_pipeline(pipeline), registry), registry)


if __name__ == "__main__":
    main()
