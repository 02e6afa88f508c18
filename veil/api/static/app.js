// veil's web page: upload, watch jobs, compare, download. Plain JavaScript, no build
// step, no requests to any host but this server.
"use strict";

// A blur job's steps (veil.jobs.STEPS) as the graph shows them. Redact is one pass over
// the video: faces are detected and tracked in the same decode that hides them.
const STEPS = [
  { name: "Validate", label: "Validate", what: "type, size, decodable" },
  { name: "Redact", label: "Detect + redact", what: "one pass over the video" },
  { name: "Publish", label: "Publish", what: "video and faces.json" },
];
const stepLabel = (name) => (STEPS.find((s) => s.name === name) || { label: name }).label;
const $ = (sel) => document.querySelector(sel);
let apiKey = sessionStorage.getItem("veil-key") || "";
let timer = null;
const rates = new Map(); // job id -> {frames, at}: to estimate time left

function authHeaders() {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

function withKey(url) {
  return apiKey ? `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(apiKey)}` : url;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    showAuth();
    throw new Error("an API key is needed");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function show(id) {
  for (const section of ["auth", "home", "job"]) $(`#${section}`).hidden = section !== id;
}

function showAuth() {
  clearInterval(timer);
  show("auth");
  $("#auth-key").focus();
}

function text(el, value) { el.textContent = value; return el; }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function bytes(n) {
  if (n == null) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function seconds(s) {
  if (s == null || !isFinite(s)) return "";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

function timeLeft(job) {
  if (job.status !== "RUNNING" || !job.frames_total || !job.frames_done) return "";
  const now = Date.now() / 1000;
  const key = `${job.id}:${job.step}`;
  const first = rates.get(key);
  if (!first) { rates.set(key, { frames: job.frames_done, at: now }); return ""; }
  const rate = (job.frames_done - first.frames) / Math.max(0.001, now - first.at);
  if (rate <= 0) return "";
  return `${seconds((job.frames_total - job.frames_done) / rate)} left`;
}

function progressCell(job) {
  const done = job.status === "SUCCEEDED";
  const fraction = done ? 1 : job.frames_total ? Math.min(1, job.frames_done / job.frames_total) : 0;
  const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(fraction * 100)), "aria-label": `progress of ${job.key}` }, el("span"));
  bar.firstChild.style.width = `${fraction * 100}%`;
  const detail = job.status === "RUNNING" && job.step
    ? `${stepLabel(job.step)}: ${job.frames_done}${job.frames_total ? ` / ${job.frames_total}` : ""} frames ${timeLeft(job)}`
    : "";
  return el("td", {}, bar, el("div", { class: "small" }, detail));
}

async function refreshJobs() {
  const jobs = await api("/api/jobs");
  const body = $("#jobs tbody");
  body.replaceChildren();
  $("#jobs-empty").hidden = jobs.length > 0;
  $("#jobs").hidden = jobs.length === 0;
  for (const job of jobs) {
    const link = el("a", { href: `#/jobs/${job.id}` }, job.key);
    const status = el("td", {}, el("span", { class: `status ${job.status}` }, job.status));
    if (job.error) status.append(el("div", { class: "error small" }, job.error));
    const row = el("tr", { "data-job": job.id }, el("td", {}, link), el("td", {}, bytes(job.size)), el("td", {}, seconds(job.duration)), status, progressCell(job), el("td", {}, job.faces == null ? "" : String(job.faces)));
    row.addEventListener("click", (event) => { if (event.target.tagName !== "A") location.hash = `#/jobs/${job.id}`; });
    body.append(row);
  }
}

async function refreshObjects() {
  const list = $("#objects");
  list.replaceChildren();
  for (const object of await api("/api/objects")) {
    const button = el("button", { type: "button", class: "secondary" }, "Anonymize");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try { await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: object.key }) }); refreshJobs(); }
      catch (e) { button.after(el("span", { class: "error" }, ` ${e.message}`)); }
    });
    list.append(el("li", {}, `${object.key} (${bytes(object.size)}) `, button));
  }
  if (!list.children.length) list.append(el("li", { class: "muted" }, "The input bucket has no videos."));
}

function upload(file) {
  const item = el("li", {}, el("span", {}, `${file.name} `), el("progress", { max: "100", value: "0", "aria-label": `upload of ${file.name}` }), el("span", { class: "small" }, ""));
  $("#uploads").prepend(item);
  const [, bar, note] = item.children;
  const form = new FormData();
  form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/uploads");
  for (const [key, value] of Object.entries(authHeaders())) request.setRequestHeader(key, value);
  request.upload.addEventListener("progress", (event) => { if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total; });
  request.addEventListener("load", () => {
    if (request.status === 401) return showAuth();
    let detail = "";
    try { detail = JSON.parse(request.responseText).detail || ""; } catch (e) { detail = request.statusText; }
    if (request.status >= 200 && request.status < 300) { bar.value = 100; text(note, " uploaded, job started"); refreshJobs(); }
    else { item.classList.add("error"); item.setAttribute("role", "alert"); text(note, ` ${file.name}: ${detail || "upload failed"}`); }
  });
  request.addEventListener("error", () => { item.classList.add("error"); text(note, " upload failed: the server cannot be reached"); });
  request.send(form);
}

