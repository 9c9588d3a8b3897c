"use strict";
// The vidcls serve page: plain JS, no build step, nothing loaded from anywhere but this server.
// Upload: POST v1/predict (multipart) -> top-5 bars, the sampled frames and their heat maps.
// Webcam: getUserMedia -> one JPEG frame at a time over WS v1/stream -> live label, score, fps.
// The next frame is sent when the answer to the last one arrives (never more often than the
// server's per-connection cap), so the page runs at the model's rate and never queues frames.

const $ = (id) => document.getElementById(id);
const state = {
  models: [],
  token: sessionStorage.getItem("vidcls-token") || "",
  ws: null,
  camera: null,
  running: false,
  answered: [], // arrival times of the answers of the last second (fps)
  frames: 0,
  lastSent: 0,
  minGap: 0,
};
const canvas = document.createElement("canvas");

function apiUrl(path) {
  return new URL(path, document.baseURI);
}

function showError(message) {
  $("error").textContent = message || "";
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(apiUrl(path), { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (response.status === 401) $("token-form").hidden = false;
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function describeModel() {
  const m = currentModel();
  if (!m) return;
  const crop = m.input.crop.join("x");
  $("model-info").textContent = `${m.arch} · ${m.num_classes} classes · ` +
    `${m.input.num_frames} frames · ${crop} px · ` +
    (m.stream.supported ? "streams live" : "no live stream");
  $("cam-start").disabled = !m.stream.supported || state.running;
  $("cam-start").title = m.stream.supported ? "" : m.stream.reason;
}

async function loadModels() {
  try {
    const body = await api("v1/models");
    state.models = body.models;
    $("model").replaceChildren(...body.models.map(
      (m) => new Option(m.name, m.name, m.name === body.default, m.name === body.default)));
    describeModel();
    showError("");
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(err.message);
  }
}

function percent(score) {
  return (100 * score).toFixed(1) + " %";
}

function renderBars(list, items) {
  list.replaceChildren(...items.map((p) => {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = label.title = p.label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = (100 * p.score).toFixed(1) + "%";
    track.append(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = percent(p.score);
    li.append(label, track, score);
    return li;
  }));
}

function renderImages(container, urls) {
  container.replaceChildren(...urls.map((url, i) => {
    const img = new Image();
    img.src = url;
    img.alt = `frame ${i + 1}`;
    return img;
  }));
}

// ---------------------------------------------------------------------------- upload
async function classify(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("model", $("model").value);
  form.append("top_k", "5");
  form.append("explain", $("explain").checked ? "true" : "false");
  $("predict").disabled = true;
  $("upload-status").textContent = `classifying ${file.name} …`;
  showError("");
  try {
    const r = await api("v1/predict", { method: "POST", body: form });
    const top = r.predictions[0];
    $("top-label").textContent = top.label;
    $("top-score").textContent = percent(top.score);
    renderBars($("bars"), r.predictions);
    const ex = r.explain;
    $("frames-title").hidden = $("heatmaps-title").hidden = !ex;
    renderImages($("frames"), ex ? ex.frames : []);
    renderImages($("heatmaps"), ex ? ex.heatmaps : []);
    if (ex) {
      const how = ex.method === "gradcam" ? `Grad-CAM, ${ex.layer}` : "attention rollout";
      $("heatmaps-title").textContent = `heat maps (${how}) for “${ex.class}”`;
    }
    $("result").hidden = false;
    $("upload-status").textContent = `${file.name}: ${r.frames} frames × ${r.views} view(s), ` +
      `${r.elapsed_ms.toFixed(0)} ms on the server (${r.model})`;
    $("result").dataset.done = String(Number($("result").dataset.done || 0) + 1);
  } catch (err) {
    showError(err.message);
    $("upload-status").textContent = "";
  } finally {
    $("predict").disabled = false;
  }
}

// ---------------------------------------------------------------------------- webcam
function base64url(text) {
  let binary = "";
  new TextEncoder().encode(text).forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function streamUrl(model) {
  const url = apiUrl("v1/stream?model=" + encodeURIComponent(model));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

async function startCamera() {
  const model = currentModel();
  if (!model || !model.stream.supported || state.running) return;
  showError("");
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    showError("camera: " + err.message);
    return;
  }
  const video = $("cam");
  video.srcObject = state.camera;
  await video.play();
  const protocols = ["vidcls"];
  if (state.token) protocols.push("vidcls.token." + base64url(state.token));
  const ws = new WebSocket(streamUrl(model.name), protocols);
  ws.binaryType = "arraybuffer";
  Object.assign(state, { ws, running: true, answered: [], frames: 0, lastSent: 0,
                         minGap: 1000 / model.stream.max_fps });
  $("cam-start").disabled = true;
  $("cam-stop").disabled = false;
  $("model").disabled = true;
  ws.onopen = () => {
    $("webcam-status").textContent = "streaming to " + model.name;
    sendFrame();
  };
  ws.onmessage = (event) => onAnswer(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.running && state.ws === ws) {
      showError(`stream closed (code ${event.code}${event.reason ? ": " + event.reason : ""})`);
      stopCamera();
    }
  };
}

function sendFrame() {
  if (!state.running) return;
  const wait = Math.max(0, state.lastSent + state.minGap - performance.now());
  setTimeout(() => {
    const video = $("cam");
    const ws = state.ws;
    if (!state.running || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (!video.videoWidth) { // no picture yet
      requestAnimationFrame(sendFrame);
      return;
    }
    const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (blob && state.running && ws.readyState === WebSocket.OPEN) {
        state.lastSent = performance.now();
        ws.send(blob);
      }
    }, "image/jpeg", 0.92);
  }, wait);
}

function onAnswer(msg) {
  if (msg.error) {
    $("webcam-status").textContent = msg.error; // one frame was refused; the stream goes on
  } else {
    const now = performance.now();
    state.frames += 1;
    state.answered.push(now);
    while (state.answered.length > 1 && now - state.answered[0] > 1000) state.answered.shift();
    const span = now - state.answered[0];
    const fps = state.answered.length > 1 && span > 0 ? (state.answered.length - 1) * 1000 / span : 0;
    $("live-label").textContent = msg.label;
    $("live-score").textContent = percent(msg.score);
    $("live-fps").textContent = fps.toFixed(1);
    $("live-latency").textContent = msg.latency_ms.toFixed(1);
    $("live-frames").textContent = String(state.frames);
    renderBars($("live-bars"), msg.top);
  }
  sendFrame();
}

function stopCamera() {
  state.running = false;
  if (state.ws) state.ws.close();
  state.ws = null;
  if (state.camera) state.camera.getTracks().forEach((track) => track.stop());
  state.camera = null;
  $("cam").srcObject = null;
  $("cam-stop").disabled = true;
  $("model").disabled = false;
  $("webcam-status").textContent = "stopped";
  describeModel();
}

// ---------------------------------------------------------------------------- wiring
function showTab(name) {
  const upload = name === "upload";
  $("upload-panel").hidden = !upload;
  $("webcam-panel").hidden = upload;
  $("tab-upload").classList.toggle("active", upload);
  $("tab-webcam").classList.toggle("active", !upload);
  if (upload && state.running) stopCamera();
}

$("tab-upload").addEventListener("click", () => showTab("upload"));
$("tab-webcam").addEventListener("click", () => showTab("webcam"));
$("model").addEventListener("change", describeModel);
$("upload-form").addEventListener("submit", classify);
$("cam-start").addEventListener("click", startCamera);
$("cam-stop").addEventListener("click", stopCamera);
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value;
  sessionStorage.setItem("vidcls-token", state.token);
  $("token-form").hidden = true;
  loadModels();
});
loadModels();
