"""An idle `mirflow serve` gives its memory back: the server's memory and a 30 s upload's
latency, cold (no workers), warm (workers up), and after the idle timeout stopped them.

    .venv/bin/python benchmarks/serve_idle.py            # prints the table
    .venv/bin/python benchmarks/serve_idle.py --write    # also into docs/server.md (marker serve-idle)

`mirflow serve --jobs 2 --idle-workers-timeout 10` on a free port; memory is the sum of PSS
over the server and its worker processes; latency is one POST /api/audio/analyze of a
synthesized 30 s clip (the `default` pipeline), request to result.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

from run import MIRFLOW, arguments, publish, tree_pss_mb, write_song

ROOT = Path(__file__).resolve().parents[1]
IDLE = 10.0


def children(pid: int) -> list[str]:
    return [child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]


def main() -> None:
    import httpx

    args = arguments(__doc__, "docs/server.md (marker serve-idle)").parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-serve-bench-"))
    clip = work / "clip.wav"
    write_song(clip, 0.5, seed=7)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([MIRFLOW, "-q", "serve", "--port", str(port), "--jobs", "2",
                               "--idle-workers-timeout", str(IDLE)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    rows = []

    def post() -> float:
        began = time.perf_counter()
        with clip.open("rb") as handle:
            response = httpx.post(base + "/api/audio/analyze", files={"file": ("clip.wav", handle, "audio/wav")},
                                  data={"pipeline": "default"}, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - began

    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        quiet = time.monotonic() + 120  # the device probe (TensorFlow in a subprocess) ends first
        while time.monotonic() < quiet and children(server.pid):
            time.sleep(0.5)
        rows.append(("started, device probe done, no job yet", tree_pss_mb(server.pid), None))
        rows.append(("first upload (cold: workers start)", None, post()))
        rows.append(("after it, workers warm", tree_pss_mb(server.pid), None))
        rows.append(("second upload (warm)", None, post()))
        time.sleep(IDLE + 3.0)
        rows.append((f"idle {IDLE:.0f} s (the timeout): workers stopped", tree_pss_mb(server.pid), None))
        rows.append(("next upload (cold again)", None, post()))
        rows.append(("after it, workers warm again", tree_pss_mb(server.pid), None))
    finally:
        server.terminate()
        server.wait(30)
    lines = [f"`mirflow serve --jobs 2 --idle-workers-timeout {IDLE:.0f}`, a 30 s clip, `default`:", "",
             "| moment | memory (PSS, server + workers) | upload latency |", "|---|---|---|"]
    for moment, memory, latency in rows:
        lines.append(f"| {moment} | {f'{memory:.0f} MB' if memory is not None else '-'} | "
                     f"{f'{latency:.1f} s' if latency is not None else '-'} |")
    publish("\n".join(lines), "serve-idle", args.write)
    clip.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