function setupUploads() {
  const drop = $("#drop");
  const input = $("#file");
  input.addEventListener("change", () => { for (const file of input.files) upload(file); input.value = ""; });
  drop.addEventListener("click", (event) => { if (event.target !== input && event.target.tagName !== "LABEL") input.click(); });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); for (const file of event.dataTransfer.files) upload(file); });
  $("#bucket").addEventListener("toggle", () => { if ($("#bucket").open) refreshObjects().catch(() => {}); });
}

function drawGraph(job) {
  const graph = $("#graph");
  graph.replaceChildren();
  const byName = Object.fromEntries(job.steps.map((s) => [s.name, s]));
  const failedStep = job.status === "FAILED" ? (job.steps.find((s) => s.error) || {}).name : null;
  for (const { name, label, what } of STEPS) {
    const step = byName[name];
    let state = "pending";
    if (name === failedStep) state = "failed";
    else if (step) state = "done";
    else if (job.status === "RUNNING" && job.step === name) state = "current";
    else if (job.status === "RUNNING" && !job.step && name === "Validate") state = "current";
    const time = step ? `${((step.ended_at - step.started_at) || 0).toFixed(1)} s` : state === "current" ? "running…" : "";
    graph.append(el("li", { class: state, "data-step": name, "aria-label": `${label} (${what}): ${state}${time ? `, ${time}` : ""}` }, el("span", { class: "name" }, label), el("span", { class: "what" }, what), el("span", { class: "time" }, time || state)));
  }
}

async function drawTimeline(job) {
  if (job.status !== "SUCCEEDED" || $("#timeline").dataset.job === job.id) return;
  const faces = await api(`/api/jobs/${job.id}/faces`);
  const duration = (faces.VideoMetadata.DurationMillis || 1);
  const strip = $("#timeline");
  strip.replaceChildren();
  strip.dataset.job = job.id;
  const stamps = [...new Set(faces.Faces.map((f) => f.Timestamp))].sort((a, b) => a - b);
  const frame = 1000 / (faces.VideoMetadata.FrameRate || 30);
  for (const t of stamps) {
    const mark = el("span");
    mark.style.left = `${(100 * t) / duration}%`;
    mark.style.width = `${Math.max(0.2, (100 * frame) / duration)}%`;
    strip.append(mark);
  }
  strip.setAttribute("aria-label", `faces on ${stamps.length} frames of ${seconds(duration / 1000)}`);
  $("#timeline-wrap").hidden = false;
}

function linkVideos() {
  const a = $("#video-original");
  const b = $("#video-result");
  const follow = (leader, other) => {
    leader.addEventListener("play", () => { if (other.paused) other.play().catch(() => {}); });
    leader.addEventListener("pause", () => { if (!other.paused) other.pause(); });
    leader.addEventListener("seeked", () => { if (Math.abs(other.currentTime - leader.currentTime) > 0.05) other.currentTime = leader.currentTime; });
  };
  follow(a, b);
  follow(b, a);
}

async function refreshJob(id) {
  const job = await api(`/api/jobs/${id}`);
  text($("#job-title"), job.key);
  const size = `${bytes(job.size)}${job.duration ? `, ${seconds(job.duration)}` : ""}`;
  const faces = job.faces == null ? "" : `, ${job.faces} face${job.faces === 1 ? "" : "s"} tracked`;
  $("#job-status").replaceChildren(el("span", { class: `status ${job.status}` }, job.status), ` ${size}${faces}`);
  drawGraph(job);
  const error = $("#job-error");
  error.hidden = !job.error;
  text(error, job.error || "");
  const done = job.status === "SUCCEEDED";
  for (const [sel, path] of [["#download", "result"], ["#download-faces", "faces"]]) {
    const link = $(sel);
    link.hidden = !done;
    if (done) link.href = withKey(`/api/jobs/${job.id}/${path}`);
  }
  $("#cancel").hidden = !["QUEUED", "RUNNING"].includes(job.status);
  $("#retry").hidden = !["FAILED", "CANCELLED"].includes(job.status);
  $("#cancel").onclick = async () => { await api(`/api/jobs/${job.id}`, { method: "DELETE" }); refreshJob(job.id); };
  $("#retry").onclick = async () => { const again = await api(`/api/jobs/${job.id}/retry`, { method: "POST" }); location.hash = `#/jobs/${again.id}`; };
  if (done && $("#compare").dataset.job !== job.id) {
    $("#compare").dataset.job = job.id;
    $("#video-original").src = withKey(`/api/jobs/${job.id}/input`);
    $("#video-result").src = withKey(`/api/jobs/${job.id}/result`);
    $("#compare").hidden = false;
  }
  if (done) await drawTimeline(job);
  return job;
}

function poll(fn) {
  clearInterval(timer);
  const tick = () => fn().catch((e) => console.warn(e.message));
  tick();
  timer = setInterval(tick, 1000);
}

function route() {
  const match = location.hash.match(/^#\/jobs\/([\w-]+)$/);
  if (match) {
    show("job");
    $("#compare").hidden = true;
    $("#timeline-wrap").hidden = true;
    poll(async () => { const job = await refreshJob(match[1]); if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status)) clearInterval(timer); });
  } else {
    show("home");
    poll(refreshJobs);
  }
}

window.addEventListener("DOMContentLoaded", () => {
  setupUploads();
  linkVideos();
  $("#auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("#auth-key").value.trim();
    sessionStorage.setItem("veil-key", apiKey);
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
