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
time, the step waited for a core. For 5 minutes, bare madmom runs beside it on the whole
file in one process, two ways (``benchmarks/madmom_direct.py``): ``every``, issue 32's
baseline, madmom's beat, downbeat, key and chord processors (beat RNN + DBN, downbeat RNN +
DBN, CNN key, CNN chord features + CRF); and ``all``, only the processors that give the
``default`` pipeline's answers (no beat tracker: ``default``'s beats come from the downbeat
tracker). Then ``--pairs`` more times, alternating with ``default`` (timings on a shared 2-core
machine vary by ~15 % from run to run: each ratio is given as the median of the pairs, with
their range).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from run import MIRFLOW, ROOT, arguments, measure, measure_cpu, publish, write_song

PIPELINES = ("fast", "default", "full", "commercial")
# bare madmom at 5 minutes: (madmom_direct.py mode, what it runs)
BASELINES = (("every", "beat, downbeat, key and chord processors: issue 32's baseline"),
             ("all", "downbeat, key and chord processors: the default's answers"))
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
    roles: dict[int, str] = {}
    highest: dict[int, float] = {}  # MB per process

    def each(pid: int, root: int, mb: float) -> None:
        # A process sampled between its fork and its exec still shows its parent's environment:
        # "other" is asked again at the next sample (a worker once read as "other" for good).
        if roles.get(pid, "other") == "other":
            roles[pid] = role(pid, root)
        highest[pid] = max(highest.get(pid, 0.0), mb)

    wall, peak, _, cpu = measure_cpu([MIRFLOW, "run", pipeline, str(song), "-o", str(out), "--force", "--format",
                                      "json"], each=each)
    peaks: dict[str, float] = {}
    for pid, mb in highest.items():
        peaks[roles[pid]] = max(peaks.get(roles[pid], 0.0), mb)
    result = json.loads((out / f"{song.stem}.json").read_text())
    steps = {sid: (step["cpu_seconds"], step["seconds"]) for sid, step in result["steps"].items()}
    return {"wall": wall, "cpu": cpu, "peak": peak, "peaks": peaks, "steps": steps}


def format_row(pipeline: str, minutes: float, row: dict, madmom: dict) -> str:
    """One table row; ``madmom``: the baselines' wall seconds by mode (empty but at 5 minutes)."""
    processes = ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(row["peaks"].items()) if mb >= 1)
    steps = ", ".join(f"{sid} {cpu:.1f} ({wall:.1f})" for sid, (cpu, wall) in
                      sorted(row["steps"].items(), key=lambda i: -i[1][0]) if max(cpu, wall) >= 0.05)
    ratio = " | ".join(f"{row['wall'] / madmom[mode]:.2f}" if mode in madmom else "-" for mode, _ in BASELINES)
    per_hour = row["cpu"] * 60 / minutes
    return (f"| `{pipeline}` | {minutes:g} min | {row['wall']:.1f} s | {minutes * 60 / row['wall']:.0f}x | {ratio} | "
            f"{row['cpu']:.1f} s | {per_hour:.0f} s | {row['peak']:.0f} | {processes} | {steps} |")


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--minutes", default=",".join(f"{m:g}" for m in LENGTHS))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--pairs", type=int, default=3, help="rounds of bare madmom (both ways) and default, alternating, at 5 minutes")
    args = parser.parse_args()
    lengths = [float(m) for m in args.minutes.split(",")]
    pipelines = args.pipelines.split(",")
    header = [f"Machine: {os.cpu_count()} cores; `mirflow run PIPELINE SONG` (whole command, one worker per core), "
              "synthesized songs. Peak MB: the largest sum of PSS over all processes at one moment, then each "
              "process's own peak. Per step: CPU seconds of its chunk units and merge (in brackets their wall "
              "seconds), summed over workers. CPU: user + system seconds of every process of the command "
              "(decode, coordinator, workers; the kernel's accounting), and per hour of audio.", "",
              "| pipeline | song | wall | realtime | / bare madmom (`every`) | / madmom, default's answers (`all`) | "
              "CPU, all processes | CPU per audio hour | peak MB, all | peak MB per process | CPU (unit) seconds per step |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines, pairs = list(header), None
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for minutes in lengths:
            song = temp / f"song{minutes:g}.wav"
            write_song(song, minutes, seed=11)
            madmom: dict[str, float] = {}
            if minutes == 5:
                for mode, runs in BASELINES:
                    seconds, peak, _, cpu = measure_cpu(bare_madmom(mode, song))
                    madmom[mode] = seconds
                    ratios = " | ".join("1.00" if other == mode else "-" for other, _ in BASELINES)
                    lines.append(f"| bare madmom, {runs} (`benchmarks/madmom_direct.py {mode}`) | 5 min | "
                                 f"{seconds:.1f} s | {300 / seconds:.0f}x | {ratios} | {cpu:.1f} s | {cpu * 12:.0f} s | "
                                 f"{peak:.0f} | one process | - |")
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


def bare_madmom(mode: str, song: Path) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "madmom_direct.py"), mode, str(song)]


def alternating_pairs(song: Path, temp: Path, count: int) -> str:
    """Each bare madmom and ``default`` on the 5-minute song, one after the other ``count``
    times: the ratio of ``default`` to each baseline in each round, and their medians."""
    import statistics

    madmom: dict[str, list[float]] = {mode: [] for mode, _ in BASELINES}
    ours = []
    for n in range(count):
        for mode, _ in BASELINES:
            madmom[mode].append(measure(bare_madmom(mode, song))[0])
        ours.append(run_song("default", song, temp / f"pair-{n}")["wall"])
    parts = []
    for mode, runs in BASELINES:
        ratios = [a / b for a, b in zip(ours, madmom[mode])]
        parts.append(f"against `{mode}` ({runs}) {', '.join(f'{s:.1f}' for s in madmom[mode])} s, ratio "
                     f"{statistics.median(ratios):.2f} (median; {min(ratios):.2f}–{max(ratios):.2f})")
    return (f"5 minutes, `default` in {count} rounds alternating with bare madmom: "
            f"{', '.join(f'{s:.1f}' for s in ours)} s; " + "; ".join(parts) + ".")


if __name__ == "__main__":
    main()
