// mirflow's live timeline page: start a job, follow its events (SSE), draw the song.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const LANES = {wave: [4, 90], beats: [96, 134], chords: [140, 174], key: [180, 204], sections: [210, 236],
               tempo: [244, 320], energy: [328, 404]};
const HEIGHT = 410;
const LABEL_PX = 6.5;  // about one character of the 11 px lane labels: a label is drawn where it fits
const CLICK_AHEAD = 0.2;  // seconds of beats scheduled ahead of the playhead

const state = {pipelines: [], job: null, source: null, duration: 0, chunks: [], peaks: null,
               partial: {chords: [], beats: []}, result: null, began: 0, timer: null,
               view: {start: 0, end: 0}, timings: {draw: null, zoom: null}};

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
                        began: Date.now(), view: {start: 0, end: 0}});
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
  on("decoded", (d) => { setDuration(d.duration); state.chunks = d.chunks; buildRows(d.plan); drawSong();
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
  if (d.kind === "fold") return;  // a chunk's share of the merge, run ahead of it: the chunk itself is done
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
  setDuration(result.source.duration);
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
    const columns = 8000, step = Math.max(1, Math.floor(data.length / columns)), peaks = [];
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
    if (!state.duration) setDuration(audio.duration);
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

function setDuration(duration) {
  // A new song shows whole; a longer duration (the result after the browser's decode) keeps the zoom.
  const whole = state.view.end === 0 || state.view.end >= state.duration;
  state.duration = duration;
  if (whole || state.view.end > duration) state.view = {start: 0, end: duration};
}

// --- The view: which seconds of the song the timeline shows (zoom and pan) ---------------

function setView(start, end) {
  const duration = state.duration;
  if (!duration) return;
  const span = Math.min(duration, Math.max(end - start, Math.min(duration, 2)));  // at most whole, at least 2 s
  start = Math.max(0, Math.min(start, duration - span));
  state.view = {start, end: start + span};
  const began = performance.now();
  drawSong();
  state.timings.zoom = performance.now() - began;
}

function zoom(factor, around) {
  // factor < 1 zooms in; ``around`` (seconds) stays under the same pixel.
  const {start, end} = state.view;
  const at = around === undefined ? (start + end) / 2 : around;
  setView(at - (at - start) * factor, at + (end - at) * factor);
}

function timeAt(clientX) {
  const box = $("song").getBoundingClientRect();
  const {start, end} = state.view;
  return start + ((clientX - box.left) / box.width) * (end - start);
}

function visible(segments, first, last) {
  return segments.filter((s) => s.end >= first && s.start <= last);
}

function drawSong() {
  const began = performance.now();
  const svg = $("song");
  const width = svg.clientWidth || 1000, duration = state.duration;
  svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
  svg.innerHTML = "";
  drawMinimap();
  if (!duration) return;
  const {start, end} = state.view, span = end - start;
  const x = (t) => ((t - start) / span) * width;
  const fits = (a, b, text) => x(b) - x(a) > text.length * LABEL_PX + 6;
  const lane = (name, label) => { el("text", {x: 4, y: LANES[name][0] + 11, class: "lane-label"}, svg, label); return LANES[name]; };
  if (state.peaks) {
    const [top, bottom] = lane("wave", "waveform"), middle = (top + bottom) / 2, half = (bottom - top) / 2;
    const g = el("g", {class: "wave"}, svg);
    const peaks = state.peaks.peaks, seconds = state.peaks.duration / peaks.length;
    const first = Math.max(0, Math.floor(start / seconds)), last = Math.min(peaks.length, Math.ceil(end / seconds));
    const per = Math.max(1, Math.floor((last - first) / width));  // columns of peaks per pixel
    for (let i = first; i < last; i += per) {
      let low = 0, high = 0;
      for (let j = i; j < Math.min(last, i + per); j++) { low = Math.min(low, peaks[j][0]); high = Math.max(high, peaks[j][1]); }
      el("rect", {x: x(i * seconds), y: middle - high * half, width: Math.max(x((i + per) * seconds) - x(i * seconds), 1),
                  height: Math.max((high - low) * half, 1)}, g);
    }
  }
  const result = state.result;
  const beats = result ? result.timeline.beats.map((b) => b.time) : state.partial.beats;
  const downbeats = result ? result.timeline.downbeats : [];
  const [btop, bbottom] = lane("beats", "beats");
  const beatGroup = el("g", {class: "beats"}, svg);
  const shown = beats.filter((t) => t >= start && t <= end);
  if (shown.length <= width / 4) {  // denser than a line every 4 px reads as a block: downbeats only
    for (const t of shown) el("line", {x1: x(t), x2: x(t), y1: btop + 14, y2: bbottom, class: "beat"}, beatGroup);
  }
  const bars = downbeats.filter((t) => t >= start && t <= end);
  if (bars.length <= width / 4) {
    for (const t of bars) el("line", {x1: x(t), x2: x(t), y1: btop + 14, y2: bbottom, class: "downbeat"}, beatGroup);
  } else {  // hundreds of lines: one path draws them far faster
    el("path", {d: bars.map((t) => `M${x(t).toFixed(1)} ${btop + 14}V${bbottom}`).join(""), class: "downbeat"}, beatGroup);
  }
  const chords = result ? result.timeline.chords : state.partial.chords;
  const [ctop, cbottom] = lane("chords", "chords");
  const boxes = visible(chords, start, end).filter((c) => c.label !== "N");
  if (boxes.length > width / 6) {  // a few pixels each: no room for labels or hovering, one path
    const d = boxes.map((c) => `M${x(c.start).toFixed(1)} ${ctop + 13}H${Math.max(x(c.end) - 0.5, x(c.start) + 0.5).toFixed(1)}` +
                               `V${cbottom}H${x(c.start).toFixed(1)}Z`).join("");
    el("path", {d, class: "chord-blocks" + (result ? "" : " preview")}, svg);
  }
  for (const c of boxes.length > width / 6 ? [] : boxes) {
    if (c.label === "N") continue;
    const g = el("g", {class: "chord" + (result ? "" : " preview")}, svg);
    el("title", {}, g, `${c.label}  ${c.start.toFixed(2)}–${c.end.toFixed(2)} s` + (c.bar ? `, bar ${c.bar}` : ""));
    el("rect", {x: x(c.start), y: ctop + 13, width: Math.max(x(c.end) - x(c.start), 1), height: cbottom - ctop - 13}, g);
    if (fits(c.start, c.end, c.label)) el("text", {x: Math.max(x(c.start), 0) + 3, y: cbottom - 5, class: "chord-label"}, g, c.label);
  }
  if (result) {
    const [ktop, kbottom] = lane("key", "key");
    for (const k of visible(result.timeline.keys || [], start, end)) {
      const g = el("g", {class: "key"}, svg);
      el("rect", {x: x(k.start), y: ktop + 12, width: Math.max(x(k.end) - x(k.start), 1), height: kbottom - ktop - 12}, g);
      if (fits(k.start, k.end, k.label)) el("text", {x: Math.max(x(k.start), 0) + 3, y: kbottom - 2, class: "key-label"}, g, k.label);
    }
    const [stop, sbottom] = lane("sections", "sections");
    for (const s of visible(result.timeline.sections || [], start, end)) {
      const name = s.label + (s.function ? " " + s.function : "");
      const g = el("g", {class: "section"}, svg);
      el("title", {}, g, `${name}  ${s.start.toFixed(1)}–${s.end.toFixed(1)} s`);
      el("rect", {x: x(s.start), y: stop + 12, width: Math.max(x(s.end) - x(s.start), 1), height: sbottom - stop - 12}, g);
      const text = fits(s.start, s.end, name) ? name : fits(s.start, s.end, s.label) ? s.label : null;
      if (text) el("text", {x: Math.max(x(s.start), 0) + 3, y: sbottom - 3, class: "section-label"}, g, text);
    }
    const inView = (p) => p[0] >= start - span * 0.05 && p[0] <= end + span * 0.05;
    drawCurve(svg, "tempo", "tempo (BPM)", (result.timeline.tempo || []).map((p) => [p.time, p.bpm]).filter(inView), x, 0.1);
    const [label, curve] = energyCurve(result);
    drawCurve(svg, "energy", label, curve.filter(inView), x);
  }
  el("line", {x1: -10, x2: -10, y1: 0, y2: HEIGHT, class: "playhead", id: "playhead"}, svg);
  state.timings.draw = performance.now() - began;
}

function drawMinimap() {
  // The whole song, small, with the part the timeline shows: click or drag it to move there.
  const svg = $("minimap");
  const width = svg.clientWidth || 1000, height = 36, duration = state.duration;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.innerHTML = "";
  if (!duration) return;
  const x = (t) => (t / duration) * width;
  if (state.peaks) {
    const peaks = state.peaks.peaks, per = Math.max(1, Math.floor(peaks.length / width)), seconds = state.peaks.duration / peaks.length;
    const g = el("g", {class: "wave"}, svg);
    for (let i = 0; i < peaks.length; i += per) {
      let high = 0;
      for (let j = i; j < Math.min(peaks.length, i + per); j++) high = Math.max(high, peaks[j][1], -peaks[j][0]);
      el("rect", {x: x(i * seconds), y: height / 2 - high * height / 2, width: Math.max(x(per * seconds), 1), height: Math.max(high * height, 1)}, g);
    }
  }
  for (const s of state.result ? state.result.timeline.sections || [] : []) {
    el("line", {x1: x(s.start), x2: x(s.start), y1: 0, y2: height, class: "minimap-section"}, svg);
  }
  const {start, end} = state.view;
  el("rect", {x: x(start), y: 1, width: Math.max(x(end) - x(start), 2), height: height - 2, class: "minimap-view", id: "minimap-view"}, svg);
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
    const {start, end} = state.view;
    const px = (($("player").currentTime - start) / (end - start)) * ($("song").clientWidth || 1000);
    line.setAttribute("x1", px);
    line.setAttribute("x2", px);
  }
  requestAnimationFrame(movePlayhead);
}

// --- Pointer: a click seeks, a drag pans, the wheel (or a trackpad pinch) zooms, two fingers pinch ---

const pointers = new Map();  // pointerId -> {x, startX, viewStart, moved}
let pinch = null;  // {distance, view}

$("song").addEventListener("pointerdown", (e) => {
  if (!state.duration) return;
  $("song").setPointerCapture(e.pointerId);
  pointers.set(e.pointerId, {x: e.clientX, startX: e.clientX, view: {...state.view}, moved: false});
  if (pointers.size === 2) {
    const [a, b] = [...pointers.values()];
    pinch = {distance: Math.abs(a.x - b.x) || 1, view: {...state.view}, around: timeAt((a.x + b.x) / 2)};
  }
});
$("song").addEventListener("pointermove", (e) => {
  const p = pointers.get(e.pointerId);
  if (!p) return;
  p.x = e.clientX;
  if (Math.abs(p.x - p.startX) > 4) p.moved = true;
  if (pinch && pointers.size === 2) {
    const [a, b] = [...pointers.values()];
    const factor = pinch.distance / (Math.abs(a.x - b.x) || 1), at = pinch.around;
    setView(at - (at - pinch.view.start) * factor, at + (pinch.view.end - at) * factor);
  } else if (p.moved) {
    const secondsPerPixel = (p.view.end - p.view.start) / $("song").getBoundingClientRect().width;
    const shift = (p.startX - p.x) * secondsPerPixel;
    setView(p.view.start + shift, p.view.end + shift);
  }
});
function release(e) {
  const p = pointers.get(e.pointerId);
  pointers.delete(e.pointerId);
  if (pointers.size < 2) pinch = null;
  if (p && !p.moved && e.type === "pointerup" && pointers.size === 0) {
    $("player").currentTime = timeAt(e.clientX);  // a click: seek there
  }
}
$("song").addEventListener("pointerup", release);
$("song").addEventListener("pointercancel", release);
$("song").addEventListener("wheel", (e) => {
  if (!state.duration) return;
  e.preventDefault();
  if (Math.abs(e.deltaX) > Math.abs(e.deltaY) && !e.ctrlKey) {  // a sideways scroll pans
    const shift = (e.deltaX / $("song").getBoundingClientRect().width) * (state.view.end - state.view.start);
    setView(state.view.start + shift, state.view.end + shift);
    return;
  }
  zoom(Math.pow(1.0015, e.deltaY * (e.ctrlKey ? 4 : 1)), timeAt(e.clientX));
}, {passive: false});

function minimapTo(e) {
  const box = $("minimap").getBoundingClientRect();
  const at = ((e.clientX - box.left) / box.width) * state.duration, span = state.view.end - state.view.start;
  setView(at - span / 2, at + span / 2);
}
$("minimap").addEventListener("pointerdown", (e) => {
  if (!state.duration) return;
  $("minimap").setPointerCapture(e.pointerId);
  minimapTo(e);
});
$("minimap").addEventListener("pointermove", (e) => { if (e.buttons) minimapTo(e); });
// The view's controls give the focus back after use: space then plays, not presses them again.
$("view-controls").addEventListener("click", () => setTimeout(() => document.activeElement.blur(), 0));
$("zoom-in").addEventListener("click", () => zoom(0.5));
$("zoom-out").addEventListener("click", () => zoom(2));
$("zoom-all").addEventListener("click", () => setView(0, state.duration));

document.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || /^(INPUT|SELECT|BUTTON|TEXTAREA)$/.test(document.activeElement.tagName)) return;
  if (!$("player").src) return;
  e.preventDefault();
  if ($("player").paused) $("player").play(); else $("player").pause();
});

