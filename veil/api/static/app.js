// veil's web page: upload, watch jobs, compare, download. Plain JavaScript, no build
// step, no requests to any host but this server.
"use strict";

// A blur job's steps (veil.jobs.STEPS) as the graph shows them. Redact is one pass over
// the video: faces are detected and tracked in the same decode that hides them. Audit
// looks for faces left in the output; when it finds one the job is held for review and
// Publish does not run until a reviewer re-renders (or approves) it.
const STEPS = [
  { name: "Validate", label: "Validate", what: "type, size, decodable" },
  { name: "Redact", label: "Detect + redact", what: "one pass over the video" },
  { name: "Audit", label: "Audit", what: "looks for faces left visible" },
  { name: "Publish", label: "Publish", what: "video and faces.json" },
];
// A video longer than the service's --segment-seconds is cut at keyframes by Validate;
// its segments (each detect + redact of its own piece) run on any worker, in parallel,
// and Join puts the pieces back together in place of Redact.
const SEGMENTED_STEPS = [
  STEPS[0],
  { name: "Segments", label: "Segments", what: "detect + redact, in parallel" },
  { name: "Join", label: "Join", what: "pieces into one video" },
  ...STEPS.slice(2),
];
// A reviewer's re-render: the job's own detections with the edits, no detection again.
const RERENDER_STEPS = [
  { name: "Rerender", label: "Redact from edits", what: "reviewed boxes, no new detection" },
  { name: "Audit", label: "Audit", what: "looks for faces left visible" },
  { name: "Publish", label: "Publish", what: "video and faces.json" },
];
const ENDED = ["SUCCEEDED", "FAILED", "CANCELLED", "NEEDS_REVIEW"];
// Keys veil takes as photos (veil.photos.PHOTO_EXTENSIONS): one picture, no timeline.
const PHOTO = /\.(jpe?g|png|webp|tiff?|bmp|gif|heic|heif|avif)$/i;
const isPhoto = (key) => PHOTO.test(key || "");
const REVIEWABLE = ["NEEDS_REVIEW", "SUCCEEDED"];
// How the jobs list names the step a job is in.
const PROGRESS_LABELS = { Segments: "Detect + redact in segments" };
const stepLabel = (name) => PROGRESS_LABELS[name] || ([...STEPS, ...SEGMENTED_STEPS, ...RERENDER_STEPS].find((s) => s.name === name) || { label: name }).label;
// A segment's state in words (the table says it in text, not in colour only).
const SEGMENT_STATES = { QUEUED: "waiting", RUNNING: "running", SUCCEEDED: "done", FAILED: "failed", CANCELLED: "cancelled" };
const ACTIVE = ["QUEUED", "RUNNING"];
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
  for (const section of ["auth", "home", "job", "review"]) $(`#${section}`).hidden = section !== id;
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

// Time left from how fast ``fraction`` (0 to 1) of the job's current step has grown
// since this page first saw the step.
function timeLeft(job, fraction) {
  if (job.status !== "RUNNING" || !(fraction > 0)) return "";
  const now = Date.now() / 1000;
  const key = `${job.id}:${job.step}`;
  const first = rates.get(key);
  if (!first) { rates.set(key, { fraction, at: now }); return ""; }
  const rate = (fraction - first.fraction) / Math.max(0.001, now - first.at);
  if (rate <= 0) return "";
  return `${seconds((1 - fraction) / rate)} left`;
}

// A segment's share of its own frames done; one whose count is not known yet counts as
// not started.
function segmentFraction(segment) {
  if (segment.status === "SUCCEEDED") return 1;
  return segment.frames_total ? Math.min(1, segment.frames_done / segment.frames_total) : 0;
}

const segmentsRunning = (job) => job.status === "RUNNING" && (job.segments || []).some((s) => ACTIVE.includes(s.status));

// One overall progress: a segmented job's is its segments' shares averaged (they may run
// at once, each on its own worker); anything else's is the frames of the step it is in.
// A step waiting to try again after a fault: which, why, and when (job.retrying).
function retryingText(job) {
  const retry = job.retrying;
  if (!retry) return "";
  const which = retry.segment != null ? `${stepLabel(retry.step)} ${retry.segment + 1}` : stepLabel(retry.step);
  const wait = Math.max(0, Math.ceil(retry.retry_at - Date.now() / 1000));
  return `${which}: ${retry.cause}; ${wait ? `retrying in ${wait} s` : "retrying now"}`;
}

function progressOf(job) {
  if (job.status === "SUCCEEDED" || job.status === "NEEDS_REVIEW") return { fraction: 1, detail: "" };
  const segments = job.segments || [];
  const retrying = retryingText(job);
  if (segmentsRunning(job)) {
    const fraction = segments.reduce((sum, s) => sum + segmentFraction(s), 0) / segments.length;
    const done = segments.filter((s) => s.status === "SUCCEEDED").length;
    const frames = segments.reduce((sum, s) => sum + (s.frames_done || 0), 0);
    return { fraction, detail: retrying || `${stepLabel("Segments")}: ${done} of ${segments.length} done, ${frames} frames ${timeLeft({ ...job, step: "Segments" }, fraction)}`.trim() };
  }
  const fraction = job.frames_total ? Math.min(1, job.frames_done / job.frames_total) : 0;
  const detail = retrying || (job.status === "RUNNING" && job.step
    ? `${stepLabel(job.step)}: ${job.frames_done}${job.frames_total ? ` / ${job.frames_total}` : ""} frames ${timeLeft(job, job.frames_total ? fraction : 0)}`.trim()
    : "");
  return { fraction, detail };
}

function progressCell(job) {
  const { fraction, detail } = progressOf(job);
  const bar = el("div", { class: job.status === "NEEDS_REVIEW" ? "bar held" : "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(fraction * 100)), "aria-label": `progress of ${job.key}` }, el("span"));
  bar.firstChild.style.width = `${fraction * 100}%`;
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
    if (job.status === "NEEDS_REVIEW") {
      status.append(el("div", { class: "small" }, `${heldReason(job)}; nothing published. `, el("a", { href: `#/jobs/${job.id}/review` }, "Review")));
    }
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

// Uploads ``files``, asking first for each that would replace a video of the same name
// in the input bucket (its job's review and retry close once it is replaced).
async function uploadAll(files) {
  let present = new Set();
  try { present = new Set((await api("/api/objects")).map((o) => o.key)); } catch (e) { /* listed only to ask */ }
  for (const file of files) {
    if (present.has(file.name) && !window.confirm(`${file.name} is already in the input bucket. Replace it? Its earlier job keeps its output, but can no longer be reviewed or run again.`)) continue;
    upload(file);
  }
}

function setupUploads() {
  const drop = $("#drop");
  const input = $("#file");
  input.addEventListener("change", () => { uploadAll([...input.files]); input.value = ""; });
  drop.addEventListener("click", (event) => { if (event.target !== input && event.target.tagName !== "LABEL") input.click(); });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); uploadAll([...event.dataTransfer.files]); });
  $("#bucket").addEventListener("toggle", () => { if ($("#bucket").open) refreshObjects().catch(() => {}); });
}

