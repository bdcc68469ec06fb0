// mirflow's live timeline page: start a job, follow its events (SSE), draw the song.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const LANES = {wave: [4, 90], beats: [96, 134], chords: [140, 174], key: [180, 204], tempo: [212, 288], energy: [296, 372]};

const state = {pipelines: [], job: null, source: null, duration: 0, chunks: [], peaks: null,
               partial: {chords: [], beats: []}, result: null, began: 0, timer: null};

async function loadPipelines() {
  const response = await fetch("/api/pipelines");
  state.pipelines = await response.json();
  for (const p of state.pipelines) {
    const option = document.createElement("option");
    option.value = p.name;
    option.textContent = p.name + (p.description ? " — " + p.description : "");
    if (p.name === "default") option.selected = true;
    $("pipeline").appendChild(option);
  }
}

function setStatus(text) { $("status").textContent = text; }

async function start(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  if (state.source) state.source.close();
  const pipeline = state.pipelines.find((p) => p.name === $("pipeline").value);
  Object.assign(state, {duration: 0, chunks: [], result: null, peaks: null, partial: {chords: [], beats: []},
                        began: Date.now()});
  $("chunks").innerHTML = "";
  $("song-section").hidden = false;
  $("downloads").hidden = true;
  $("summary").textContent = "";
  $("song-title").textContent = file.name;
  $("player").src = URL.createObjectURL(file);
  readPeaks(file);
  const form = new FormData();
  form.append("file", file);
  form.append("pipeline", pipeline.name);
  setStatus("Uploading…");
  const response = await fetch("/api/jobs", {method: "POST", body: form});
  const body = await response.json();
  if (!response.ok) { setStatus("Error: " + body.detail); return; }
  state.job = body.id;
  $("cancel").hidden = false;
  $("progress-section").hidden = false;
  clearInterval(state.timer);
  state.timer = setInterval(() => { $("elapsed").textContent = ((Date.now() - state.began) / 1000).toFixed(0) + " s"; }, 500);
  follow(body.events_url);
}

function follow(url) {
  // EventSource reconnects by itself and sends Last-Event-ID: the server resumes from there.
  const source = new EventSource(url);
  state.source = source;
  const on = (type, handler) => source.addEventListener(type, (e) => handler(JSON.parse(e.data)));
  on("queued", () => setStatus("Queued"));
  on("started", () => setStatus("Decoding…"));
  on("decoded", (d) => { state.duration = d.duration; state.chunks = d.chunks; buildRows(d.plan); drawSong();
                          setStatus(`Analyzing ${d.duration.toFixed(1)} s in ${d.chunks.length} chunk(s)…`); });
  on("unit_started", (d) => markUnit(d, "running"));
  on("unit_finished", (d) => markUnit(d, "done"));
  on("unit_failed", (d) => markUnit(d, "failed"));
  on("partial", addPartial);
  on("heartbeat", (d) => { if (d.running.length) setStatus(`Running ${d.running.map((r) => r.step).join(", ")} — ${d.elapsed.toFixed(0)} s`); });
  on("result", (d) => { finish(); showResult(d.result); });
  on("failed", (d) => { finish(); setStatus("Failed: " + d.message); });
  on("cancelled", (d) => { finish(); setStatus("Cancelled: " + d.message); });
}

function finish() {
  if (state.source) state.source.close();
  state.source = null;
  clearInterval(state.timer);
  $("cancel").hidden = true;
}

function buildRows(plan) {
  // One row per step, one cell per unit of it: every chunk, or one cell for a whole-track step.
  const box = $("chunks");
  box.innerHTML = "";
  for (const {step, chunks} of plan) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.step = step;
    row.innerHTML = `<span class="label" title="${step}">${step}</span><span class="track"></span><span class="merge queued" title="merge"></span>`;
    for (const chunk of chunks) {
      const cell = document.createElement("span");
      cell.className = "chunk queued";
      cell.dataset.chunk = chunk.index;
      cell.style.left = (100 * chunk.start / state.duration) + "%";
      cell.style.width = (100 * (chunk.end - chunk.start) / state.duration) + "%";
      cell.title = `${step}, chunk ${chunk.index}: ${chunk.start.toFixed(0)}–${chunk.end.toFixed(0)} s`;
      row.querySelector(".track").appendChild(cell);
    }
    box.appendChild(row);
  }
}

