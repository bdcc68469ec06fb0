"""Scheduler vs. sequential baseline: wall time, peak memory, realtime factor, lane busy time.

    .venv/bin/python benchmarks/run.py            # every case, prints a table
    .venv/bin/python benchmarks/run.py --quick    # the folder and the 5-minute song only
    .venv/bin/python benchmarks/run.py --write    # also rewrite the table in benchmarks/README.md

(a) is ``mirflow run default --jobs N`` (the scheduler); (b) is ``benchmarks/sequential.py``:
the same analyzers called one after another in one process on whole files. Peak memory is
the largest sum of PSS (proportional set size, so memory-mapped audio shared by several
workers counts once) over the process and all its children, sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
KEYS = ["A:min", "C:maj", "E:min", "G:maj", "D:min", "F:maj", "B:min", "D:maj"]


def byte_compile_mirflow() -> None:
    """Measure mirflow as installed: pip compiles a package's modules to byte-code when it
    installs it, while this checkout's editable install has none until Python writes it, and a
    shell with PYTHONDONTWRITEBYTECODE=1 (this machine's) never does, so every process of every
    measured command compiled ~100 modules again (~0.1-0.2 s each: the coordinator before it
    starts the workers, then each worker). madmom, numpy and the rest were compiled at install."""
    import compileall

    for folder in ("framework", "plugins"):
        compileall.compile_dir(ROOT / folder, quiet=1)


byte_compile_mirflow()


def arguments(doc: str, where: str = "benchmarks/README.md") -> argparse.ArgumentParser:
    """Every benchmark's command line: its docstring as help, and --write."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {where}")
    return parser


def publish(table: str, marker: str, write: bool, path: Path | None = None) -> None:
    """Print the table; with --write, put it between its markers in the page that holds them
    (``path`` if given and it has them, else whichever of docs/*.md, README.md and
    benchmarks/README.md does: tables moved between pages keep their scripts working)."""
    print()
    print(table)
    if write:
        replace_block(marker_page(marker, path), marker, table)


def marker_page(marker: str, path: Path | None = None) -> Path:
    """The one page that holds ``<!-- marker -->``."""
    candidates = ([path] if path else []) + sorted((ROOT / "docs").glob("*.md")) + [
        ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    for page in candidates:
        if page.exists() and f"<!-- {marker} -->" in page.read_text():
            return page
    raise SystemExit(f"no page holds the marker <!-- {marker} -->")


def replace_block(path: Path, marker: str, text: str) -> None:
    """Rewrite what lies between ``<!-- marker -->`` and ``<!-- /marker -->`` in ``path``."""
    before, rest = path.read_text().split(f"<!-- {marker} -->", 1)
    _, after = rest.split(f"<!-- /{marker} -->", 1)
    path.write_text(f"{before}<!-- {marker} -->\n{text}\n<!-- /{marker} -->{after}")


def write_song(path: Path, minutes: float, seed: int) -> None:
    """A synthesized song, written in one-minute pieces so that hours stay cheap to make."""
    from mirflow.synth import make_song

    bpm = 90 + (seed * 17) % 80
    root = KEYS[seed % len(KEYS)]
    progression = [root, "F:maj" if root != "F:maj" else "C:maj", "G:maj", "E:maj"]
    piece = make_song(progression, bpm=bpm, duration=min(minutes, 1.0) * 60, seed=seed)
    with soundfile.SoundFile(path, "w", piece.sample_rate, 1, subtype="PCM_16") as out:
        whole, written = int(minutes * 60 * piece.sample_rate), 0
        while written < whole:
            block = piece.samples[: whole - written]
            out.write(block)
            written += len(block)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_pss_mb(root: int) -> float:
    """PSS of ``root`` and every descendant, in MB."""
    return sum(pss_kb(pid) for pid in descendants(root)) / 1024


def pss_kb(pid: int | str) -> int:
    """One process's PSS in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: list[str], also=lambda: 0.0, each=None, env=None) -> tuple[float, float, str]:
    """(wall seconds, peak MB, stdout) of a command and its children (plus ``also()`` MB:
    processes that are not its children but work for it, e.g. a running Ray cluster).
    ``each(pid, root, mb)``, if given, is told every process's PSS at every sample; ``env``:
    the command's environment (default: this one's)."""
    return measure_cpu(command, also, each, env)[:3]


def measure_cpu(command: list[str], also=lambda: 0.0, each=None, env=None) -> tuple[float, float, str, float]:
    """:func:`measure`'s figures and the CPU seconds (user + system) of the command and every
    process it started and reaped (decode, coordinator, workers): the kernel's own accounting."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0.0]

    def sample():
        while process.poll() is None:
            now = 0.0
            for pid in descendants(process.pid):
                mb = pss_kb(pid) / 1024
                if each is not None:
                    each(pid, process.pid, mb)
                now += mb
            peak[0] = max(peak[0], now + also())
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - began
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {stderr.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak[0], stdout, cpu


def run_case(name: str, files: list[Path], jobs: int, baseline: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        wall, peak, stdout = measure([MIRFLOW, "run", "default", *map(str, files), "-o", out,
                                      "--jobs", str(jobs), "--force"])
    match = re.search(r"\| (cpu busy .*)$", stdout.strip().splitlines()[-1])
    audio = sum(soundfile.info(str(f)).duration for f in files)
    row = {"case": name, "audio": audio, "wall": wall, "peak": peak, "lanes": match.group(1) if match else "-"}
    if baseline:
        row["seq_wall"], row["seq_peak"], _ = measure([sys.executable, str(ROOT / "benchmarks" / "sequential.py"),
                                                       *map(str, files)])
    return row


def format_table(rows: list[dict], jobs: int) -> str:
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; scheduler with --jobs {jobs}.", "",
             "| case | audio | (a) scheduler | (b) sequential | a/b | realtime factor (a) | peak MB (a) | peak MB (b) | lanes (a) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seq = f"{r['seq_wall']:.1f} s" if "seq_wall" in r else "-"
        ratio = f"{r['wall'] / r['seq_wall']:.2f}" if "seq_wall" in r else "-"
        seq_peak = f"{r['seq_peak']:.0f}" if "seq_peak" in r else "-"
        lines.append(f"| {r['case']} | {r['audio'] / 60:.1f} min | {r['wall']:.1f} s | {seq} | {ratio} | "
                     f"{r['audio'] / r['wall']:.1f}x | {r['peak']:.0f} | {seq_peak} | {r.get('lanes', '-')} |")
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--quick", action="store_true", help="only the folder and the 5-minute song")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-bench-"))
    clips = []
    for n in range(20):
        clips.append(work / f"clip{n:02d}.wav")
        write_song(clips[-1], 0.5, seed=n)
    cases = [("folder of 20 x 30 s clips", clips, True)]
    for minutes, baseline in ((5, True), (20, True), (60, False)):
        if args.quick and minutes > 5:
            continue
        song = work / f"song{minutes}.wav"
        write_song(song, minutes, seed=minutes)
        cases.append((f"one {minutes}-minute song", [song], baseline))
    rows = []
    for name, files, baseline in cases:
        rows.append(run_case(name, files, args.jobs, baseline))
        print(format_table(rows[-1:], args.jobs).splitlines()[-1], flush=True)
    table = format_table(rows, args.jobs)
    publish(table, "table", args.write)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