// One run's steps: ``recorded`` are those DBOS finished (in order); ``active`` says this
// run is the job's latest, so the job's status and current step belong to it.
function drawSteps(list, steps, recorded, job, active) {
  list.replaceChildren();
  const byName = Object.fromEntries(recorded.map((s) => [s.name, s]));
  const segments = job.segments || [];
  const fanOut = steps.some((s) => s.name === "Segments");
  // Segments are workflows of their own, not steps of the job's: once all are done they
  // count as one step, from Validate's end to Join's start.
  if (fanOut && segments.length && segments.every((s) => s.status === "SUCCEEDED")) {
    byName.Segments = { name: "Segments", started_at: byName.Validate && byName.Validate.ended_at, ended_at: byName.Join && byName.Join.started_at };
  }
  let failedStep = null;
  if (active && job.status === "FAILED") {
    failedStep = (recorded.find((s) => s.error) || {}).name || null;
    // A failed segment fails the job outside any step of the job's own.
    if (!failedStep && fanOut && !byName.Segments) failedStep = "Segments";
  }
  // Audited but not published: held, either now (the latest run) or before a re-render.
  const held = byName.Audit && !byName.Publish && (active ? job.status === "NEEDS_REVIEW" : true);
  const running = active && job.status === "RUNNING";
  // The step the job reports progress for, unless that one is over (a step with no
  // progress of its own, such as Join, leaves the one before named): then the first
  // step not done yet.
  const current = !running ? null
    : steps.some((s) => s.name === job.step) && !byName[job.step] ? job.step
      : (steps.find((s) => !byName[s.name]) || {}).name;
  for (const { name, label, what } of steps) {
    const step = byName[name];
    let state = "pending";
    if (name === failedStep) state = "failed";
    else if (step) state = "done";
    else if (name === "Publish" && held) state = "held";
    else if (name === current) state = "current";
    else if (!active || ENDED.includes(job.status)) state = "skipped"; // never ran in this run
    const took = step && step.ended_at != null && step.started_at != null ? step.ended_at - step.started_at : null;
    // The current step says how far it is, as the jobs list does, not just "running".
    const frames = job.step === name && job.frames_done ? `${job.frames_done}${job.frames_total ? ` / ${job.frames_total}` : ""} frames` : "";
    const time = took != null ? `${Math.max(0, took).toFixed(1)} s` : state === "current" ? (frames || "running…") : "";
    let shown = state === "held" ? (active ? "held: waiting for review" : "held for review") : state === "skipped" ? "not run" : time || state;
    let said = ["held", "skipped"].includes(state) ? shown : state;
    let doing = what;
    let pips = "";
    if (name === "Segments" && segments.length) {
      const n = segments.length;
      const done = segments.filter((s) => s.status === "SUCCEEDED").length;
      doing = `${n} × detect + redact`;
      if (done < n) {
        const how = state === "current" ? `${Math.round(100 * progressOf(job).fraction)}%` : state === "failed" ? "failed" : state === "skipped" ? "stopped" : "";
        shown = `${done} of ${n} done${how ? `, ${how}` : ""}`;
        said = shown;
      }
      pips = el("span", { class: "pips", "aria-hidden": "true" }, ...segments.map((s) => el("span", { class: `pip ${s.status}` })));
    }
    const parts = [el("span", { class: "name" }, label), el("span", { class: "what" }, doing), el("span", { class: "time" }, shown), pips];
    list.append(el("li", { class: name === "Segments" ? `${state} fan-out` : state, "data-step": name, "aria-label": `${label} (${doing}): ${said}${time && said !== time ? `, ${time}` : ""}` }, ...parts));
  }
}

function drawGraph(job) {
  // A re-render's steps (Rerender, Audit, Publish) follow the job's own in job.steps.
  const cut = job.steps.findIndex((s) => s.name === "Rerender");
  const own = cut < 0 ? job.steps : job.steps.slice(0, cut);
  const again = cut < 0 ? [] : job.steps.slice(cut);
  const rerendered = job.renders > 0;
  const segmented = (job.segments || []).length > 0 || own.some((s) => s.name === "Join");
  drawSteps($("#graph"), segmented ? SEGMENTED_STEPS : STEPS, own, job, !rerendered);
  $("#rerender-wrap").hidden = !rerendered;
  if (rerendered) {
    text($("#rerender-title"), `Re-render ${job.renders} with the reviewer's edits (${job.edits.length})`);
    drawSteps($("#graph-rerender"), RERENDER_STEPS, again, job, true);
  }
  drawSegments(job);
}

// A segmented job's segments: one card each with its state in words, the worker that has
// it, and its frames done.
function drawSegments(job) {
  const segments = job.segments || [];
  $("#segments-wrap").hidden = segments.length === 0;
  if (!segments.length) return;
  const n = segments.length;
  const count = (status) => segments.filter((s) => s.status === status).length;
  const workers = new Set(segments.filter((s) => s.status !== "QUEUED" && s.worker).map((s) => s.worker));
  const parts = [[count("SUCCEEDED"), "done"], [count("RUNNING"), "running"], [count("QUEUED"), "waiting"], [count("FAILED"), "failed"], [count("CANCELLED"), "cancelled"]]
    .filter(([k]) => k).map(([k, what]) => `${k} ${what}`);
  const summary = `${n} segments: ${parts.join(", ")}${workers.size ? `; ${workers.size} worker${workers.size === 1 ? "" : "s"}` : ""}.`;
  if ($("#segments-summary").textContent !== summary) text($("#segments-summary"), summary);
  $("#segments").replaceChildren(...segments.map((s) => {
    const state = SEGMENT_STATES[s.status] || s.status.toLowerCase();
    const name = `Segment ${s.index + 1}`;
    // A queued segment names the process that queued it, not one that will run it.
    const worker = s.status === "QUEUED" || !s.worker ? null : s.worker;
    const fraction = segmentFraction(s);
    const frames = s.frames_total ? `${s.frames_done} / ${s.frames_total} frames` : s.frames_done ? `${s.frames_done} frames` : "no frames yet";
    const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(fraction * 100)), "aria-label": `${name} frames` }, el("span"));
    bar.firstChild.style.width = `${fraction * 100}%`;
    return el("li", { class: `segment ${s.status}`, "data-segment": String(s.index), "aria-label": `${name}: ${state}${worker ? `, on ${worker}` : ""}, ${frames}` },
      el("div", { class: "segment-head" }, el("strong", {}, name), el("span", { class: `seg-state ${s.status}` }, state)),
      el("div", { class: "small worker" }, worker ? `on ${worker}` : s.status === "QUEUED" ? "waiting for a worker" : s.status === "CANCELLED" ? "never started" : "no worker"),
      bar,
      el("div", { class: "small frames" }, frames));
  }));
}

