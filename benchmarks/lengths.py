"""Speed and memory by song length and pipeline: where the time and the memory go.

    .venv/bin/python benchmarks/lengths.py                       # 0.5, 2, 5, 20, 60 minutes, every bundled pipeline
    .venv/bin/python benchmarks/lengths.py --minutes 5,60 --pipelines default
    .venv/bin/python benchmarks/lengths.py --write               # also rewrite the table in docs/performance.md

Each row is one ``mirflow run PIPELINE SONG --force`` (the whole command, imports included,
one worker per core) on a synthesized song. While it runs, every process of its tree is
sampled every 0.2 s: peak PSS (proportional set size: memory shared between processes counts
once) per process, labelled by role (the coordinator, each worker by its lane and slot), and
the peak of their sum. Seconds per step come from the result: the CPU time the workers spent
on its chunk units and its merge (``cpu_seconds``), and in brackets the wall time of those
units (``seconds``), both summed over workers; where the wall time is well above the CPU
time, the step waited for a core. For 5 minutes, madmom's own processors giving the
``default`` pipeline's answers (downbeat RNN + DBN, CNN key, CNN chord features + CRF) on the
whole file in one process (``benchmarks/madmom_direct.py all``) run beside it, and then
``--pairs`` more times alternating with ``default`` (timings on a shared 2-core machine vary by
~15 % from run to run: the ratio is given as the median of the pairs, with their range).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from run import MIRFLOW, ROOT, arguments, measure, measure_cpu, publish, write_song

PIPELINES = ("fast", "default", "full", "commercial")
LENGTHS = (0.5, 2, 5, 20, 60)


def role(pid: int, root: int) -> str:
    """Who a process is: the coordinator, a worker (its lane and slot, from the numba cache
    folder the executor gives each slot), or another helper."""
    if pid == root:
        return "coordinator"
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    for item in environment:
        if item.startswith(b"NUMBA_CACHE_DIR="):
            return "worker " + Path(item.split(b"=", 1)[1].decode()).name
    return "resource tracker" if b"resource_tracker" in command else "other"


def run_song(pipeline: str, song: Path, out: Path) -> dict:
    """Wall seconds, peak MB in total and per role, and CPU and unit seconds per step of one run."""
    peaks: dict[str, float] = {}
    roles: dict[int, str] = {}

    def each(pid: int, root: int, mb: float) -> None:
        name = roles.setdefault(pid, role(pid, root))
        peaks[name] = max(peaks.get(name, 0.0), mb)

    wall, peak, _, cpu = measure_cpu([MIRFLOW, "run", pipeline, str(song), "-o", str(out), "--force", "--format",
                                      "json"], each=each)
    result = json.loads((out / f"{song.stem}.json").read_text())
    steps = {sid: (step["cpu_seconds"], step["seconds"]) for sid, step in result["steps"].items()}
    return {"wall": wall, "cpu": cpu, "peak": peak, "peaks": peaks, "steps": steps}


def format_row(pipeline: str, minutes: float, row: dict, madmom: float | None) -> str:
    processes = ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(row["peaks"].items()) if mb >= 1)
    steps = ", ".join(f"{sid} {cpu:.1f} ({wall:.1f})" for sid, (cpu, wall) in
                      sorted(row["steps"].items(), key=lambda i: -i[1][0]) if max(cpu, wall) >= 0.05)
    ratio = f"{row['wall'] / madmom:.2f}" if madmom else "-"
    per_hour = row["cpu"] * 60 / minutes
    return (f"| `{pipeline}` | {minutes:g} min | {row['wall']:.1f} s | {minutes * 60 / row['wall']:.0f}x | {ratio} | "
            f"{row['cpu']:.1f} s | {per_hour:.0f} s | {row['peak']:.0f} | {processes} | {steps} |")


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--minutes", default=",".join(f"{m:g}" for m in LENGTHS))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--pairs", type=int, default=3, help="alternating bare madmom / default runs at 5 minutes")
    args = parser.parse_args()
    lengths = [float(m) for m in args.minutes.split(",")]
    pipelines = args.pipelines.split(",")
    header = [f"Machine: {os.cpu_count()} cores; `mirflow run PIPELINE SONG` (whole command, one worker per core), "
              "synthesized songs. Peak MB: the largest sum of PSS over all processes at one moment, then each "
              "process's own peak. Per step: CPU seconds of its chunk units and merge (in brackets their wall "
              "seconds), summed over workers. CPU: user + system seconds of every process of the command "
              "(decode, coordinator, workers; the kernel's accounting), and per hour of audio.", "",
              "| pipeline | song | wall | realtime | / bare madmom | CPU, all processes | CPU per audio hour | "
              "peak MB, all | peak MB per process | CPU (unit) seconds per step |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines, pairs = list(header), None
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for minutes in lengths:
            song = temp / f"song{minutes:g}.wav"
            write_song(song, minutes, seed=11)
            madmom = None
            if minutes == 5:
                madmom, madmom_peak, _, madmom_cpu = measure_cpu([sys.executable, str(ROOT / "benchmarks" /
                                                                      "madmom_direct.py"), "all", str(song)])
                lines.append(f"| bare madmom (`benchmarks/madmom_direct.py all`) | 5 min | {madmom:.1f} s | "
                             f"{300 / madmom:.0f}x | 1.00 | {madmom_cpu:.1f} s | {madmom_cpu * 12:.0f} s | "
                             f"{madmom_peak:.0f} | one process | - |")
                print(lines[-1], flush=True)
            for pipeline in pipelines:
                row = run_song(pipeline, song, temp / f"out-{pipeline}")
                lines.append(format_row(pipeline, minutes, row, madmom))
                print(lines[-1], flush=True)
            if minutes == 5 and args.pairs and "default" in pipelines:
                pairs = alternating_pairs(song, temp, args.pairs)
                print(pairs, flush=True)
            song.unlink()
    if pairs:
        lines += ["", pairs]
    publish("\n".join(lines), "lengths", args.write)


def alternating_pairs(song: Path, temp: Path, count: int) -> str:
    """Bare madmom and ``default`` on the 5-minute song, one after the other ``count`` times:
    the ratio of each pair, and their median."""
    import statistics

    madmom, ours = [], []
    for n in range(count):
        seconds, _, _ = measure([sys.executable, str(ROOT / "benchmarks" / "madmom_direct.py"), "all", str(song)])
        madmom.append(seconds)
        ours.append(run_song("default", song, temp / f"pair-{n}")["wall"])
    ratios = [a / b for a, b in zip(ours, madmom)]
    return (f"5 minutes, `default` against bare madmom in {count} alternating pairs: "
            f"{', '.join(f'{s:.1f}' for s in ours)} s against {', '.join(f'{s:.1f}' for s in madmom)} s; "
            f"ratio {statistics.median(ratios):.2f} (median of the pairs; {min(ratios):.2f}–{max(ratios):.2f}).")


if __name__ == "__main__":
    main()
