// Depth tools on the page: metres under the cursor, a two-point ruler, and the 3D view's
// button. Depth comes from the metric stream (/metric, hue-coded JPEG) decoded here in the
// browser; the camera model comes once from /camera.json. Extends window.depthcam with
// depthAt(x, y), measure(p1, p2) and cloudStats().
import {LatestFrame} from "./mjpeg.js";

const api = window.depthcam = window.depthcam || {};
const cfg = JSON.parse(document.getElementById("page-config").textContent);
const url = (path) => path + cfg.query;
const $ = (id) => document.getElementById(id);

// The hue ramp of encoder/hue.py (docs/DEPTH_HUE.md): 1530 steps, 24 guard steps each side
// of the wrap point, dark (< 96) or grey (saturation < 0.5) pixels are invalid.
export const HUE = {steps: 1530, guard: 24, levels: 1482, minValue: 96, minSaturation: 0.5};
export const MAPPINGS = {uniform: 0, inverse: 1, log: 2};

// Hue index 0..1530 of an RGB pixel, or -1 where the pixel carries no depth.
export function hueIndex(r, g, b) {
  const v = Math.max(r, g, b), lo = Math.min(r, g, b), d = v - lo;
  if (v < HUE.minValue || d < HUE.minSaturation * v) return -1;
  let h;
  if (v === r) h = 60 * (g - b) / d;
  else if (v === g) h = 120 + 60 * (b - r) / d;
  else h = 240 + 60 * (r - g) / d;
  if (h < 0) h += 360;
  return Math.floor(h * HUE.steps / 360 + 0.5);
}

// Metres of hue index i under an encoding {mapping, min, max}.
export function indexMetres(i, enc) {
  let level = i >= HUE.steps ? -HUE.guard : i - HUE.guard;
  level = Math.min(Math.max(level, 0), HUE.levels - 1);
  const f = level / (HUE.levels - 1), lo = enc.min, hi = enc.max;
  if (enc.mapping === "log") return lo * Math.exp(f * Math.log(hi / lo));
  if (enc.mapping === "inverse") return 1 / (1 / hi + f * (1 / lo - 1 / hi));
  return lo + f * (hi - lo);
}

// Metres of an RGB pixel of the metric stream, or null where invalid.
export function decodePixel(r, g, b, enc) {
  const i = hueIndex(r, g, b);
  return i < 0 ? null : indexMetres(i, enc);
}

let camera = null;  // /camera.json
let metric = null;  // LatestFrame of /metric
let canvas2d = null;