function heldReason(job) {
  const found = job.audit ? job.audit.findings.length : 0;
  return `held: the audit found ${found} face${found === 1 ? "" : "s"} left visible`;
}

function range(startMs, endMs) {
  return `${(startMs / 1000).toFixed(2)}–${(endMs / 1000).toFixed(2)} s`;
}

function percent(ratio) {
  return `${(100 * ratio).toFixed(1)}%`;
}

function describeEdit(edit) {
  const note = edit.note ? ` (“${edit.note}”)` : "";
  if (edit.action === "show") return `Face ${edit.track} kept visible${note}`;
  if (edit.action === "remove") return `Face ${edit.track} removed: not a face${note}`;
  const b = edit.box;
  const keys = edit.keyframes ? edit.keyframes.length : 0;
  if (keys > 1) return `Box added moving through ${keys} keyframes, from ${percent(b.left)} from the left and ${percent(b.top)} from the top, ${range(edit.start_ms, edit.end_ms)}${note}`;
  return `Box added at ${percent(b.left)} from the left, ${percent(b.top)} from the top, ${percent(b.width)} × ${percent(b.height)}, ${range(edit.start_ms, edit.end_ms)}${note}`;
}

function drawAudit(job) {
  const audit = job.audit;
  $("#audit").hidden = !audit;
  if (!audit) return;
  // The same words as the report and the CLI (veil.audit.coverage); older jobs lack them.
  const checked = audit.coverage || `${audit.frames_checked} of ${audit.frames_total} frames checked`;
  const n = audit.findings.length;
  const faces = `${n} face${n === 1 ? "" : "s"}`;
  const accepted = job.accepted_findings && job.status === "SUCCEEDED";
  text($("#audit-summary"), audit.passed
    ? `Passed: no face left visible (${checked}).`
    : accepted
      ? `Published with ${job.accepted_findings} finding${job.accepted_findings === 1 ? "" : "s"} accepted by a reviewer: the audit found ${faces} left visible (${checked}).`
      : `Found ${faces} left visible in the output (${checked}).`);
  $("#audit-summary").className = audit.passed ? "ok" : accepted ? "accepted" : "error";
  const body = $("#findings tbody");
  body.replaceChildren();
  for (const f of audit.findings) {
    const b = f.box;
    body.append(el("tr", {}, el("td", {}, `${(f.start_ms / 1000).toFixed(2)} s`), el("td", {}, `${(f.end_ms / 1000).toFixed(2)} s`), el("td", {}, String(f.frames)), el("td", {}, `${percent(b.left)}, ${percent(b.top)}, ${percent(b.width)}, ${percent(b.height)}`), el("td", {}, f.score == null ? "" : Number(f.score).toFixed(2))));
  }
  $("#findings").hidden = n === 0;
}

function drawEdits(job) {
  $("#edits-wrap").hidden = !job.edits.length;
  $("#edits-list").replaceChildren(...job.edits.map((e) => el("li", {}, describeEdit(e))));
  const by = job.report && job.report.reviewed_by;
  $("#reviewed-by").hidden = !by;
  if (by) {
    const who = [by.name, by.api_key ? `with ${by.api_key}` : ""].filter(Boolean).join(" ") || "someone (this service asks for no key)";
    text($("#reviewed-by"), `${by.approved ? "Approved" : "Re-rendered"} by ${who}, asked at ${new Date(by.asked_at).toLocaleString()}.`);
  }
}

// The reviewer's name, remembered by this browser (never sent anywhere but this service).
function reviewerName() {
  const name = $("#reviewer-name").value.trim();
  try { if (name) localStorage.setItem("veil-reviewer", name); else localStorage.removeItem("veil-reviewer"); } catch { /* private mode */ }
  return name || null;
}

function drawReport(job) {
  const details = $("#report");
  details.hidden = !job.report;
  if (!job.report) return;
  text($("#report-json"), JSON.stringify(job.report, null, 2));
  const link = $("#report-download");
  link.href = withKey(`/api/jobs/${job.id}/report`);
  link.setAttribute("download", `${job.key.split("/").pop()}.veil.json`);
}

