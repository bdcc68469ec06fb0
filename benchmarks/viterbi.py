"""The beat and bar Viterbi's forward pass: the C kernels against numba's JIT, side by side.

    .venv/bin/python benchmarks/viterbi.py                 # 5 minutes of frames, prints a table
    .venv/bin/python benchmarks/viterbi.py --minutes 20
    .venv/bin/python benchmarks/viterbi.py --write         # also rewrite the table in docs/performance.md

The downbeat tracker's two bar models (3/4 and 4/4 at its default tempo range) decode the same
activation (random, beat + downbeat below 1, as the tests use; the kernels' cost does not depend
on the values) with each implementation in turn, three rounds alternating, best CPU seconds of
one core each. The JIT is what runs where no C compiler works; both give the same scores and
back-pointers to the bit, which the script checks on every call. The C library's build and the
JIT's compile are timed once, with empty caches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from run import arguments, publish

MEASURE = r"""
import json, sys, time
import numpy as np
t = time.perf_counter()
from mirflow.plugins.madmom_fast import Downbeats, native, viterbi
c = native.kernels()
built = time.perf_counter() - t
t = time.perf_counter()
jit = viterbi._compile_shared()
compiled = time.perf_counter() - t
tracker = Downbeats()
frames = int(float(sys.argv[1]) * 60 * 100)
activation = (np.random.default_rng(5).random((frames, 2)) ** 3 * 0.45).astype(np.float32)
rows = []
for beats, model, hmm in zip((3, 4), tracker.chain_models(55.0), tracker.hmms(tracker.dbn(55.0))):
    densities = viterbi.log_densities(hmm, activation)
    arguments = (model.prev_states, model.pointers, model.log_probs, model.first, model.length, model.band,
                 model.chosen, model.column, model.log_initial, densities, model.columns)
    best = {"c": [], "jit": []}
    for _ in range(3):
        outputs = []
        for name, kernels in (("c", c), ("jit", jit)):
            start = time.process_time()
            outputs.append(kernels.forward(*arguments) if name == "jit" else kernels[0](*arguments))
            best[name].append(time.process_time() - start)
        (scores, back), (jit_scores, jit_back) = outputs
        assert np.array_equal(scores, jit_scores) and np.array_equal(back, jit_back), "the kernels disagree"
    rows.append({"bar": f"{beats}/4", "states": len(model.pointers) - 1, "c": min(best["c"]), "jit": min(best["jit"])})
print(json.dumps({"built": built, "compiled": compiled, "rows": rows}))
"""


def main() -> None:
    parser = arguments(__doc__, "docs/performance.md")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    import json

    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, XDG_CACHE_HOME=cache, NUMBA_CACHE_DIR=os.path.join(cache, "slot"))
        done = subprocess.run([sys.executable, "-c", MEASURE, str(args.minutes)], capture_output=True, text=True,
                              env=environment)
    if done.returncode != 0:
        sys.exit(f"viterbi.py: the measurement failed: {done.stderr.strip().splitlines()[-1:]}")
    measured = json.loads(done.stdout)
    lines = [f"Machine: {os.cpu_count()} cores; {args.minutes:g} minutes of frames (100 per second), one core, "
             f"best of three alternating rounds; built once with empty caches: the C library in "
             f"{measured['built']:.2f} s, the JIT's two kernels in {measured['compiled']:.2f} s.",
             "", "| bar model | states | C | numba JIT | JIT / C |", "|---|---|---|---|---|"]
    for row in measured["rows"]:
        lines.append(f"| {row['bar']} | {row['states']:,} | {row['c']:.3f} s | {row['jit']:.3f} s | "
                     f"{row['jit'] / row['c']:.2f} |")
    publish("\n".join(lines), "viterbi", args.write)


if __name__ == "__main__":
    main()
