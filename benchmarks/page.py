"""How fast the live page draws a long result, in headless Chromium.

    .venv/bin/python benchmarks/page.py            # prints the table
    .venv/bin/python benchmarks/page.py --write    # also rewrites the table in docs/server.md

``mirflow serve`` runs on a free port; the page is given a result without a job (a drawn
20-minute song at 150 BPM: 3,000 beats, 1,500 chord segments, 40 sections, a tempo curve) and
times, in the page, each action until the frame after it is drawn (two animation frames, so
style, layout and paint are included): the whole song, zooming in to an eighth of it, a pan
and zooming back out. Five rounds; the median and the slowest.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from run import arguments, publish  # noqa: E402
from songs import drawn_result  # noqa: E402

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
CHROMIUM = os.environ.get("MIRFLOW_CHROMIUM", "/usr/bin/chromium")
TIMED = """async ([action, argument]) => {
  const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  await frame();
  const began = performance.now();
  if (action === "show") mirflow.show(argument);
  else mirflow.setView(argument[0], argument[1]);
  await frame();
  return [performance.now() - began, mirflow.timings()];
}"""


def serve() -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([MIRFLOW, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("mirflow serve did not answer")


def main() -> None:
    from playwright.sync_api import sync_playwright

    args = arguments(__doc__, "docs/server.md").parse_args()
    result = drawn_result(1200.0, 150.0)
    actions = [("whole song", "show", result), ("zoom in to 1/8", "view", [525.0, 675.0]),
               ("pan by 1/16", "view", [600.0, 750.0]), ("zoom out to whole", "view", [0.0, 1200.0])]
    times: dict[str, list[float]] = {name: [] for name, _, _ in actions}
    process, base = serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            for _ in range(5):
                for name, action, argument in actions:
                    milliseconds, _ = page.evaluate(TIMED, [action, argument])
                    times[name].append(milliseconds)
            elements = page.evaluate("document.querySelectorAll('#song *').length")
            browser.close()
    finally:
        process.terminate()
        process.wait(30)
    rows = [f"| {name} | {statistics.median(values):.0f} | {max(values):.0f} |" for name, values in times.items()]
    text = "\n".join([
        f"Headless Chromium ({Path(CHROMIUM).name}), 1280 px wide, a 20-minute result: {len(result['timeline']['beats'])} "
        f"beats, {len(result['timeline']['chords'])} chord segments, {len(result['timeline']['sections'])} sections "
        f"({elements} SVG elements drawn for the whole song). Milliseconds until the frame after the action is "
        "painted; five rounds.", "",
        "| action | median ms | slowest ms |", "|---|---|---|", *rows])
    publish(text, "page", args.write)


if __name__ == "__main__":
    main()
