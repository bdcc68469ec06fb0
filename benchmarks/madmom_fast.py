"""madmom_fast vs. madmom's own processors: beats + downbeats + tempo on one song.

    .venv/bin/python benchmarks/madmom_fast.py              # a 5-minute song, prints a table
    .venv/bin/python benchmarks/madmom_fast.py --minutes 20
    .venv/bin/python benchmarks/madmom_fast.py --write      # also rewrite benchmarks/README.md

Every row is a whole command (process start and imports included), run one after another on
the same synthesized song: madmom's DBNBeatTracker and DBNDownBeatTracker processors called
directly on the whole file (``madmom_direct.py``); mirflow with chunking off in one process
(``--jobs 1``); mirflow chunk-parallel through the scheduler (``--jobs`` = cores).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from run import MIRFLOW, ROOT, arguments, measure, publish, write_song

PIPELINE = """name: beats-{name}
chunking: {chunking}
steps:
  - analyzer: madmom_fast.downbeats
    id: beats
  - analyzer: madmom_fast.tempo
output:
  formats: [json]
"""


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        song = temp / "song.wav"
        write_song(song, args.minutes, seed=5)
        for name, chunking in (("whole", "off"), ("chunked", "{min_duration: 60, length: 120, overlap: 10}")):
            (temp / f"{name}.yaml").write_text(PIPELINE.format(name=name, chunking=chunking))
        direct = [sys.executable, str(ROOT / "benchmarks" / "madmom_direct.py")]
        cases = [
            ("madmom DBNBeatTracker, whole file (beats only)", direct + ["beats", str(song)]),
            ("madmom DBNDownBeatTracker, whole file (beats + downbeats)", direct + ["downbeats", str(song)]),
            ("mirflow, chunking off, --jobs 1",
             [MIRFLOW, "run", str(temp / "whole.yaml"), str(song), "-o", str(temp / "a"), "--jobs", "1"]),
            (f"mirflow, 120 s chunks, --jobs {args.jobs}",
             [MIRFLOW, "run", str(temp / "chunked.yaml"), str(song), "-o", str(temp / "b"), "--jobs",
              str(args.jobs)]),
        ]
        rows = []
        for name, command in cases:
            wall, peak, _ = measure(command)
            rows.append((name, wall, peak))
            print(f"{name}: {wall:.1f} s, {peak:.0f} MB", flush=True)
    reference = rows[1][1]
    lines = [f"One {args.minutes:g}-minute song, beats + downbeats + tempo, {os.cpu_count()} cores:", "",
             "| run | seconds | / madmom DBNDownBeatTracker | realtime factor | peak MB |", "|---|---|---|---|---|"]
    for name, wall, peak in rows:
        lines.append(f"| {name} | {wall:.1f} | {wall / reference:.2f} | {args.minutes * 60 / wall:.1f}x | {peak:.0f} |")
    table = "\n".join(lines)
    publish(table, "madmom", args.write)


if __name__ == "__main__":
    main()
