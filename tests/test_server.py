"""mirflow serve, for real: uvicorn on a free loopback port, real uploads, SSE streams, jobs,
and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from mirflow.server.uploads import safe_filename
from mirflow.synth import make_song

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
CHROMIUM = os.environ.get("MIRFLOW_CHROMIUM", "/usr/bin/chromium")


class Server:
    """``mirflow serve`` in a subprocess on a free port; stopped with SIGTERM (uvicorn's own shutdown)."""

    def __init__(self, folder: Path, *options: str, env: dict | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / f"server-{self.port}.log", "w+")
        self.process = subprocess.Popen([MIRFLOW, "serve", "--port", str(self.port), *options],
                                        stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mirflow serve exited: {self.output()}")
            try:
                if httpx.get(self.base + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"mirflow serve did not answer in 90 s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("server"), "--jobs", "2", "--max-upload-mb", "20")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def playwright():
    """Playwright's driver, started once for the module's page tests."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright):
    """Headless Chromium (Debian's), launched once for the module's page tests (each gets a page
    in a fresh context)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
    yield browser
    browser.close()


def write_song(folder: Path, name: str, duration: float, **options) -> Path:
    song = make_song(["C:maj", "G:maj", "A:min", "F:maj"], bpm=120, duration=duration, **options)
    path = folder / name
    soundfile.write(path, song.samples, song.sample_rate)
    return path


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return write_song(tmp_path_factory.mktemp("songs"), "loop.wav", 20.0)


@pytest.fixture(scope="module")
def long_song(tmp_path_factory):
    return write_song(tmp_path_factory.mktemp("long"), "long.flac", 300.0)  # FLAC: under the 20 MB limit


def upload(path: Path, pipeline: str = "default", name: str | None = None):
    return {"files": {"file": (name or path.name, path.read_bytes(), "audio/wav")}, "data": {"pipeline": pipeline}}


def sse(response):
    """Parse a Server-Sent Events response into dicts (id, event, data, received)."""
    event: dict = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                event["data"] = json.loads(event["data"])
                event["received"] = time.monotonic()
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value[1:] if value.startswith(" ") else value


def comparable(result: dict) -> dict:
    """What must not depend on how the file reached mirflow: the analysis, not paths or timings."""
    steps = {sid: {"status": s["status"], "outputs": s["outputs"], "analyzer": s["analyzer"], "version": s["version"]}
             for sid, s in result["steps"].items()}
    return {"timeline": result["timeline"], "summary": result["summary"], "steps": steps,
            "chunks": result["chunks"], "sha256": result["source"]["sha256"]}


def test_pipelines_plugins_health_and_docs_describe_the_server(server):
    pipelines = {p["name"]: p for p in httpx.get(server.base + "/api/pipelines").json()}
    assert {"default", "fast", "full"} <= set(pipelines)
    assert [s["id"] for s in pipelines["default"]["steps"]][:2] == ["beats", "tempo"]
    assert any(s["skipped_because"] for s in pipelines["full"]["steps"])  # no zoo models here: said so
    plugins = {p["name"]: p for p in httpx.get(server.base + "/api/plugins").json()}
    assert plugins["madmom_fast.beats"]["resource"] == "auto"
    assert plugins["essentia_gpu.model"]["resource"] == "gpu"
    assert plugins["madmom_fast.beats"]["params"]["min_bpm"] == 55.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the device probe runs in the background at start-up
        health = httpx.get(server.base + "/api/health").json()
        if "tensorflow" in health["devices"] and "onnxruntime" in health["devices"]:
            break
        time.sleep(1)
    assert health["status"] == "ok" and health["jobs"]["limit"] == 8
    assert "CPU" in health["devices"]["tensorflow"]["devices"]
    assert health["devices"]["tensorflow"]["gpu"] is False and health["devices"]["tensorflow"]["reason"]
    spec = httpx.get(server.base + "/openapi.json").json()
    for path in ("/api/pipelines", "/api/plugins", "/api/health", "/api/audio/analyze", "/api/audio/analyze-streaming",
                 "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/result"):
        assert path in spec["paths"], path
        for operation in spec["paths"][path].values():
            assert operation.get("summary"), (path, operation)
    assert {"JobInfo", "PipelineInfo", "PluginInfo", "Health", "Problem"} <= set(spec["components"]["schemas"])
    docs = httpx.get(server.base + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_analyze_gives_the_same_result_as_the_cli(server, song, tmp_path):
    response = httpx.post(server.base + "/api/audio/analyze", **upload(song), timeout=180)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["source"]["name"] == "loop.wav" and result["source"]["path"] == "loop.wav"
    done = subprocess.run([MIRFLOW, "-q", "run", "default", str(song), "-o", str(tmp_path)], capture_output=True, text=True)
    written = tmp_path / "loop.json"
    assert done.returncode == 0, (done.stderr, written.exists() and json.loads(written.read_text())["errors"])
    cli = json.loads(written.read_text())
    assert comparable(result) == comparable(cli)
    assert len(result["timeline"]["beats"]) > 30 and result["timeline"]["chords"]


def test_streaming_events_arrive_in_order_with_partial_data_before_the_result(server, song):
    with httpx.stream("POST", server.base + "/api/audio/analyze-streaming", **upload(song), timeout=180) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = list(sse(response))
    kinds = [e["event"] for e in received]
    numbered = [e for e in received if "id" in e]
    assert [int(e["id"]) for e in numbered] == list(range(1, len(numbered) + 1))
    assert kinds[0] == "queued" and kinds[-1] == "result"
    order = [k for k in kinds if k in ("queued", "started", "decoded")]
    assert order == ["queued", "started", "decoded"]
    analysis = [i for i, e in enumerate(received) if e["event"].startswith("unit_") and e["data"]["kind"] == "analyze"]
    assert received[analysis[0]]["event"] == "unit_started"
    assert kinds.index("started") < kinds.index("unit_started") < kinds.index("decoded") < analysis[0]  # decoding first
    decoded = received[kinds.index("decoded")]["data"]
    assert abs(decoded["duration"] - 20.0) < 0.1 and decoded["chunks"][0]["end"] == pytest.approx(decoded["duration"])
    partial = [e["data"] for e in received if e["event"] == "partial"]
    chords = [p for p in partial if p["step"] == "chords" and p["chunk"] == 0]
    assert chords and chords[0]["outputs"]["chords"][1]["label"] == "C:maj"  # a chunk's chords, before the merge
    beats = [p for p in partial if p["step"] == "beats" and p["chunk"] is None]
    assert beats and len(beats[0]["outputs"]["beats"]) > 30  # the merged beats, before the final result
    final = received[-1]["data"]["result"]
    assert final["timeline"]["beats"] == beats[0]["outputs"]["beats"]
    gaps = np.diff([e["received"] for e in received])
    assert gaps.max() < 2.0, f"a {gaps.max():.1f} s silence in the stream"
    assert "heartbeat" in kinds or len(received) > 20


def test_a_client_that_reconnects_with_last_event_id_misses_nothing(server, song):
    created = httpx.post(server.base + "/api/jobs", **upload(song), timeout=60)
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    first = []
    with httpx.stream("GET", server.base + f"/api/jobs/{job}/events", timeout=60) as response:
        for event in sse(response):
            if "id" in event:
                first.append(event)
            if len(first) == 3:
                break  # the connection drops here
    with httpx.stream("GET", server.base + f"/api/jobs/{job}/events", headers={"Last-Event-ID": first[-1]["id"]},
                      timeout=180) as response:
        rest = [e for e in sse(response) if "id" in e]
    assert int(rest[0]["id"]) == 4
    assert rest[-1]["event"] == "result"
    with httpx.stream("GET", server.base + f"/api/jobs/{job}/events", timeout=60) as response:
        everything = [e for e in sse(response) if "id" in e]
    assert [(e["id"], e["event"]) for e in first + rest] == [(e["id"], e["event"]) for e in everything]
    status = httpx.get(server.base + f"/api/jobs/{job}").json()
    assert status["state"] == "done" and status["result"]["timeline"]["chords"]
    jams = httpx.get(server.base + f"/api/jobs/{job}/result", params={"format": "jams"})
    assert jams.status_code == 200 and "attachment" in jams.headers["content-disposition"]
    assert any(a["namespace"] == "chord" for a in jams.json()["annotations"])


def test_closing_the_stream_cancels_the_work(server, long_song):
    with httpx.stream("POST", server.base + "/api/audio/analyze-streaming", **upload(long_song), timeout=120) as response:
        assert response.status_code == 200
        for event in sse(response):
            if event["event"] == "queued":
                job = event["data"]["job"]
            if event["event"] == "decoded":  # the plan the page draws: chunks per step
                plan = {p["step"]: len(p["chunks"]) for p in event["data"]["plan"]}
                assert plan == {"beats": 3, "tempo": 1, "chords": 3, "summary": 1, "key": 3, "sections": 3}
            if event["event"] == "unit_finished" and event["data"]["kind"] == "analyze":
                break  # the client goes away in the middle of the analysis
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and httpx.get(server.base + f"/api/jobs/{job}").json()["state"] != "cancelled":
        time.sleep(0.2)
    status = httpx.get(server.base + f"/api/jobs/{job}").json()
    assert status["state"] == "cancelled" and status["result"] is None
    time.sleep(4)  # what was running when it was cancelled has returned by now
    idle = httpx.get(server.base + "/api/health").json()["jobs"]
    assert idle["running"] == 0 and idle["queued"] == 0
    with httpx.stream("GET", server.base + f"/api/jobs/{job}/events", timeout=30) as response:
        log = [e for e in sse(response) if "id" in e]
    assert log[-1]["event"] == "cancelled"
    started = sum(e["event"] == "unit_started" for e in log)
    total = 3 * 5 + 5  # 3 chunks x 5 steps + their merges: far more than ran
    assert started < total / 2


def test_bad_uploads_are_4xx_and_the_server_goes_on(server, song, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(os.urandom(50_000))
    response = httpx.post(server.base + "/api/audio/analyze", **upload(junk), timeout=30)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("junk.wav: cannot decode audio")
    assert str(tmp_path) not in response.text
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n")
    assert httpx.post(server.base + "/api/jobs", **upload(text), timeout=30).status_code == 415
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    response = httpx.post(server.base + "/api/jobs", **upload(big), timeout=60)
    assert response.status_code == 413 and "20 MB" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit is enforced while the body is read
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(22):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    response = httpx.post(server.base + "/api/jobs", content=chunked(), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert httpx.post(server.base + "/api/jobs", **upload(song, pipeline="nope"), timeout=30).status_code == 404
    assert httpx.get(server.base + "/api/jobs/0123456789abcdef").status_code == 404
    assert httpx.get(server.base + "/api/health").status_code == 200


def test_a_client_file_name_never_becomes_a_path(server, song, tmp_path):
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert safe_filename("/abs/song name (live).mp3") == "song name _live_.mp3"
    assert safe_filename("....") == "upload"
    assert safe_filename(None) == "upload"
    response = httpx.post(server.base + "/api/audio/analyze", **upload(song, name="../../../../tmp/evil.wav"), timeout=180)
    assert response.status_code == 200
    assert response.json()["source"]["name"] == "evil.wav"
    assert not Path("/tmp/evil.wav").exists()


def test_a_full_queue_answers_503_until_a_job_ends(tmp_path, long_song, song):
    server = Server(tmp_path, "--max-jobs", "1", "--jobs", "1")
    try:
        first = httpx.post(server.base + "/api/jobs", **upload(long_song), timeout=60)
        assert first.status_code == 202
        refused = httpx.post(server.base + "/api/jobs", **upload(song), timeout=60)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "1 jobs are queued or running" in refused.json()["detail"]
        cancelled = httpx.delete(server.base + f"/api/jobs/{first.json()['id']}").json()
        assert cancelled["state"] == "cancelled"
        assert httpx.post(server.base + "/api/jobs", **upload(song), timeout=60).status_code == 202
    finally:
        server.stop()


@pytest.mark.slow
def test_concurrent_jobs_share_the_gpu_lane_batches(tmp_path, song, tiny_zoo):
    """Two uploads at once on a pipeline with a model step: their chunks go to the model together."""
    zoo = tiny_zoo
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "tags.yaml").write_text(
        "chunking: {min_duration: 5, length: 8, overlap: 2}\nresources: {gpu: {batch_size: 8}}\n"
        "steps:\n  - {analyzer: essentia_gpu.model, id: tags, params: {model: msd-musicnn-1}}\n")
    server = Server(tmp_path, "--pipelines", str(pipelines), "--jobs", "2", env={"MIRFLOW_MODELS": str(zoo)})
    try:
        ids = [httpx.post(server.base + "/api/jobs", **upload(song, pipeline="tags"), timeout=60).json()["id"]
               for _ in range(2)]
        logs = []
        for job in ids:
            with httpx.stream("GET", server.base + f"/api/jobs/{job}/events", timeout=180) as response:
                logs.append([e for e in sse(response) if "id" in e])
        for log in logs:
            assert log[-1]["event"] == "result", log[-1]
            result = log[-1]["data"]["result"]
            assert result["steps"]["tags"]["device"] == "cpu"  # what really ran: no GPU here
            assert len(result["steps"]["tags"]["outputs"]["classes"]["means"]) == 50
        batches = [e["data"] for log in logs for e in log if e["event"] == "unit_started" and e["data"]["kind"] == "batch"]
        assert any(b["batch_files"] == 2 for b in batches), batches
        assert all(b["lane"] == "gpu" and b["batch_size"] <= 8 for b in batches)
    finally:
        server.stop()


@pytest.mark.browser
def test_the_page_shows_progress_and_the_song_in_headless_chromium(server, song, tmp_path, browser):
    shot = tmp_path / "page.png"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.base + "/")
        page.wait_for_selector("#pipeline option[value=default]", state="attached")
        page.set_input_files("#file", str(song))
        page.select_option("#pipeline", "default")
        page.click("#start")
        page.wait_for_selector(".row .chunk", timeout=60_000)  # the chunk rows appear once decoded
        assert page.locator(".row").count() == 6  # a row per step of default (sections included)
        page.wait_for_selector(".row .chunk.running, .row .chunk.done", timeout=60_000)
        page.wait_for_selector("#downloads:not([hidden])", timeout=180_000)
        assert page.locator(".row .chunk.done").count() == 6
        labels = page.locator(".chord-label").all_text_contents()
        assert {"C:maj", "G:maj", "A:min", "F:maj"} <= set(labels)
        assert page.locator("line.beat").count() > 30 and page.locator("line.downbeat").count() > 5
        assert page.locator(".key-label").all_text_contents() == ["C major"]
        assert "120.0 BPM" in page.inner_text("#summary")
        assert page.locator("polyline.energy").count() == 1 and page.locator("polyline.tempo").count() == 1
        page.click("#song", position={"x": 640, "y": 200})  # seek: the playhead follows the audio
        page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 10) < 1")
        page.wait_for_function("Number(document.getElementById('playhead').getAttribute('x1')) > 300")
        href = page.get_attribute("#download-json", "href")
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert httpx.get(server.base + href).json()["timeline"]["chords"]
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] > 500
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50 and pixels.std() > 0.05  # drawn, not blank


def test_a_broken_pipeline_stops_the_server_from_starting_with_one_line(tmp_path):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "mine.yaml").write_text("steps:\n  - madmom.beat\n")
    done = subprocess.run([MIRFLOW, "serve", "--pipelines", str(folder), "--port", "1"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mirflow: mine.yaml:2:5 steps[0].analyzer: unknown analyzer 'madmom.beat' (did you mean 'madmom_fast.beats'?)"]


def silent_wav_url(seconds: float, rate: int = 8000) -> str:
    """A data: URL of a silent mono WAV (the page's player needs something to play)."""
    import base64
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), dtype=np.int16), rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.browser
def test_the_page_zooms_pans_labels_sections_and_plays_clicks_in_headless_chromium(server, browser):
    """A 5-minute result: chord labels appear once zoomed in, drag pans, the minimap moves the
    view, the sections lane names the sections, and the clicks toggle schedules a click for
    every beat the player passes (and nothing else)."""
    from songs import drawn_result

    result = drawn_result(300.0, 120.0)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.base + "/")
        page.evaluate("([result, url]) => mirflow.show(result, url)", [result, silent_wav_url(30.0)])
        assert page.evaluate("mirflow.view()") == {"start": 0, "end": 300}
        assert page.locator(".chord-label").count() == 0  # 2 s boxes: no room for a label
        assert page.locator(".section-label").all_text_contents()[:3] == ["A verse", "B chorus", "A verse"]
        assert page.locator("line.beat").count() == 0 and page.locator("line.downbeat").count() == 150
        for _ in range(8):  # zoom in (the + button) until chords are labelled
            page.click("#zoom-in")
            if page.locator(".chord-label").count():
                break
        view = page.evaluate("mirflow.view()")
        assert view["end"] - view["start"] <= 300 / 8 and 150 - 1 <= (view["start"] + view["end"]) / 2 <= 150 + 1
        labels = page.locator(".chord-label").all_text_contents()
        assert len(labels) >= 4 and set(labels) == {"C:maj", "G:maj", "A:min", "F:maj"}
        assert page.locator("line.beat").count() > 10  # beats are drawn again
        box = page.locator("#song").bounding_box()
        span = view["end"] - view["start"]
        page.mouse.move(box["x"] + 800, box["y"] + 150)
        page.mouse.down()
        page.mouse.move(box["x"] + 600, box["y"] + 150, steps=5)  # drag 200 px left: later in the song
        page.mouse.up()
        panned = page.evaluate("mirflow.view()")
        assert panned["start"] - view["start"] == pytest.approx(200 / box["width"] * span, rel=0.05)
        page.mouse.wheel(0, -400)  # the wheel over the timeline zooms in further
        assert page.evaluate("mirflow.view().end - mirflow.view().start") < span
        mini = page.locator("#minimap").bounding_box()
        page.mouse.click(mini["x"] + 0.75 * mini["width"], mini["y"] + mini["height"] / 2)
        moved = page.evaluate("mirflow.view()")
        assert (moved["start"] + moved["end"]) / 2 == pytest.approx(225, abs=1)
        page.click("#zoom-all")
        assert page.evaluate("mirflow.view()") == {"start": 0, "end": 300}
        page.check("#clicks")
        page.evaluate("document.getElementById('player').currentTime = 10")
        page.evaluate("document.activeElement.blur()")  # Space on the focused checkbox would toggle it
        page.keyboard.press("Space")  # play
        page.wait_for_function("document.getElementById('player').currentTime > 12.5", timeout=20_000)
        page.keyboard.press("Space")  # pause
        played_to = page.evaluate("document.getElementById('player').currentTime")
        scheduled = page.evaluate("mirflow.scheduled()")
        beats = [b["time"] for b in result["timeline"]["beats"]]
        expected = [t for t in beats if 10.0 < t <= played_to]
        assert set(expected) <= set(scheduled)  # every beat passed was clicked, once
        assert len(scheduled) == len(set(scheduled)) and set(scheduled) <= set(beats)
        assert max(scheduled) <= played_to + 0.25  # and nothing far ahead of the player
        timings = page.evaluate("mirflow.timings()")
        assert timings["draw"] is not None and timings["zoom"] is not None
    finally:
        page.close()


def test_an_idle_server_stops_its_workers_and_the_next_job_starts_them_again(tmp_path, song):
    server = Server(tmp_path, "--jobs", "2", "--idle-workers-timeout", "2")

    def workers():  # spawned worker processes of any of the server's threads (the engine's thread starts them)
        children = [pid for task in Path(f"/proc/{server.process.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        def spawned(pid):
            try:
                return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # gone meanwhile
                return False

        return [pid for pid in children if spawned(pid)]

    try:
        first = httpx.post(server.base + "/api/audio/analyze", **upload(song, pipeline="fast"), timeout=180)
        assert first.status_code == 200, first.text
        assert len(workers()) >= 2  # the pipeline's worker processes, kept warm after the job
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and workers():
            time.sleep(0.2)
        assert workers() == []  # stopped after 2 s without a job
        second = httpx.post(server.base + "/api/audio/analyze", **upload(song, pipeline="fast"), timeout=180)
        assert second.status_code == 200, second.text
        assert comparable(second.json()) == comparable(first.json())
        assert len(workers()) >= 2
    finally:
        server.stop()