async function drawTimeline(job) {
  const version = `${job.id}:${job.output_etag}`;
  if (job.status !== "SUCCEEDED" || $("#timeline").dataset.job === version) return;
  const faces = await api(`/api/jobs/${job.id}/faces`);
  const duration = (faces.VideoMetadata.DurationMillis || 1);
  const strip = $("#timeline");
  strip.replaceChildren();
  strip.dataset.job = version;
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
  const retrying = retryingText(job);
  $("#job-status").replaceChildren(el("span", { class: `status ${job.status}` }, job.status), ` ${size}${faces}`,
    ...(retrying ? [el("br"), el("span", { class: "retrying" }, retrying)] : []));
  drawGraph(job);
  const error = $("#job-error");
  error.hidden = !job.error;
  text(error, job.error || "");
  const held = job.status === "NEEDS_REVIEW";
  $("#held").hidden = !held;
  // A re-render held after an earlier one was published leaves that one live: say so.
  const live = job.output_key ? ` The output published before (${job.output_key}) stays live until a re-render passes or is approved.` : " Nothing was published.";
  if (held) text($("#held-text"), `Held for review: ${heldReason(job).replace("held: ", "")} in this render's output, so it was not published.${live} Review the faces, add a box over what was missed, and re-render (or approve it if what the audit saw is not a face).`);
  $("#superseded").hidden = !job.superseded;
  const review = $("#review-link");
  review.hidden = !(job.reviewable && REVIEWABLE.includes(job.status)) || Boolean(job.superseded);
  review.href = `#/jobs/${job.id}/review`;
  review.className = held ? "button" : "button secondary";
  text(review, held ? "Review" : "Review faces and edits");
  const done = job.status === "SUCCEEDED";
  for (const [sel, path] of [["#download", "result"], ["#download-faces", "faces"]]) {
    const link = $(sel);
    link.hidden = !done;
    if (done) link.href = withKey(`/api/jobs/${job.id}/${path}`);
  }
  $("#cancel").hidden = !["QUEUED", "RUNNING"].includes(job.status);
  $("#retry").hidden = !["FAILED", "CANCELLED"].includes(job.status) || Boolean(job.superseded);
  // A refused cancel or retry is said beside its button, not with the job's own error.
  const refused = (e) => { $("#action-error").hidden = false; text($("#action-error"), e.message); };
  $("#cancel").onclick = () => api(`/api/jobs/${job.id}`, { method: "DELETE" }).then(() => refreshJob(job.id)).catch(refused);
  $("#retry").onclick = () => api(`/api/jobs/${job.id}/retry`, { method: "POST" }).then((again) => { location.hash = `#/jobs/${again.id}`; }).catch(refused);
  drawAudit(job);
  drawEdits(job);
  drawReport(job);
  // A re-render publishes a new version under the same URL: reload the players then. A
  // held job shows what its audit held (never published) beside the original.
  const heldOutput = held && job.held_key;
  const version = `${job.id}:${done ? job.output_etag : job.held_etag}`;
  if ((done || heldOutput) && $("#compare").dataset.job !== version) {
    $("#compare").dataset.job = version;
    // A photo is shown as pictures, a video in players (one of each pair is hidden).
    const photo = isPhoto(job.key);
    const [original, result] = photo ? ["#image-original", "#image-result"] : ["#video-original", "#video-result"];
    for (const sel of ["#image-original", "#image-result"]) $(sel).hidden = !photo;
    for (const sel of ["#video-original", "#video-result"]) $(sel).hidden = photo;
    // A photo as veil turned it: browsers ignore some orientation tags veil follows.
    $(original).src = withKey(`/api/jobs/${job.id}/input${photo ? "?upright=1" : ""}`);
    $(result).src = done
      ? withKey(`/api/jobs/${job.id}/result?v=${encodeURIComponent(job.output_etag || "")}`)
      : withKey(`/api/jobs/${job.id}/held?v=${encodeURIComponent(job.held_etag || "")}`);
    text($("#result-caption"), done ? "Anonymized" : "Held by the audit (not published)");
    $("#compare").hidden = false;
  }
  if (!done && !heldOutput) $("#compare").hidden = true;
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
  const match = location.hash.match(/^#\/jobs\/([\w-]+)(\/review)?$/);
  if (!(match && match[2])) closeReview();
  if (match && match[2]) {
    clearInterval(timer);
    show("review");
    openReview(match[1]).catch((e) => showReviewError(e.message));
  } else if (match) {
    show("job");
    for (const sel of ["#compare", "#timeline"]) $(sel).dataset.job = "";
    $("#compare").hidden = true;
    $("#timeline-wrap").hidden = true;
    $("#rerender-wrap").hidden = true;
    $("#segments-wrap").hidden = true;
    $("#action-error").hidden = true;
    $("#review-link").hidden = true;
    poll(async () => { const job = await refreshJob(match[1]); if (ENDED.includes(job.status)) clearInterval(timer); });
  } else {
    show("home");
    poll(refreshJobs);
  }
}

// Review: a person's edits to a job's detections (veil.review). Every request sends the
// whole list of edits; they always apply to the job's own detections.
const review = { id: null, job: null, data: null, edits: [], draft: null, drag: null, duration: 1000, fps: 30, photo: false, keyframes: [], boxes: { from_ms: 0, to_ms: -1, boxes: [], loading: null } };
const clamp = (v, lo = 0, hi = 1) => Math.min(hi, Math.max(lo, v));

// Drafts: the edits saved on the server as they are made (veil.review.Draft), so a
// reload, a second tab or another reviewer sees them; ``history`` is what Undo steps back
// through (each entry the edits as JSON).
const drafts = { version: 0, dirty: false, timer: null, history: [] };

function showSubmitError(message) {
  const error = $("#submit-error");
  error.hidden = !message;
  text(error, message || "");
}

function editsChanged({ undoable = true } = {}) {
  countEdits();
  const now = JSON.stringify(review.edits);
  if (undoable && now !== drafts.history[drafts.history.length - 1]) drafts.history.push(now);
  $("#undo").disabled = drafts.history.length < 2;
  drafts.dirty = true;
  text($("#draft-status"), "Saving…");
  clearTimeout(drafts.timer);
  drafts.timer = setTimeout(saveDraft, 400);
}

async function saveDraft() {
  if (!drafts.dirty || !review.id) return;
  const sent = JSON.stringify(review.edits);
  try {
    const saved = await api(`/api/jobs/${review.id}/review/draft`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ edits: review.edits, version: drafts.version }) });
    drafts.version = saved.version;
    if (JSON.stringify(review.edits) === sent) drafts.dirty = false;
    text($("#draft-status"), drafts.dirty ? "Saving…" : `Edits saved at ${new Date(saved.saved_at * 1000).toLocaleTimeString()} (not re-rendered yet).`);
    if (drafts.dirty) drafts.timer = setTimeout(saveDraft, 400);
  } catch (e) {
    text($("#draft-status"), "");
    showSubmitError(`Your edits are not saved: ${e.message}`);
  }
}

function undoEdit() {
  if (drafts.history.length < 2) return;
  drafts.history.pop();
  review.edits = JSON.parse(drafts.history[drafts.history.length - 1]);
  drawTracks();
  drawAdded();
  drawOverlay();
  editsChanged({ undoable: false });
}

function showReviewError(message) {
  const error = $("#review-error");
  error.hidden = !message;
  text(error, message || "");
}

