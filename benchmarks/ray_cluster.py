"""The Ray executor beside the local one, and what a cluster would do with a 60-minute file.

    .venv/bin/python benchmarks/ray_cluster.py            # prints the tables
    .venv/bin/python benchmarks/ray_cluster.py --write    # also into docs/cluster.md (marker ray)
    .venv/bin/python benchmarks/ray_cluster.py --quick    # the clips only, no 60-minute song

1. Side by side, each a whole command on this machine (`mirflow run default ... --jobs 2`;
   the same with `--executor ray`, which starts and stops its own Ray instance; and with
   `--ray-address auto` on a Ray started before by `ray start --head --num-cpus 2`):
   20 x 30 s clips and one 20-minute song; wall time, the ratios to local, and the peak
   memory of all processes (the sum of PSS over the command and its children, and over the
   running cluster's processes; Ray's GCS, raylet and actors included; sampled every 0.2 s).
2. A simulated cluster on this machine (`ray.cluster_utils.Cluster`, three raylets with 1, 2
   and 4 CPU slots: seven actors on two cores, so not a speed test): which node ran how many
   units of the 20 clips, and how busy each node was.
3. The arithmetic for a real cluster, from the unit events of one local run of a 60-minute
   song: the serial part (the decode, the longest merge, the result's export) and the chunk
   work that N workers share.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from run import MIRFLOW, arguments, measure, pss_kb, publish, write_song

RAY = str(Path(MIRFLOW).with_name("ray"))

ROOT = Path(__file__).resolve().parents[1]


WAYS = {"local": ["--executor", "local"], "ray": ["--executor", "ray"],
        "running": ["--executor", "ray", "--ray-address", "auto"]}


def side_by_side(cases: list[tuple[str, list[Path]]]) -> list[dict]:
    """Each case three ways: local workers, Ray started by mirflow, a Ray cluster already up."""
    rows = []
    for name, files in cases:
        row = {"case": name, "audio": sum(_duration(f) for f in files)}
        for way, options in WAYS.items():
            if way == "running":
                subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--include-dashboard=false"], check=True,
                               capture_output=True)
            try:
                with tempfile.TemporaryDirectory() as out:
                    wall, peak, stdout = measure([MIRFLOW, "run", "default", *map(str, files), "-o", out, "--jobs",
                                                  "2", "--force", *options],
                                                 also=ray_cluster_pss_mb if way == "running" else lambda: 0.0)
            finally:
                if way == "running":
                    subprocess.run([RAY, "stop"], check=True, capture_output=True)
            busy = re.search(r"cpu busy ([\d.]+) s", stdout)
            row[way] = {"wall": wall, "peak": peak, "busy": float(busy.group(1)) if busy else 0.0}
        rows.append(row)
        print(format_side_by_side(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def ray_cluster_pss_mb() -> float:
    """PSS of the processes of a Ray cluster started with `ray start` (GCS, raylet, actors ...)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in command for mark in (b"ray::", b"raylet", b"gcs_server", b"ray/_private", b"ray/dashboard",
                                            b"ray/autoscaler", b"default_worker")):
            total += pss_kb(entry)
    return total / 1024


def _duration(path: Path) -> float:
    import soundfile

    return soundfile.info(str(path)).duration