// --- Clicks: beat and downbeat clicks with Web Audio, in time with the player ----------------

const clicks = {context: null, until: -1, scheduled: []};  // scheduled: song times, for tests

function scheduleClicks() {
  const player = $("player");
  if (!$("clicks").checked || player.paused || !state.result) { clicks.until = -1; return; }
  if (!clicks.context) clicks.context = new AudioContext();
  if (clicks.context.state === "suspended") clicks.context.resume();
  const now = player.currentTime, rate = player.playbackRate || 1;
  if (clicks.until < now - 0.05 || clicks.until > now + CLICK_AHEAD + 0.05) clicks.until = now;  // a seek
  const horizon = now + CLICK_AHEAD;
  const downbeats = new Set(state.result.timeline.downbeats.map((t) => t.toFixed(4)));
  for (const beat of state.result.timeline.beats) {
    const t = beat.time;
    if (t <= clicks.until || t > horizon) continue;
    const when = clicks.context.currentTime + (t - now) / rate;
    const high = beat.position === 1 || downbeats.has(t.toFixed(4));
    const oscillator = clicks.context.createOscillator(), gain = clicks.context.createGain();
    oscillator.frequency.value = high ? 1600 : 1000;
    gain.gain.setValueAtTime(high ? 0.5 : 0.3, when);
    gain.gain.exponentialRampToValueAtTime(0.001, when + 0.03);
    oscillator.connect(gain).connect(clicks.context.destination);
    oscillator.start(when);
    oscillator.stop(when + 0.035);
    clicks.scheduled.push(t);
  }
  clicks.until = horizon;
}
setInterval(scheduleClicks, 25);
$("player").addEventListener("seeked", () => { clicks.until = -1; });

$("cancel").addEventListener("click", () => { if (state.job) fetch(`/api/jobs/${state.job}`, {method: "DELETE"}); });
$("start-form").addEventListener("submit", start);
window.addEventListener("resize", drawSong);
loadPipelines();
requestAnimationFrame(movePlayhead);

// For tests and benchmarks (headless Chromium): show a result without a job, read the view,
// the draw times and the clicks scheduled.
window.mirflow = {
  show(result, audioUrl) {
    Object.assign(state, {result: null, peaks: null, duration: 0, view: {start: 0, end: 0}, partial: {chords: [], beats: []}});
    $("song-section").hidden = false;
    if (audioUrl) $("player").src = audioUrl;
    showResult(result);
  },
  view: () => ({...state.view}),
  setView,
  timings: () => ({...state.timings}),
  scheduled: () => [...clicks.scheduled],
};