async function openReview(id) {
  showReviewError("");
  $("#review-body").hidden = true;
  review.id = id;
  $("#review-back").href = `#/jobs/${id}`;
  const [job, data] = await Promise.all([api(`/api/jobs/${id}`), api(`/api/jobs/${id}/review`)]);
  if (review.id !== id) return; // the reader moved on meanwhile
  review.job = job;
  review.data = data;
  review.edits = (data.draft ? data.draft.edits : data.edits).map((e) => ({ ...e }));
  review.draft = null;
  drafts.version = data.draft ? data.draft.version : 0;
  drafts.history = [JSON.stringify(review.edits)];
  drafts.dirty = false;
  clearTimeout(drafts.timer);
  showSubmitError("");
  text($("#draft-status"), data.draft ? `Your edits in progress, saved at ${new Date(data.draft.saved_at * 1000).toLocaleTimeString()}, are restored: not re-rendered yet.` : "");
  $("#undo").disabled = true;
  const video = data.video || {};
  review.duration = video.DurationMillis || (job.duration ? job.duration * 1000 : 1000);
  review.fps = video.FrameRate || 30;
  // A photo is one moment: no transport, no times, no keyframes.
  if (review.photo !== isPhoto(job.key) && $("#review-video")) $("#review-video").remove();
  review.photo = isPhoto(job.key);
  $("#review").classList.toggle("photo", review.photo);
  $("#transport").hidden = review.photo;
  text($("#review-title"), `Review: ${job.key}`);
  const renders = data.renders ? `, re-rendered ${data.renders} time${data.renders === 1 ? "" : "s"}` : "";
  $("#review-status").replaceChildren(el("span", { class: `status ${job.status}` }, job.status), ` ${data.tracks.length} face${data.tracks.length === 1 ? "" : "s"} tracked${renders}`);
  if (!REVIEWABLE.includes(job.status)) showReviewError(`This job is ${job.status.toLowerCase()}: wait for it to end before re-rendering.`);
  const stage = $("#stage");
  if (video.FrameWidth && video.FrameHeight) stage.style.aspectRatio = `${video.FrameWidth} / ${video.FrameHeight}`;
  const player = reviewPlayer();
  // The boxes are drawn on the picture veil saw: a photo turned as veil turned it.
  const source = withKey(`/api/jobs/${id}/input${review.photo ? "?upright=1" : ""}`);
  if (player.dataset.src !== source) { player.dataset.src = source; player.src = source; }
  // What the audit held, beside the original and in step with it.
  const heldPlayer = $(review.photo ? "#review-held-image" : "#review-held");
  $("#review-held").hidden = review.photo;
  $("#review-held-image").hidden = !review.photo;
  const heldSource = job.status === "NEEDS_REVIEW" && job.held_key ? withKey(`/api/jobs/${id}/held?v=${encodeURIComponent(job.held_etag || "")}`) : "";
  $("#held-figure").hidden = !heldSource;
  if (heldPlayer.dataset.src !== heldSource) { heldPlayer.dataset.src = heldSource; if (heldSource) heldPlayer.src = heldSource; else heldPlayer.removeAttribute("src"); }
  const seek = $("#seek");
  seek.max = String(review.duration);
  seek.step = String(Math.max(1, Math.round(1000 / review.fps)));
  // The form starts empty: a box is drawn, typed or taken from a finding on purpose.
  for (const sel of ["#box-left", "#box-top", "#box-width", "#box-height", "#box-start", "#box-end", "#box-note"]) $(sel).value = "";
  review.keyframes = [];
  review.boxes = { from_ms: 0, to_ms: -1, boxes: [], loading: null };
  drawKeyframes();
  drawTracks();
  drawFindingsRow();
  drawAdded();
  drawOverlay();
  updateClock();
  $("#approve").hidden = job.status !== "NEEDS_REVIEW";
  $("#approve-help").hidden = job.status !== "NEEDS_REVIEW";
  $("#review-body").hidden = false;
  $("#review-title").focus({ preventScroll: true });
}

function trackEdit(track) {
  return review.edits.find((e) => e.action !== "add" && e.track === track);
}

function setTrackAction(track, action) {
  const current = trackEdit(track);
  review.edits = review.edits.filter((e) => e !== current);
  if (!current || current.action !== action) {
    const edit = { action, track };
    if (current && current.note) edit.note = current.note;
    review.edits.push(edit);
  }
  drawTracks();
  editsChanged();
  const button = document.querySelector(`#tracks li[data-track="${track}"] button[data-action="${action}"]`);
  if (button) button.focus();
}

function bar(startMs, endMs, cls) {
  const span = el("span", { class: cls });
  span.style.left = `${(100 * startMs) / review.duration}%`;
  span.style.width = `${Math.max(0.4, (100 * (endMs - startMs)) / review.duration)}%`;
  return span;
}

function trackBar(...spans) {
  return el("div", { class: "track-bar", "aria-hidden": "true" }, ...spans, el("span", { class: "playhead" }));
}

function seekTo(ms) {
  const player = reviewPlayer();
  player.pause();
  player.currentTime = clamp(ms / 1000, 0, review.duration / 1000);
  updateClock();
}

function drawTracks() {
  const list = $("#tracks");
  list.replaceChildren();
  const tracks = review.data.tracks;
  $("#tracks-empty").hidden = tracks.length > 0;
  for (const t of tracks) {
    const edit = trackEdit(t.id);
    const titleId = `track-${t.id}-title`;
    const picture = el("img", { class: "thumb", alt: `Face ${t.id}, from the original`, src: withKey(`/api/jobs/${review.id}/tracks/${t.id}/thumbnail`), referrerpolicy: "no-referrer", decoding: "async" });
    picture.addEventListener("error", () => picture.replaceWith(el("span", { class: "thumb none" }, "no picture")));
    const state = edit ? (edit.action === "show" ? "kept visible" : "removed") : "blurred";
    const head = el("div", { class: "track-head" }, picture, el("div", {}, el("strong", { id: titleId }, `Face ${t.id}`), el("span", { class: `small state ${state.replace(" ", "-")}` }, ` ${state}`), el("div", { class: "small" }, `${range(t.start_ms, t.end_ms)} · ${t.frames} frame${t.frames === 1 ? "" : "s"} · score ${(t.score / 100).toFixed(2)}`)));
    const keep = el("button", { type: "button", class: "secondary", "data-action": "show", "aria-pressed": String(!!edit && edit.action === "show"), "aria-describedby": titleId }, "Keep visible");
    const remove = el("button", { type: "button", class: "secondary", "data-action": "remove", "aria-pressed": String(!!edit && edit.action === "remove"), "aria-describedby": titleId }, "Remove (not a face)");
    const go = el("button", { type: "button", class: "secondary", "aria-describedby": titleId }, `Show at ${((t.best_ms ?? t.start_ms) / 1000).toFixed(2)} s`);
    keep.addEventListener("click", () => setTrackAction(t.id, "show"));
    remove.addEventListener("click", () => setTrackAction(t.id, "remove"));
    go.addEventListener("click", () => seekTo(t.best_ms ?? t.start_ms));
    const note = el("input", { type: "text", maxlength: "200", "aria-describedby": titleId });
    note.value = (edit && edit.note) || "";
    note.disabled = !edit;
    note.addEventListener("input", () => { const e = trackEdit(t.id); if (e) { if (note.value.trim()) e.note = note.value.trim(); else delete e.note; editsChanged({ undoable: false }); } });
    const actions = el("div", { class: "track-actions" }, keep, remove, go, el("label", { class: "note" }, "Note ", note));
    list.append(el("li", { class: `track-row ${state.replace(" ", "-")}`, "data-track": String(t.id) }, head, trackBar(bar(t.start_ms, t.end_ms, "span")), actions));
  }
  countEdits();
}

