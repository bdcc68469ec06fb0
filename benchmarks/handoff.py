"""How to hand a chunk's audio to a worker process: pickled through a pipe, or a path to
a memory-mapped raw file that the worker maps. Prints a table.

    .venv/bin/python benchmarks/handoff.py
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

SECONDS, RATE, ROUNDS = 120, 44100, 20


def worker(conn):
    while (message := conn.recv()) is not None:
        kind, value = message
        if kind == "array":
            data = value
        else:
            path, first, last = value
            data = np.memmap(path, dtype=np.float32, mode="r")[first:last]
        conn.send(float(data.sum()))  # read every sample, as an analyzer does


def main() -> None:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=worker, args=(child,))
    process.start()
    audio = np.random.default_rng(0).standard_normal(SECONDS * RATE * 4).astype(np.float32)  # a 480 s track
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "track.f32"
        audio.tofile(raw)
        first, last = SECONDS * RATE, 2 * SECONDS * RATE
        rows = []
        for kind, payload in (("pickled array through a pipe", ("array", audio[first:last])),
                              ("memory-mapped file (path + range)", ("map", (str(raw), first, last)))):
            parent.send(payload)
            parent.recv()
            began = time.perf_counter()
            for _ in range(ROUNDS):
                parent.send(payload)
                parent.recv()
            rows.append((kind, (time.perf_counter() - began) / ROUNDS * 1000))
    parent.send(None)
    process.join()
    megabytes = SECONDS * RATE * 4 / 1e6
    print(f"Handing one {SECONDS} s mono 44.1 kHz chunk ({megabytes:.0f} MB of float32) to a worker:\n")
    print("| method | ms per chunk |")
    print("|---|---|")
    for kind, ms in rows:
        print(f"| {kind} | {ms:.2f} |")


if __name__ == "__main__":
    main()