function markUnit(d, status) {
  const row = [...$("chunks").children].find((r) => r.dataset.step === d.step);
  if (!row) return;
  let cells;
  if (d.kind === "aggregate") cells = [row.querySelector(".merge")];
  else if (d.chunk === null || d.chunk === undefined) cells = [...row.querySelectorAll(".chunk")];  // a whole-track step or a GPU batch
  else cells = [...row.querySelectorAll(".chunk")].filter((c) => Number(c.dataset.chunk) === d.chunk);
  for (const cell of cells) {
    if (!cell) continue;
    if (status === "done" && d.kind === "prepare") status = "running";  // the GPU half is still to come
    cell.className = cell.className.split(" ")[0] + " " + status;
  }
}

function addPartial(d) {
  const out = d.outputs || {};
  if (out.chords) state.partial.chords.push(...out.chords);
  if (out.beats) state.partial.beats.push(...out.beats.map((b) => (typeof b === "number" ? b : b.time)));
  drawSong();
}

function showResult(result) {
  state.result = result;
  state.duration = result.source.duration;
  setStatus(`Done in ${((Date.now() - state.began) / 1000).toFixed(1)} s`);
  const s = result.summary;
  const parts = [];
  if (s.tempo) parts.push(`<b>${s.tempo.bpm.toFixed(1)} BPM</b>`);
  if (s.key) parts.push(`<b>${s.key.label}</b>`);
  if (s.time_signature) parts.push(`<b>${s.time_signature.label}</b>`);
  parts.push(`${result.timeline.beats.length} beats, ${result.timeline.chords.length} chord segments`);
  $("summary").innerHTML = parts.join(" ");
  $("download-json").href = `/api/jobs/${state.job}/result?format=json`;
  $("download-jams").href = `/api/jobs/${state.job}/result?format=jams`;
  $("downloads").hidden = false;
  for (const cell of $("chunks").querySelectorAll(".running")) cell.className = cell.className.split(" ")[0] + " done";
  drawSong();
}

async function readPeaks(file) {
  try {
    const context = new OfflineAudioContext(1, 1, 44100);
    const audio = await context.decodeAudioData(await file.arrayBuffer());
    const data = audio.getChannelData(0);
    const columns = 1200, step = Math.max(1, Math.floor(data.length / columns)), peaks = [];
    for (let c = 0; c < columns; c++) {
      let low = 0, high = 0;
      for (let i = c * step; i < Math.min(data.length, (c + 1) * step); i++) { low = Math.min(low, data[i]); high = Math.max(high, data[i]); }
      peaks.push([low, high]);
    }
    const windows = 400, size = Math.max(1, Math.floor(data.length / windows)), energy = [];
    for (let w = 0; w * size < data.length; w++) {
      let sum = 0, n = 0;
      for (let i = w * size; i < Math.min(data.length, (w + 1) * size); i++, n++) sum += data[i] * data[i];
      energy.push([(w + 0.5) * size / audio.sampleRate, 10 * Math.log10(sum / Math.max(n, 1) + 1e-10)]);
    }
    state.peaks = {peaks, energy, duration: audio.duration};
    if (!state.duration) state.duration = audio.duration;
    drawSong();
  } catch (err) {
    state.peaks = null;  // a format the browser cannot decode: no waveform, everything else still drawn
  }
}

function el(name, attrs, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}