def format_side_by_side(rows: list[dict]) -> str:
    lines = ["| case | audio | (a) local | (b) Ray, started by mirflow | (c) Ray, cluster already up | b / a | c / a "
             "| peak MB a / b / c | CPU busy a / b / c |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b, c = r["local"], r["ray"], r["running"]
        lines.append(f"| {r['case']} | {r['audio'] / 60:.1f} min | {a['wall']:.1f} s | {b['wall']:.1f} s | "
                     f"{c['wall']:.1f} s | {b['wall'] / a['wall']:.2f} | {c['wall'] / a['wall']:.2f} | "
                     f"{a['peak']:.0f} / {b['peak']:.0f} / {c['peak']:.0f} | "
                     f"{a['busy']:.0f} / {b['busy']:.0f} / {c['busy']:.0f} s |")
    return "\n".join(lines)


def recorded_run(files: list[Path], **options):
    """Run ``default`` in this process; the unit events and the scheduler."""
    import mirflow
    from mirflow.cli.common import bundled_pipelines
    from mirflow.pipeline import load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager
    from mirflow.scheduler import run_pipeline

    class Recorder:
        events: list = []

        @mirflow.hookimpl
        def progress(self, event):
            self.events.append(event)

    pm = make_plugin_manager()
    recorder = Recorder()
    recorder.events = []
    pm.register(recorder)
    registry = collect_analyzers(pm)
    pipeline = load_pipeline(bundled_pipelines()["default"], registry)
    with tempfile.TemporaryDirectory() as out:
        outcomes, scheduler = run_pipeline(pipeline, registry, pm, [str(f) for f in files], output_dir=out,
                                           force=True, **options)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return recorder.events, scheduler


def simulated_cluster(files: list[Path]) -> str:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for cpus in (2, 4):
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    try:
        slots = {node["NodeID"]: int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]}
        events, scheduler = recorded_run(files, executor="ray", jobs=7)
    finally:
        ray.shutdown()
        cluster.shutdown()
    units, busy = Counter(), defaultdict(float)
    for event in events:
        node = event.data.get("node") if event.data else None
        if event.kind == "unit_finished" and node in slots:
            units[node] += 1
            busy[node] += event.seconds or 0.0
    lines = ["| node | CPU slots | units run | busy seconds |", "|---|---|---|---|"]
    for number, (node, count) in enumerate(sorted(slots.items(), key=lambda item: item[1])):
        driver = " (driver: decodes, exports)" if node == scheduler.executor.driver_node else ""
        lines.append(f"| {number + 1}{driver} | {count} | {units[node]} | {busy[node]:.1f} |")
    return "\n".join(lines)


def serial_arithmetic(song: Path) -> str:
    """From one local run of ``song``: what stays serial, what N workers share."""
    events, _ = recorded_run([song], jobs=2)
    finished = [e for e in events if e.kind == "unit_finished"]
    by_kind = defaultdict(list)
    for event in finished:
        by_kind[event.data["kind"]].append(event)
    decode = sum(e.seconds for e in by_kind["decode"])
    export = sum(e.seconds for e in by_kind["export"])
    merges = sorted(by_kind["aggregate"], key=lambda e: e.seconds, reverse=True)
    longest = merges[0]
    shared = sum(e.seconds for kind in ("analyze", "prepare", "batch") for e in by_kind[kind])
    shared += sum(e.seconds for e in merges[1:])  # the other merges run beside the longest
    chunk = max(e.seconds for e in by_kind["analyze"])
    serial = decode + longest.seconds + export
    lines = [f"One local run of a {_duration(song) / 60:.0f}-minute song (`default`, --jobs 2): decode "
             f"{decode:.1f} s, the longest merge ({longest.step}) {longest.seconds:.1f} s, export {export:.1f} s: "
             f"**{serial:.1f} s serial**; chunk units and the other merges {shared:.1f} s of CPU (the longest "
             f"single unit {chunk:.1f} s).", "",
             "| workers N | estimate: serial + shared / N (no less than serial + longest unit) |", "|---|---|"]
    for workers in (2, 4, 8, 16, 32, 64):
        estimate = serial + max(shared / workers, chunk)
        lines.append(f"| {workers} | {estimate:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, "docs/cluster.md (marker ray)")
    parser.add_argument("--quick", action="store_true", help="the clips only; no 20- and 60-minute songs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-ray-bench-"))
    clips = []
    for n in range(20):
        clips.append(work / f"clip{n:02d}.wav")
        write_song(clips[-1], 0.5, seed=n)
    cases = [("20 x 30 s clips", clips)]
    if not args.quick:
        write_song(work / "song20.wav", 20, seed=20)
        cases.append(("one 20-minute song", [work / "song20.wav"]))
    header = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, Ray {__import__('ray').__version__}.")
    parts = [header, "", format_side_by_side(side_by_side(cases)), "",
             "Simulated cluster (three raylets on this machine, 1 + 2 + 4 CPU slots), the 20 clips:", "",
             simulated_cluster(clips)]
    if not args.quick:
        write_song(work / "song60.wav", 60, seed=60)
        parts += ["", serial_arithmetic(work / "song60.wav")]
    publish("\n".join(parts), "ray", args.write)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
