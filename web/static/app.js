// The page's core: live status, filter buttons, and the window.depthcam script API that
// the other modules (depth tools, 3D view, players) extend.
import {readStamp} from "./stamp.js";

const cfg = JSON.parse(document.getElementById("page-config").textContent);
const $ = (id) => document.getElementById(id);
export const api = window.depthcam = window.depthcam || {};
api.config = cfg;
// `path` with the page's own query (its token) plus `extra` parameters.
api.url = (path, extra = {}) => {
  const q = new URLSearchParams(cfg.query ? cfg.query.slice(1) : "");
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
};

// ---- which element shows color, and which feeds download it ----------------------------
// The one place that starts and stops the page's color and depth images: it knows the view
// (2D images or the 3D cloud) and the player (MJPEG <img> or the WebRTC <video>). What is
// hidden downloads nothing: the 3D view closes the 2D images (it colours its points from the
// WebRTC video while that plays, else from its own /color stream), a playing WebRTC video
// closes the MJPEG <img>. Modules ask with colorElement() and hear changes with onColorChange().
const feed = {view: cfg.view === "3d" ? "3d" : "2d", player: "mjpeg", playing: false,
              video: null};
const feedListeners = [];

// The element showing the color stream now: the <img>, the WebRTC <video> while it plays,
// or null while the 3D view is open.
api.colorElement = () => {
  if (feed.view !== "2d") return null;
  return feed.player === "webrtc" && feed.playing && feed.video ? feed.video : $("color");
};
// The WebRTC <video> while it plays, in either view (the 3D view colours from it), else null.
api.colorVideo = () => (feed.player === "webrtc" && feed.playing ? feed.video : null);
// "2d" or "3d".
api.view = () => feed.view;

function applyFeed() {
  const shown = api.colorElement();
  const img = $("color"), depth = $("depth");
  if (shown === img) {
    if (!img.getAttribute("src")) img.src = api.url("color");
  } else {
    img.removeAttribute("src");  // closes the multipart stream: no bytes spent twice
  }
  img.style.display = feed.video && shown === feed.video ? "none" : "";
  if (feed.video) feed.video.style.display = shown === feed.video ? "" : "none";
  if (feed.view === "2d") {
    if (!depth.getAttribute("src")) depth.src = api.url("depth");
  } else {
    depth.removeAttribute("src");
  }
  document.querySelector(".views").style.display = feed.view === "2d" ? "" : "none";
  for (const fn of feedListeners) fn({...feed, element: shown});
}

// Calls fn({view, player, playing, element}) after every change of what shows color.
api.onColorChange = (fn) => { feedListeners.push(fn); };
// Change the view ("2d", "3d"), the player ("mjpeg", "webrtc"), whether WebRTC video plays,
// or the <video> the WebRTC player shows (for the player module).
api.setColorFeed = (changes) => {
  const before = JSON.stringify([feed.view, feed.player, feed.playing, !!feed.video]);
  Object.assign(feed, changes);
  if ("view" in changes) {
    const url = new URL(location.href);
    url.searchParams.set("view", feed.view);
    history.replaceState(null, "", url);
  }
  if (before !== JSON.stringify([feed.view, feed.player, feed.playing, !!feed.video])) {
    applyFeed();
  }
};
// Color comes from the element showing it now: "color" follows the player; other ids are
// elements of the page.
const stampTarget = (id) => (id === "color" ? api.colorElement() : $(id));
// Capture time of the frame an element ("color", "depth", or any element id) shows now.
api.stampOf = (id) => {
  const el = stampTarget(id);
  return el ? readStamp(el) : null;
};
// Seconds between the capture of the frame shown now and this moment (null: no stamp).
api.frameAge = (id = "color") => {
  const t = api.stampOf(id);
  return t === null ? null : Date.now() / 1000 - t;
};
applyFeed();

function fmt(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(1); }

async function refresh() {
  try {
    const r = await fetch(api.url("status"), {cache: "no-store"});
    if (!r.ok) return;
    const s = await r.json();
    api.status = s;
    $("source").textContent = (s.source && s.source.kind ? s.source.kind : "?") +
      (s.source_ok ? "" : " (no signal)");
    $("fps-in").textContent = fmt(s.fps_captured);
    for (const n of ["color", "depth"]) {
      // a rate or latency not measured yet (or no longer) is shown as unknown, not as 0
      const p50 = s.streams[n].latency_ms.p50;
      $("fps-" + n).textContent = fmt(s.streams[n].fps_sent);
      $("lat-" + n).textContent = fmt(p50);
      $("lat-" + n + "-box").hidden = p50 === null || p50 === undefined;
    }
    $("viewers").textContent = s.viewers;
    showImu(s.imu);
    if (Array.isArray(s.filters)) showActive(s.filters);  // also changed by keys, scripts
  } catch (e) { /* the next tick retries */ }
}
setInterval(refresh, 1000);
refresh();

// The IMU readout: tilt from gravity (the angle between the accelerometer's 'up' and the
// camera's -y axis, computed by the server), hidden when the source has no IMU.
let imu = null;
function showImu(s) {
  const got = s && s.latest && s.latest.accel ? s.latest : null;
  imu = got ? {tilt_deg: got.tilt_deg, accel: got.accel, gyro: got.gyro || null} : null;
  $("imu-box").hidden = imu === null;
  if (imu) $("imu-tilt").textContent = fmt(imu.tilt_deg);
}
// The newest {tilt_deg, accel: [x, y, z] m/s², gyro: [x, y, z] rad/s}, or null.
api.imu = () => imu;

let active = [];
async function loadFilters() {
  const r = await fetch(api.url("filters"), {cache: "no-store"});
  if (!r.ok) return;
  const f = await r.json();
  active = f.active;
  const box = $("filters");
  box.textContent = "filters: ";
  for (const spec of f.available) {
    const b = document.createElement("button");
    b.textContent = spec.name + (spec.slow ? " (slow)" : "");
    b.title = spec.description;
    b.dataset.name = spec.name;
    b.className = active.some((n) => n.split("=")[0] === spec.name) ? "on" : "";
    b.onclick = () => toggle(spec.name);
    box.appendChild(b);
  }
}

async function toggle(name) {
  const on = active.filter((n) => n.split("=")[0] === name);
  const next = on.length ? active.filter((n) => !on.includes(n)) : [...active, name];
  const r = await fetch(api.url("filters"), {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({filters: next})});
  if (r.ok) showActive((await r.json()).active);
}

// Mark the buttons of the active filters ("blur=15" lights "blur").
function showActive(names) {
  active = names;
  const base = names.map((n) => n.split("=")[0]);
  for (const b of document.querySelectorAll("#filters button")) {
    b.className = base.includes(b.dataset.name) ? "on" : "";
  }
}
loadFilters();
api.ready = true;
