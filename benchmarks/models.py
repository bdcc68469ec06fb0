"""Zoo-model throughput on this machine's CPU: a graph with msd-musicnn's layer sizes (random
weights), batch sizes 1, 8, 32 and 64, and the share of time in feature extraction.

    .venv/bin/python benchmarks/models.py            # prints the table
    .venv/bin/python benchmarks/models.py --write    # also rewrites it in benchmarks/README.md

Feature extraction (Essentia's TensorflowInputMusiCNN mel bands and patches, the CPU lane)
is timed in this process; inference (TensorFlow, the GPU lane's code running on the CPU) in
a separate interpreter, as in mirflow, since TensorFlow must never precede Essentia.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import arguments, publish  # noqa: E402

INFERENCE = """
import json, os, sys, time
import numpy as np
os.environ["MIRFLOW_MODELS"] = sys.argv[1]
from mirflow.plugins.essentia_gpu.runner import Graph
from mirflow.plugins.essentia_gpu.zoo import find
info = find("msd-musicnn-1")
graph = Graph(info.graph, info.input, [info.output], None)
patches = np.random.default_rng(0).standard_normal((256, 187, 96)).astype(np.float32)
rates = {}
for batch in (1, 8, 32, 64):
    graph(patches[:batch])  # warm up this shape
    began, done = time.perf_counter(), 0
    while time.perf_counter() - began < 3.0:
        graph(patches[:batch]); done += batch
    rates[batch] = done / (time.perf_counter() - began)
print(json.dumps(rates))
"""


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    from mirflow.plugins.essentia_gpu.runner import mel_patches
    from mirflow.synth import make_song

    with tempfile.TemporaryDirectory() as temp:
        subprocess.run([sys.executable, str(ROOT / "tests" / "zoo" / "make_tiny_zoo.py"), temp, "--realistic"],
                       check=True, capture_output=True)
        done = subprocess.run([sys.executable, "-c", INFERENCE, temp], check=True, capture_output=True, text=True)
        rates = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    song = make_song(["C:maj", "G:maj"], bpm=120, duration=60.0)
    import soxr

    audio = soxr.resample(song.samples, 44100, 16000).astype(np.float32)
    mel_patches(audio[:16000 * 5], "msd-musicnn-1")  # warm up
    began = time.perf_counter()
    patches, _ = mel_patches(audio, "msd-musicnn-1")
    extraction = time.perf_counter() - began
    per_patch = extraction / len(patches)
    lines = [f"msd-musicnn-sized graph (random weights), CPU, TensorFlow defaults; 60 s of audio = {len(patches)} "
             f"patches of 187 x 96; mel bands + patches: {extraction:.2f} s ({len(patches) / extraction:.0f} patches/s).",
             "", "| batch size | patches per second (inference) | share of time in feature extraction |",
             "|---|---|---|"]
    for batch, rate in rates.items():
        share = per_patch / (per_patch + 1 / rate)
        lines.append(f"| {batch} | {rate:.0f} | {share:.0%} |")
    table = "\n".join(lines)
    publish(table, "models", args.write)


if __name__ == "__main__":
    main()