// /camera.json, retried while the server answers 503 (the source is starting).
async function loadCamera() {
  for (;;) {
    const r = await fetch(url("camera.json"), {cache: "no-store"});
    if (r.ok) return r.json();
    const detail = await r.json().catch(() => ({}));
    if (r.status !== 503) throw new Error(detail.detail || `camera.json: ${r.status}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// RGBA pixels of the newest metric frame, read back once per frame and only when asked.
function metricPixels() {
  const f = metric && metric.frame;
  if (!f) return null;
  if (!f.pixels) {
    const w = f.bitmap.width, h = f.bitmap.height;
    canvas2d = canvas2d || document.createElement("canvas");
    if (canvas2d.width !== w || canvas2d.height !== h) { canvas2d.width = w; canvas2d.height = h; }
    const ctx = canvas2d.getContext("2d", {willReadFrequently: true});
    ctx.drawImage(f.bitmap, 0, 0);
    f.pixels = {data: ctx.getImageData(0, 0, w, h).data, w, h};
  }
  return f.pixels;
}

function encodingOf(frame) {
  const h = frame.headers;
  const modes = {"hue": "uniform", "hue-inverse": "inverse", "hue-log": "log"};
  return {mapping: modes[h["x-depth-mode"]] || camera.metric.mapping,
          min: parseFloat(h["x-depth-min"]) || camera.metric.min,
          max: parseFloat(h["x-depth-max"]) || camera.metric.max};
}

// Metres at pixel (x, y) of the color image in the newest frame; null where invalid.
api.depthAt = (x, y) => {
  const px = metricPixels();
  if (!px || !camera) return null;
  const cw = camera.intrinsics.width, ch = camera.intrinsics.height;
  const mx = Math.round(x * px.w / cw), my = Math.round(y * px.h / ch);
  if (!(mx >= 0 && my >= 0 && mx < px.w && my < px.h)) return null;
  const o = (my * px.w + mx) * 4, d = px.data;
  return decodePixel(d[o], d[o + 1], d[o + 2], encodingOf(metric.frame));
};

// The 3D point (metres, camera frame: x right, y down, z forward) at color pixel (x, y).
api.pointAt = (x, y) => {
  const z = api.depthAt(x, y);
  if (z === null) return null;
  const k = camera.intrinsics;
  return [(x - k.ppx) / k.fx * z, (y - k.ppy) / k.fy * z, z];
};

// Metres between the 3D points at two color pixels; null if either has no depth.
api.measure = (p1, p2) => {
  const a = api.pointAt(p1[0], p1[1]), b = api.pointAt(p2[0], p2[1]);
  if (!a || !b) return null;
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
};

api.cloudStats = () => (api.cloud ? api.cloud.stats() : {frames: 0, points: 0});

// ---- hover read-out and ruler ------------------------------------------------------
const ruler = [];  // up to two color pixels
const overlays = [];

function imagePixel(img, ev) {
  const r = img.getBoundingClientRect();
  const k = camera.intrinsics;
  return [(ev.clientX - r.left) * k.width / r.width, (ev.clientY - r.top) * k.height / r.height];
}

function fmtM(m) { return m === null ? "no depth" : `${m.toFixed(3)} m`; }

function drawRuler() {
  const dist = ruler.length === 2 ? api.measure(ruler[0], ruler[1]) : null;
  const text = ruler.length === 2 ? `ruler: ${dist === null ? "no depth at an end" :
    dist.toFixed(3) + " m"}` : ruler.length === 1 ? "ruler: click the second point" :
    "ruler: click two points";
  $("depth-ruler").textContent = text;
  for (const {canvas, img} of overlays) {
    const w = img.clientWidth, h = img.clientHeight;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!camera || !ruler.length) continue;
    const sx = w / camera.intrinsics.width, sy = h / camera.intrinsics.height;
    const pts = ruler.map(([x, y]) => [x * sx, y * sy]);
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    if (pts[1]) ctx.lineTo(pts[1][0], pts[1][1]);
    ctx.stroke();
    for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill(); }
    if (pts[1] && dist !== null) {
      const mx = (pts[0][0] + pts[1][0]) / 2, my = (pts[0][1] + pts[1][1]) / 2;
      ctx.font = "bold 14px system-ui, sans-serif";
      const label = dist.toFixed(3) + " m";
      ctx.fillStyle = "rgba(0,0,0,0.7)";
      ctx.fillRect(mx + 6, my - 18, ctx.measureText(label).width + 8, 20);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, mx + 10, my - 3);
    }
  }
}

function attachTools(img) {
  const fig = img.parentElement;
  fig.style.position = "relative";
  const canvas = document.createElement("canvas");
  canvas.className = "depth-overlay";
  canvas.style.cssText = "position:absolute;left:0;top:0;pointer-events:none";
  fig.insertBefore(canvas, img.nextSibling);
  overlays.push({canvas, img});
  img.style.cursor = "crosshair";
  img.addEventListener("mousemove", (ev) => {
    if (!camera) return;
    const [x, y] = imagePixel(img, ev);
    $("depth-hover").textContent =
      `(${Math.round(x)}, ${Math.round(y)}): ${fmtM(api.depthAt(x, y))}`;
  });
  img.addEventListener("mouseleave", () => { $("depth-hover").textContent = "hover an image"; });
  img.addEventListener("click", (ev) => {
    if (!camera) return;
    if (ruler.length === 2) ruler.length = 0;
    ruler.push(imagePixel(img, ev));
    drawRuler();
  });
}

// Place the ruler's points from a script (color pixels), as two clicks would.
api.setRuler = (p1, p2) => {
  ruler.length = 0;
  if (p1) ruler.push(p1);
  if (p2) ruler.push(p2);
  drawRuler();
  return ruler.length === 2 ? api.measure(p1, p2) : null;
};

function toolbar() {
  const bar = document.createElement("div");
  bar.id = "depth-tools";
  bar.style.cssText = "padding:0 12px 8px;display:flex;gap:16px;align-items:center;" +
    "flex-wrap:wrap;font-variant-numeric:tabular-nums";
  bar.innerHTML = '<button id="view-3d" type="button">3D view</button>' +
    '<label id="decimate-box" hidden>points: every <select id="decimate">' +
    '<option value="1">1</option><option value="2" selected>2nd</option>' +
    '<option value="4">4th</option><option value="8">8th</option></select> pixel</label>' +
    '<span id="depth-hover">hover an image</span><span id="depth-ruler">ruler: click two ' +
    'points</span><button id="ruler-clear" type="button">clear ruler</button>' +
    '<span id="depth-error" style="color:#e66"></span>';
  const views = document.querySelector(".views");
  views.parentElement.insertBefore(bar, views);
  $("ruler-clear").onclick = () => api.setRuler();
}

export function hasWebGL2() {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch (e) {
    return false;
  }
}

function setView(view) {
  const params = new URLSearchParams(location.search);
  params.set("view", view);
  history.replaceState(null, "", "?" + params.toString());
}

async function open3d() {
  const {Cloud} = await import("./cloud.js");
  const views = document.querySelector(".views");
  for (const img of views.querySelectorAll("img")) { img.dataset.src = img.src; img.src = ""; }
  views.style.display = "none";
  let box = $("cloud-box");
  if (!box) {
    box = document.createElement("div");
    box.id = "cloud-box";
    box.style.cssText = "padding:0 8px 8px;height:calc(100vh - 120px);min-height:320px";
    views.parentElement.insertBefore(box, views);
  }
  box.hidden = false;
  $("decimate-box").hidden = false;
  api.cloud = new Cloud(box, {camera, metric, colorUrl: url("color"),
                              step: parseInt($("decimate").value, 10)});
  $("decimate").onchange = () => api.cloud && api.cloud.setStep(parseInt($("decimate").value, 10));
  $("view-3d").textContent = "2D view";
  setView("3d");
}

function close3d() {
  if (api.cloud) api.cloud.close();
  api.cloud = null;
  $("cloud-box").hidden = true;
  $("decimate-box").hidden = true;
  const views = document.querySelector(".views");
  views.style.display = "";
  for (const img of views.querySelectorAll("img")) img.src = img.dataset.src;
  $("view-3d").textContent = "3D view";
  setView("2d");
}

async function main() {
  toolbar();
  const button = $("view-3d");
  const gl2 = hasWebGL2();
  api.webgl2 = gl2;
  if (!gl2) {
    button.disabled = true;
    button.textContent = "3D view: this browser has no WebGL2";
  }
  try {
    camera = await loadCamera();
  } catch (e) {
    $("depth-error").textContent = String(e.message || e);
    button.disabled = true;
    api.depthReady = false;
    return;
  }
  api.camera = camera;
  metric = new LatestFrame(url(camera.metric.route.replace(/^\//, "")), () => {
    if (ruler.length === 2) drawRuler();
  });
  api.metric = metric;
  for (const id of ["color", "depth"]) attachTools($(id));
  drawRuler();
  if (gl2) {
    button.onclick = () => (api.cloud ? close3d() : open3d());
    if (cfg.view === "3d") await open3d();
  }
  api.depthReady = true;
}

main();