function drawFindingsRow() {
  const findings = (review.data.audit && review.data.audit.findings) || [];
  $("#findings-row").hidden = findings.length === 0;
  const strip = $("#findings-bar");
  strip.replaceChildren(...findings.map((f) => bar(f.start_ms, f.end_ms, "span finding")), el("span", { class: "playhead" }));
  const n = findings.length;
  text($("#findings-summary"), ` ${n} place${n === 1 ? "" : "s"} where the audit saw a face in the output`);
  const buttons = $("#findings-buttons");
  buttons.replaceChildren(...findings.map((f, i) => {
    const button = el("button", { type: "button", class: "secondary" }, `Use finding ${i + 1}: ${range(f.start_ms, f.end_ms)}`);
    button.addEventListener("click", () => useFinding(f, true));
    return button;
  }));
}

// The add-box form holds a box as percentages; the draft on the picture follows it.
function fillForm(box, times, focus) {
  const pct = (v) => (100 * v).toFixed(1);
  $("#box-left").value = pct(box.left);
  $("#box-top").value = pct(box.top);
  $("#box-width").value = pct(box.width);
  $("#box-height").value = pct(box.height);
  const [start, end] = times || aroundNow();
  $("#box-start").value = (start / 1000).toFixed(2);
  if (!$("#box-to-end").checked) $("#box-end").value = (end / 1000).toFixed(2);
  if (focus) $("#box-left").focus();
}

function aroundNow() {
  const now = reviewPlayer().currentTime * 1000 || 0;
  return [Math.max(0, now - 1000), Math.min(review.duration, now + 1000)];
}

// A finding's box, or where the audit saw it on each checked frame as keyframes, so the
// added box follows the face; a second before and after, where the face may already show.
function useFinding(finding, focus) {
  fillForm(finding.box, [Math.max(0, finding.start_ms - 1000), Math.min(review.duration, finding.end_ms + 1000)], focus);
  const sightings = finding.sightings || [];
  review.keyframes = sightings.length > 1 ? sightings.map((s) => ({ at_ms: s.at_ms, box: { ...s.box } })) : [];
  review.keyframesFrom = review.keyframes.length ? "finding" : null;
  review.draft = review.keyframes.length ? null : { ...finding.box };
  drawKeyframes();
  if (focus) seekTo(finding.start_ms);
  drawOverlay();
}

function formBox() {
  const value = (sel) => Number.parseFloat($(sel).value);
  const [left, top, width, height] = ["#box-left", "#box-top", "#box-width", "#box-height"].map((sel) => value(sel) / 100);
  if (![left, top, width, height].every(Number.isFinite)) return { error: "Give the box's left, top, width and height in percent." };
  if (left < 0 || top < 0 || width <= 0 || height <= 0) return { error: "The box needs a positive width and height, and left and top of 0 or more." };
  if (left >= 1 || top >= 1) return { error: "The box must start inside the picture (left and top under 100%)." };
  return { box: { left, top, width: Math.min(width, 1 - left), height: Math.min(height, 1 - top) } };
}

function formTimes() {
  if (review.photo) return { start_ms: 0, end_ms: 0 };
  const start = Number.parseFloat($("#box-start").value);
  const end = $("#box-to-end").checked ? review.duration / 1000 : Number.parseFloat($("#box-end").value);
  if (!Number.isFinite(start) || !Number.isFinite(end)) return { error: "Give the start and end in seconds." };
  const startMs = Math.round(clamp(start * 1000, 0, review.duration));
  const endMs = Math.round(clamp(end * 1000, 0, review.duration));
  if (endMs < startMs) return { error: "The end must not be before the start." };
  return { start_ms: startMs, end_ms: endMs };
}

function addBox(event) {
  event.preventDefault();
  const error = $("#add-error");
  const { box, error: boxError } = formBox();
  const times = formTimes();
  const problem = boxError || times.error;
  error.hidden = !problem;
  text(error, problem || "");
  if (problem) return;
  const edit = { action: "add", start_ms: times.start_ms, end_ms: times.end_ms, box: roundBox(box) };
  if (review.keyframes.length) {
    // The box moves through the keyframes; the time range covers them all.
    edit.keyframes = review.keyframes.map((k) => ({ at_ms: k.at_ms, box: roundBox(k.box) }));
    edit.box = edit.keyframes[0].box;
    edit.start_ms = Math.min(edit.start_ms, edit.keyframes[0].at_ms);
    edit.end_ms = Math.max(edit.end_ms, edit.keyframes[edit.keyframes.length - 1].at_ms);
  }
  const note = $("#box-note").value.trim();
  if (note) edit.note = note;
  review.edits.push(edit);
  $("#box-note").value = "";
  review.draft = null;
  review.keyframes = [];
  drawKeyframes();
  drawAdded();
  drawOverlay();
  editsChanged();
}

const roundBox = (b) => { const r = (v) => Math.round(v * 10000) / 10000; return { left: r(b.left), top: r(b.top), width: r(b.width), height: r(b.height) }; };

// An added box (or a finding) at ``ms``: its own, or moved between its keyframes (or the
// audit's sightings), as veil.review.Edit.box_at does.
function boxAtTime(keyframes, box, ms) {
  if (!keyframes || !keyframes.length) return box;
  const after = keyframes.findIndex((k) => k.at_ms > ms);
  if (after === 0) return keyframes[0].box;
  if (after < 0) return keyframes[keyframes.length - 1].box;
  const a = keyframes[after - 1], b = keyframes[after];
  const share = (ms - a.at_ms) / (b.at_ms - a.at_ms);
  const mix = (name) => a.box[name] + (b.box[name] - a.box[name]) * share;
  return { left: mix("left"), top: mix("top"), width: mix("width"), height: mix("height") };
}

// Keyframes of the box being drawn: the form's box at this moment, kept by time.
function setKeyframe() {
  const { box, error: problem } = formBox();
  const error = $("#add-error");
  error.hidden = !problem;
  text(error, problem || "");
  if (problem) return;
  const at = Math.round(reviewPlayer().currentTime * 1000);
  review.keyframes = [...review.keyframes.filter((k) => k.at_ms !== at), { at_ms: at, box }].sort((a, b) => a.at_ms - b.at_ms);
  review.keyframesFrom = "reviewer";
  const first = review.keyframes[0].at_ms, last = review.keyframes[review.keyframes.length - 1].at_ms;
  $("#box-start").value = (first / 1000).toFixed(2);
  if (!$("#box-to-end").checked) $("#box-end").value = (last / 1000).toFixed(2);
  review.draft = null;
  drawKeyframes();
  drawOverlay();
}

