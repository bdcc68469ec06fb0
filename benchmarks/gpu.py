"""The networks on a GPU against the same run on the CPU: what ``device`` changes.

    .venv/bin/python benchmarks/gpu.py                           # default and full, 5, 20 and 60 minutes
    .venv/bin/python benchmarks/gpu.py --minutes 5 --pipelines default
    .venv/bin/python benchmarks/gpu.py --write                   # also rewrite the table in docs/performance.md

Each row pair is ``mirflow run PIPELINE SONG --device cpu`` and ``--device auto`` one after
the other on the same synthesized song (the whole command, one CPU worker per core, plus the
GPU process where a step goes to the GPU lane): wall seconds, CPU seconds of every process,
peak memory of them all, and the device each step's result says it ran on. madmom's networks
(``madmom_fast.beats``/``downbeats``, ``chords.cnn_crf``/``deepchroma``) are ``auto`` steps: on
a machine where onnxruntime has a CUDA provider (onnxruntime-gpu) and an NVIDIA driver they
run in the GPU lane; elsewhere ``auto`` is the CPU run again, and the pair shows what that costs
(nothing but noise). Also printed: what onnxruntime sees (``mirflow doctor``'s probe).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from run import MIRFLOW, arguments, measure_cpu, publish, write_song

PIPELINES = ("default", "full")
LENGTHS = (5, 20, 60)


def onnxruntime_sees() -> str:
    """onnxruntime's version and providers, and why it cannot use a GPU here (if it cannot)."""
    from mirflow.plugins._onnx import cuda_problem

    done = subprocess.run([sys.executable, "-c", "import onnxruntime as o; print(o.__version__, "
                           "', '.join(o.get_available_providers()))"], capture_output=True, text=True)
    seen = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
    return f"onnxruntime {seen}; GPU lane for madmom's networks: {cuda_problem() or 'yes'}"


def run_song(pipeline: str, song: Path, out: Path, device: str) -> dict:
    wall, peak, _, cpu = measure_cpu([MIRFLOW, "run", pipeline, str(song), "-o", str(out), "--force", "--format",
                                      "json", "--device", device])
    result = json.loads((out / f"{song.stem}.json").read_text())
    devices: dict[str, list[str]] = {}
    for step_id, step in result["steps"].items():
        if step.get("device"):
            devices.setdefault(step["device"], []).append(step_id)
    return {"wall": wall, "cpu": cpu, "peak": peak, "devices": devices}


def format_row(pipeline: str, minutes: float, device: str, row: dict, cpu_wall: float | None) -> str:
    ratio = f"{row['wall'] / cpu_wall:.2f}" if cpu_wall else "1.00"
    devices = "; ".join(f"{name}: {', '.join(steps)}" for name, steps in sorted(row["devices"].items()))
    return (f"| `{pipeline}` | {minutes:g} min | `--device {device}` | {row['wall']:.1f} s | {ratio} | "
            f"{row['cpu']:.1f} s | {row['peak']:.0f} | {devices} |")


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--minutes", default=",".join(f"{m:g}" for m in LENGTHS))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    args = parser.parse_args()
    seen = onnxruntime_sees()
    print(seen, flush=True)
    lines = [f"Machine: {os.cpu_count()} cores; {seen}. Each pair on one synthesized song, one after the other.", "",
             "| pipeline | song | run | wall | / `--device cpu` | CPU, all processes | peak MB, all | "
             "device each step ran on |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for minutes in [float(m) for m in args.minutes.split(",")]:
            song = temp / f"song{minutes:g}.wav"
            write_song(song, minutes, seed=11)
            for pipeline in args.pipelines.split(","):
                cpu = run_song(pipeline, song, temp / f"{pipeline}-cpu", "cpu")
                lines.append(format_row(pipeline, minutes, "cpu", cpu, None))
                print(lines[-1], flush=True)
                auto = run_song(pipeline, song, temp / f"{pipeline}-auto", "auto")
                lines.append(format_row(pipeline, minutes, "auto", auto, cpu["wall"]))
                print(lines[-1], flush=True)
            song.unlink()
    publish("\n".join(lines), "gpu", args.write)


if __name__ == "__main__":
    main()