function drawSong() {
  const svg = $("song");
  const width = svg.clientWidth || 1000, height = 380, duration = state.duration;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.innerHTML = "";
  if (!duration) return;
  const x = (t) => (t / duration) * width;
  const lane = (name, label) => { el("text", {x: 4, y: LANES[name][0] + 11, class: "lane-label"}, svg, label); return LANES[name]; };
  if (state.peaks) {
    const [top, bottom] = lane("wave", "waveform"), middle = (top + bottom) / 2, half = (bottom - top) / 2;
    const g = el("g", {class: "wave"}, svg);
    const n = state.peaks.peaks.length, columnWidth = width / n * (state.peaks.duration / duration);
    state.peaks.peaks.forEach(([low, high], i) => el("rect", {x: i * columnWidth, y: middle - high * half, width: Math.max(columnWidth, 1),
                                                               height: Math.max((high - low) * half, 1)}, g));
  }
  const result = state.result;
  const beats = result ? result.timeline.beats.map((b) => b.time) : state.partial.beats;
  const downbeats = result ? result.timeline.downbeats : [];
  const [btop, bbottom] = lane("beats", "beats");
  const beatGroup = el("g", {class: "beats"}, svg);
  for (const t of beats) el("line", {x1: x(t), x2: x(t), y1: btop + 14, y2: bbottom, class: "beat"}, beatGroup);
  for (const t of downbeats) el("line", {x1: x(t), x2: x(t), y1: btop + 14, y2: bbottom, class: "downbeat"}, beatGroup);
  const chords = result ? result.timeline.chords : state.partial.chords;
  const [ctop, cbottom] = lane("chords", "chords");
  for (const c of chords) {
    if (c.label === "N") continue;
    const g = el("g", {class: "chord" + (result ? "" : " preview")}, svg);
    el("title", {}, g, `${c.label}  ${c.start.toFixed(2)}–${c.end.toFixed(2)} s` + (c.bar ? `, bar ${c.bar}` : ""));
    el("rect", {x: x(c.start), y: ctop + 13, width: Math.max(x(c.end) - x(c.start), 1), height: cbottom - ctop - 13}, g);
    if (x(c.end) - x(c.start) > 22) el("text", {x: x(c.start) + 3, y: cbottom - 5, class: "chord-label"}, g, c.label);
  }
  if (!result) return;
  const [ktop, kbottom] = lane("key", "key");
  for (const k of result.timeline.keys || []) {
    const g = el("g", {class: "key"}, svg);
    el("rect", {x: x(k.start), y: ktop + 12, width: Math.max(x(k.end) - x(k.start), 1), height: kbottom - ktop - 12}, g);
    el("text", {x: x(k.start) + 3, y: kbottom - 2, class: "key-label"}, g, k.label);
  }
  drawCurve(svg, "tempo", "tempo (BPM)", (result.timeline.tempo || []).map((p) => [p.time, p.bpm]), x, 0.1);
  const [label, curve] = energyCurve(result);
  drawCurve(svg, "energy", label, curve, x);
  el("line", {x1: 0, x2: 0, y1: 0, y2: height, class: "playhead", id: "playhead"}, svg);
}

function energyCurve(result) {
  // A loudness curve from the pipeline if it has one (librosa_enhanced.features, essentia_gpu.loudness),
  // else the RMS level of the audio as the browser decoded it.
  for (const step of Object.values(result.steps)) {
    for (const [name, value] of Object.entries(step.outputs || {})) {
      if (/loudness|energy|rms/.test(name) && value && Array.isArray(value.times)) {
        return [name + (value.unit ? ` (${value.unit})` : ""), value.times.map((t, i) => [t, value.values[i]])];
      }
    }
  }
  return ["energy (RMS, dB)", state.peaks ? state.peaks.energy : []];
}

function drawCurve(svg, name, label, points, x, minimumSpan = 0) {
  // minimumSpan (a share of the middle value) keeps a steady curve flat instead of magnifying jitter.
  const [top, bottom] = LANES[name];
  el("text", {x: 4, y: top + 11, class: "lane-label"}, svg, label);
  const values = points.map((p) => p[1]).filter((v) => v !== null && Number.isFinite(v));
  if (!values.length) return;
  let low = Math.min(...values), high = Math.max(...values);
  const middle = (low + high) / 2, least = Math.abs(middle) * minimumSpan;
  if (high - low < least) { low = middle - least / 2; high = middle + least / 2; }
  const span = high - low || 1;
  const y = (v) => bottom - ((v - low) / span) * (bottom - top - 16);
  const d = points.filter((p) => p[1] !== null).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  el("polyline", {points: d, class: name}, svg);
  el("text", {x: 4, y: top + 24, class: "lane-label"}, svg, `${low.toFixed(0)}–${high.toFixed(0)}`);
}

function movePlayhead() {
  const line = $("playhead");
  if (line && state.duration) {
    const px = ($("player").currentTime / state.duration) * ($("song").clientWidth || 1000);
    line.setAttribute("x1", px);
    line.setAttribute("x2", px);
  }
  requestAnimationFrame(movePlayhead);
}

$("song").addEventListener("click", (e) => {
  if (!state.duration) return;
  const box = $("song").getBoundingClientRect();
  $("player").currentTime = ((e.clientX - box.left) / box.width) * state.duration;
});
$("cancel").addEventListener("click", () => { if (state.job) fetch(`/api/jobs/${state.job}`, {method: "DELETE"}); });
$("start-form").addEventListener("submit", start);
window.addEventListener("resize", drawSong);
loadPipelines();
requestAnimationFrame(movePlayhead);