function drawKeyframes() {
  const n = review.keyframes.length;
  const seconds = (k) => `${(k.at_ms / 1000).toFixed(2)} s`;
  const where = n > 6 ? `from ${seconds(review.keyframes[0])} to ${seconds(review.keyframes[n - 1])}` : `at ${review.keyframes.map(seconds).join(", ")}`;
  text($("#keyframes-status"), n ? `${n} keyframe${n === 1 ? "" : "s"} ${where}: the box moves from one to the next.` : "");
  $("#clear-keyframes").hidden = n === 0;
}

function drawAdded() {
  const list = $("#added");
  list.replaceChildren();
  const added = review.edits.filter((e) => e.action === "add");
  $("#added-empty").hidden = added.length > 0;
  added.forEach((edit, i) => {
    const titleId = `added-${i}-title`;
    const remove = el("button", { type: "button", class: "secondary", "aria-describedby": titleId }, "Delete");
    remove.addEventListener("click", () => {
      review.edits = review.edits.filter((e) => e !== edit);
      drawAdded();
      drawOverlay();
      editsChanged();
      const next = $("#added button") || $("#box-left");
      next.focus();
    });
    const go = el("button", { type: "button", class: "secondary", "aria-describedby": titleId }, "Show");
    go.addEventListener("click", () => seekTo(edit.start_ms));
    const head = el("div", { class: "track-head" }, el("div", {}, el("strong", { id: titleId }, `Added box ${i + 1}`), el("div", { class: "small" }, describeEdit(edit))));
    list.append(el("li", { class: "track-row added" }, head, trackBar(bar(edit.start_ms, edit.end_ms, "span")), el("div", { class: "track-actions" }, go, remove)));
  });
}

function countEdits() {
  const edits = review.edits;
  const n = (action) => edits.filter((e) => e.action === action).length;
  const parts = [[n("show"), "kept visible"], [n("remove"), "removed"], [n("add"), "added"]].filter(([k]) => k).map(([k, what]) => `${k} ${what}`);
  const same = JSON.stringify(edits) === JSON.stringify(review.data.edits);
  text($("#edit-count"), `${edits.length ? `${edits.length} edit${edits.length === 1 ? "" : "s"}: ${parts.join(", ")}` : "No edits"}${same && review.data.renders ? " (as in the latest re-render)" : ""}.`);
  const open = review.job && REVIEWABLE.includes(review.job.status);
  $("#rerender").disabled = !open;
  $("#approve").disabled = !open;
}

function boxAt(box, cls, label) {
  const node = el("div", { class: `box ${cls}` }, label ? el("span", {}, label) : "");
  node.style.left = `${100 * box.left}%`;
  node.style.top = `${100 * box.top}%`;
  node.style.width = `${100 * box.width}%`;
  node.style.height = `${100 * box.height}%`;
  return node;
}

function drawOverlay() {
  if (!review.data) return;
  const now = reviewPlayer().currentTime * 1000;
  const frame = 1000 / review.fps;
  const overlay = $("#overlay");
  overlay.replaceChildren();
  // Every box veil tracked at this moment, with its track and score: click one to keep
  // that person visible (again to blur them).
  for (const b of tracksNow(now, frame)) {
    const edit = trackEdit(b.track);
    const state = edit ? (edit.action === "show" ? "kept" : "removed") : "blurred";
    const node = boxAt(b.box, `track ${state}`, `Face ${b.track} · ${b.score.toFixed(2)}${state === "blurred" ? "" : ` · ${state}`}`);
    node.dataset.track = String(b.track);
    node.title = state === "kept" ? `Face ${b.track}: kept visible; click to blur it again` : `Face ${b.track}: click to keep this person visible`;
    node.addEventListener("pointerdown", (event) => { event.stopPropagation(); event.preventDefault(); setTrackAction(b.track, "show"); drawOverlay(); });
    overlay.append(node);
  }
  const findings = (review.data.audit && review.data.audit.findings) || [];
  findings.forEach((f, i) => { if (now >= f.start_ms - frame && now <= f.end_ms + frame) overlay.append(boxAt(boxAtTime(f.sightings, f.box, now), "finding", `finding ${i + 1}`)); });
  review.edits.filter((e) => e.action === "add").forEach((e, i) => { if (now >= e.start_ms && now <= e.end_ms) overlay.append(boxAt(boxAtTime(e.keyframes, e.box, now), "added", `added ${i + 1}`)); });
  if (review.draft) overlay.append(boxAt(review.draft, "draft", "new box"));
  else if (review.keyframes.length) overlay.append(boxAt(boxAtTime(review.keyframes, null, now), "draft keyed", "new box (keyframes)"));
}

// The tracked boxes nearest ``now`` (within half a frame), from the window of them
// fetched around the playhead (GET .../review/boxes); a window is fetched as it is left.
function tracksNow(now, frame) {
  const loaded = review.boxes;
  if (now < loaded.from_ms || now > loaded.to_ms) {
    loadBoxes(Math.max(0, Math.floor(now - 2000)), Math.ceil(now + 8000));
    return [];
  }
  let best = Infinity;
  for (const b of loaded.boxes) best = Math.min(best, Math.abs(b.at_ms - now));
  if (best > frame / 2 + 1) return [];
  return loaded.boxes.filter((b) => Math.abs(Math.abs(b.at_ms - now) - best) < 0.5);
}

function loadBoxes(from, to) {
  if (review.boxes.loading || !review.id) return;
  const id = review.id;
  review.boxes.loading = api(`/api/jobs/${id}/review/boxes?from_ms=${from}&to_ms=${to}`)
    .then((answer) => { if (review.id === id) { review.boxes = { ...answer, loading: null }; drawOverlay(); } })
    .catch(() => { review.boxes.loading = null; });
}

function updateClock() {
  const player = reviewPlayer();
  const ms = player.currentTime * 1000;
  $("#seek").value = String(Math.round(ms));
  text($("#clock"), `${(ms / 1000).toFixed(2)} s / ${(review.duration / 1000).toFixed(2)} s`);
  $("#review").style.setProperty("--playhead", `${clamp(ms / review.duration) * 100}%`);
  text($("#play"), player.paused ? "Play" : "Pause");
  drawOverlay();
}

function draftFromForm() {
  // Typing a box over a finding's keyframes means one fixed box instead.
  if (review.keyframesFrom === "finding") { review.keyframes = []; review.keyframesFrom = null; drawKeyframes(); }
  const { box } = formBox();
  review.draft = box || null;
  drawOverlay();
}

function setDraft(box) {
  review.draft = box;
  fillForm(box, aroundNow(), false);
  drawOverlay();
}

// The original plays in the review screen only: made when it opens, dropped when it
// closes, so no other page holds (or streams) it.
function reviewPlayer() {
  let player = $("#review-video");
  if (player) return player;
  if (review.photo) {
    // A picture standing in for a paused player at its one moment.
    player = el("img", { id: "review-video", alt: "The original photo" });
    Object.assign(player, { currentTime: 0, paused: true, pause() {}, play: () => Promise.resolve(), load() {} });
    $("#stage").prepend(player);
    return player;
  }
  player = el("video", { id: "review-video", preload: "auto", muted: "", playsinline: "" });
  player.muted = true;
  for (const name of ["timeupdate", "seeked", "loadedmetadata", "play", "pause"]) player.addEventListener(name, updateClock);
  // The held render follows the original: play, pause and every seek.
  const held = $("#review-held");
  player.addEventListener("play", () => { if (held.src && held.paused) held.play().catch(() => {}); });
  player.addEventListener("pause", () => { if (!held.paused) held.pause(); });
  for (const name of ["seeked", "timeupdate"]) player.addEventListener(name, () => { if (held.src && Math.abs(held.currentTime - player.currentTime) > (player.paused ? 0.01 : 0.15)) held.currentTime = player.currentTime; });
  $("#stage").prepend(player);
  return player;
}

function closeReview() {
  const player = $("#review-video");
  if (player) { player.pause(); player.removeAttribute("src"); player.load(); player.remove(); }
  review.id = null;
  review.data = null;
}

function setupReview() {
  const player = { pause: () => { const p = $("#review-video"); if (p) p.pause(); } };
  const overlay = $("#overlay");
  $("#play").addEventListener("click", () => { const p = reviewPlayer(); if (p.paused) p.play().catch(() => {}); else p.pause(); });
  $("#frame-back").addEventListener("click", () => seekTo(reviewPlayer().currentTime * 1000 - 1000 / review.fps));
  $("#frame-next").addEventListener("click", () => seekTo(reviewPlayer().currentTime * 1000 + 1000 / review.fps));
  $("#seek").addEventListener("input", () => seekTo(Number($("#seek").value)));
  $("#add-form").addEventListener("submit", addBox);
  $("#box-keyframe").addEventListener("click", setKeyframe);
  $("#clear-keyframes").addEventListener("click", () => { review.keyframes = []; drawKeyframes(); drawOverlay(); });
  $("#box-here").addEventListener("click", () => { const [a, b] = aroundNow(); $("#box-start").value = (a / 1000).toFixed(2); if (!$("#box-to-end").checked) $("#box-end").value = (b / 1000).toFixed(2); });
  for (const sel of ["#box-left", "#box-top", "#box-width", "#box-height"]) $(sel).addEventListener("input", draftFromForm);
  $("#box-to-end").addEventListener("change", () => {
    const end = $("#box-end");
    end.disabled = $("#box-to-end").checked;
    if (end.disabled) end.value = (review.duration / 1000).toFixed(2);
  });
  // Drawing: press on the paused frame, drag, release.
  const at = (event) => {
    const r = overlay.getBoundingClientRect();
    return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
  };
  overlay.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    player.pause();
    overlay.setPointerCapture(event.pointerId);
    review.drag = at(event);
    overlay.focus({ preventScroll: true });
  });
  overlay.addEventListener("pointermove", (event) => {
    if (!review.drag) return;
    const [x0, y0] = review.drag;
    const [x1, y1] = at(event);
    review.draft = { left: Math.min(x0, x1), top: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
    drawOverlay();
  });
  const finish = () => {
    if (!review.drag) return;
    review.drag = null;
    const box = review.draft;
    if (box && box.width > 0.005 && box.height > 0.005) setDraft(box);
    else { review.draft = null; drawOverlay(); }
  };
  overlay.addEventListener("pointerup", finish);
  overlay.addEventListener("pointercancel", finish);
  // Keyboard: arrows move the new box by 1% of the picture (Shift: resize it).
  overlay.addEventListener("keydown", (event) => {
    if (event.key === "k" || event.key === "K") { event.preventDefault(); setKeyframe(); return; }
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const box = { ...(review.draft || formBox().box || { left: 0.4, top: 0.4, width: 0.2, height: 0.2 }) };
    const [dx, dy] = move.map((v) => v / 100);
    if (event.shiftKey) {
      box.width = clamp(box.width + dx, 0.01, 1 - box.left);
      box.height = clamp(box.height + dy, 0.01, 1 - box.top);
    } else {
      box.left = clamp(box.left + dx, 0, 1 - box.width);
      box.top = clamp(box.top + dy, 0, 1 - box.height);
    }
    review.draft = box;
    fillForm(box, [Number($("#box-start").value) * 1000, Number($("#box-end").value) * 1000], false);
    drawOverlay();
  });
  const send = async (approve) => {
    const buttons = [$("#rerender"), $("#approve")];
    buttons.forEach((b) => { b.disabled = true; });
    showSubmitError("");
    try {
      clearTimeout(drafts.timer);
      drafts.dirty = false; // the re-render takes these edits; its draft is dropped
      await api(`/api/jobs/${review.id}/review`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ edits: review.edits, renders: review.data.renders, approve, reviewer: reviewerName() }) });
      location.hash = `#/jobs/${review.id}`;
    } catch (e) {
      showSubmitError(`${approve ? "Approval" : "Re-render"} refused: ${e.message}`);
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  $("#rerender").addEventListener("click", () => send(false));
  try { $("#reviewer-name").value = localStorage.getItem("veil-reviewer") || ""; } catch { /* private mode */ }
  $("#undo").addEventListener("click", undoEdit);
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement && document.activeElement.tagName);
    if (!$("#review").hidden && !typing && (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undoEdit(); }
  });
  window.addEventListener("beforeunload", (event) => { if (drafts.dirty) event.preventDefault(); });
  $("#approve").addEventListener("click", () => {
    // Publishing with findings is the reviewer's word against the audit's: asked once more.
    const audit = review.job && review.job.audit;
    const n = audit ? audit.findings.length : 0;
    if (n && !window.confirm(`The audit found ${n} face${n === 1 ? "" : "s"} left visible. Publish anyway if the re-render's audit still finds ${n === 1 ? "it" : "them"}? The report will say a reviewer accepted ${n === 1 ? "it" : "them"}.`)) return;
    send(true);
  });
}

window.addEventListener("DOMContentLoaded", () => {
  // veil serve prints the page's address with its key in the fragment (#key=...), which
  // no server sees: kept for this tab, then taken out of the address bar and history.
  const given = new URLSearchParams(location.hash.slice(1)).get("key");
  if (given) {
    apiKey = given;
    sessionStorage.setItem("veil-key", apiKey);
    history.replaceState(null, "", location.pathname + location.search);
  }
  setupUploads();
  setupReview();
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
