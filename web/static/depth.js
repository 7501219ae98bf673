// Depth tools on the page: metres under the cursor, a two-point ruler, and the 3D view's
// button. Depth comes from the metric stream (/metric, hue-coded JPEG) decoded in the
// browser (hue.js); the camera model comes once from /camera.json. Extends window.depthcam with
// depthAt(x, y), measure(p1, p2), metricReady() and cloudStats().
//
// /metric is a large stream (q90 4:4:4) that only measuring needs, so it is open only while
// something needs it: the pointer over an image, a ruler set, the 3D view, or a script
// calling depthAt/pointAt/measure (until it has been idle for api.metricIdleMs).
import {api} from "./app.js";
import {LatestFrame} from "./mjpeg.js";
import {decodePixel, encodingOf} from "./hue.js";

const url = api.url;
const $ = (id) => document.getElementById(id);

let camera = null;  // /camera.json
let metric = null;  // LatestFrame of /metric while something needs it
const needs = new Set();  // why /metric is open: "hover", "ruler", "3d", "script"
const needTimers = {};
api.metricIdleMs = 10000;  // a script's calls keep /metric open this long after the last
const HOVER_GRACE_MS = 2000;  // the pointer may cross from one image to the other

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

// Open /metric while `why` needs it (on) and close it when nothing does any more. With
// `forMs`, the need ends by itself that long after the last call.
function need(why, on, forMs = 0) {
  clearTimeout(needTimers[why]);
  if (on) {
    needs.add(why);
    if (forMs) needTimers[why] = setTimeout(() => need(why, false), forMs);
  } else {
    needs.delete(why);
  }
  if (!camera) return;
  if (needs.size && !metric) {
    metric = new LatestFrame(url(camera.metric.route.replace(/^\//, "")), onMetricFrame);
  } else if (!needs.size && metric) {
    metric.stop();
    metric = null;
  }
  api.metric = metric;
}
// Which needs hold /metric open now (for tests and diagnostics).
api.metricNeeds = () => [...needs].sort();

// RGB of one pixel of the newest metric frame, read back alone (not the whole frame) and
// remembered for the rest of that frame.
let pixelCanvas = null;
function metricPixel(mx, my) {
  const f = metric && metric.frame;
  if (!f) return null;
  if (!f.pixels) f.pixels = new Map();
  const key = my * f.width + mx;
  let px = f.pixels.get(key);
  if (!px) {
    pixelCanvas = pixelCanvas || document.createElement("canvas");
    pixelCanvas.width = pixelCanvas.height = 1;
    const ctx = pixelCanvas.getContext("2d", {willReadFrequently: true});
    ctx.drawImage(f.bitmap, mx, my, 1, 1, 0, 0, 1, 1);
    px = ctx.getImageData(0, 0, 1, 1).data;
    f.pixels.set(key, px);
  }
  return px;
}

// Metres at color pixel (x, y) of the newest metric frame; null where invalid or no frame.
function depthAt(x, y) {
  const f = metric && metric.frame;
  if (!f || !camera) return null;
  const cw = camera.intrinsics.width, ch = camera.intrinsics.height;
  const mx = Math.round(x * f.width / cw), my = Math.round(y * f.height / ch);
  if (!(mx >= 0 && my >= 0 && mx < f.width && my < f.height)) return null;
  const d = metricPixel(mx, my);
  return decodePixel(d[0], d[1], d[2], encodingOf(f, camera));
}

function pointAt(x, y) {
  const z = depthAt(x, y);
  if (z === null) return null;
  const k = camera.intrinsics;
  return [(x - k.ppx) / k.fx * z, (y - k.ppy) / k.fy * z, z];
}

function measure(p1, p2) {
  const a = pointAt(p1[0], p1[1]), b = pointAt(p2[0], p2[1]);
  if (!a || !b) return null;
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

// A script's call: /metric opens on the first and stays open while calls keep coming.
const scriptCall = (fn) => (...args) => {
  need("script", true, api.metricIdleMs);
  return fn(...args);
};
// Metres at pixel (x, y) of the color image in the newest frame; null where there is no
// depth or no metric frame yet (the first call opens /metric: see metricReady()).
api.depthAt = scriptCall(depthAt);
// The 3D point (metres, camera frame: x right, y down, z forward) at color pixel (x, y).
api.pointAt = scriptCall(pointAt);
// Metres between the 3D points at two color pixels; null if either has no depth.
api.measure = scriptCall(measure);
// Resolves to true once a metric frame is there for depthAt/pointAt/measure (opening
// /metric as their calls do), false after timeoutMs without one.
api.metricReady = (timeoutMs = 10000) => new Promise((resolve) => {
  const end = performance.now() + timeoutMs;
  const check = () => {
    if (camera) need("script", true, api.metricIdleMs);
    if (metric && metric.frame) resolve(true);
    else if (performance.now() > end) resolve(false);
    else setTimeout(check, 50);
  };
  check();
});

api.cloudStats = () => (api.cloud ? api.cloud.stats() : {frames: 0, points: 0});

// ---- hover read-out and ruler ------------------------------------------------------
// The tools hang on the two figures, not on one element: the color figure shows the MJPEG
// <img> or the WebRTC <video> (api.colorElement()), and positions come from whichever shows.
const ruler = [];  // up to two color pixels
const overlays = [];  // {canvas, figure, shown(): the element showing the picture now}
let hover = null;  // {shown, x, y} while the pointer is over an image

// Color pixel under a pointer event over `el`, or null outside its picture.
function imagePixel(el, ev) {
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height) return null;
  const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
  if (fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return null;
  const k = camera.intrinsics;
  return [fx * k.width, fy * k.height];
}

function fmtM(m) { return m === null ? "no depth" : `${m.toFixed(3)} m`; }

function showHover() {
  if (!hover) return;
  const [x, y] = hover;
  const m = metric && metric.frame ? fmtM(depthAt(x, y)) : "reading depth…";
  $("depth-hover").textContent = `(${Math.round(x)}, ${Math.round(y)}): ${m}`;
}

function onMetricFrame() {
  if (ruler.length === 2) drawRuler();
  if (hover) showHover();
}

function drawRuler() {
  need("ruler", ruler.length === 2);
  const dist = ruler.length === 2 ? measure(ruler[0], ruler[1]) : null;
  const waiting = ruler.length === 2 && !(metric && metric.frame);
  const text = ruler.length === 2 ? `ruler: ${waiting ? "reading depth…" : dist === null ?
    "no depth at an end" : dist.toFixed(3) + " m"}` :
    ruler.length === 1 ? "ruler: click the second point" : "ruler: click two points";
  $("depth-ruler").textContent = text;
  for (const {canvas, shown} of overlays) {
    const el = shown();
    canvas.hidden = !el;
    if (!el) continue;
    const w = el.clientWidth, h = el.clientHeight;
    canvas.style.left = el.offsetLeft + "px";
    canvas.style.top = el.offsetTop + "px";
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!camera || !ruler.length || !w || !h) continue;
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

// Hover read-out, ruler clicks and the ruler's overlay on a figure whose picture is
// shown(): the element's own size and place, whichever element it is now.
function attachTools(figure, shown) {
  figure.style.position = "relative";
  const canvas = document.createElement("canvas");
  canvas.className = "depth-overlay";
  canvas.style.cssText = "position:absolute;left:0;top:0;pointer-events:none";
  figure.appendChild(canvas);
  overlays.push({canvas, figure, shown});
  figure.style.cursor = "crosshair";
  figure.addEventListener("mousemove", (ev) => {
    const el = shown();
    const p = camera && el ? imagePixel(el, ev) : null;
    if (!p) return;
    need("hover", true);
    hover = p;
    showHover();
  });
  figure.addEventListener("mouseleave", () => {
    hover = null;
    need("hover", true, HOVER_GRACE_MS);
    $("depth-hover").textContent = "hover an image";
  });
  figure.addEventListener("click", (ev) => {
    const el = shown();
    const p = camera && el ? imagePixel(el, ev) : null;
    if (!p) return;
    if (ruler.length === 2) ruler.length = 0;
    ruler.push(p);
    drawRuler();
  });
}

// Place the ruler's points from a script (color pixels), as two clicks would. Returns the
// distance when a metric frame is there already, else null (the label follows live).
api.setRuler = (p1, p2) => {
  ruler.length = 0;
  if (p1) ruler.push(p1);
  if (p2) ruler.push(p2);
  drawRuler();
  return ruler.length === 2 ? measure(p1, p2) : null;
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

async function open3d() {
  const {Cloud} = await import("./cloud.js");
  need("3d", true);
  api.setColorFeed({view: "3d"});  // the images and the player pause while hidden
  const views = document.querySelector(".views");
  let box = $("cloud-box");
  if (!box) {
    box = document.createElement("div");
    box.id = "cloud-box";
    box.style.cssText = "padding:0 8px 8px;height:calc(100vh - 120px);min-height:320px";
    views.parentElement.insertBefore(box, views);
  }
  box.hidden = false;
  $("decimate-box").hidden = false;
  api.cloud = new Cloud(box, {camera, metric, encoding: (frame) => encodingOf(frame, camera),
                              colorUrl: url("color"),
                              step: parseInt($("decimate").value, 10)});
  $("decimate").onchange = () => api.cloud && api.cloud.setStep(parseInt($("decimate").value, 10));
  $("view-3d").textContent = "2D view";
}

function close3d() {
  if (api.cloud) api.cloud.close();
  api.cloud = null;
  $("cloud-box").hidden = true;
  $("decimate-box").hidden = true;
  api.setColorFeed({view: "2d"});
  need("3d", false);
  $("view-3d").textContent = "3D view";
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
    api.setColorFeed({view: "2d"});  // ?view=3d without depth: the images, not a blank page
    api.depthReady = false;
    return;
  }
  api.camera = camera;
  need("script", needs.has("script"), api.metricIdleMs);  // calls made before camera.json
  attachTools($("color").closest("figure"), () => api.colorElement());
  attachTools($("depth").closest("figure"), () => (api.view() === "2d" ? $("depth") : null));
  api.onColorChange(() => drawRuler());
  window.addEventListener("resize", () => drawRuler());
  for (const el of [$("color"), $("depth")]) el.addEventListener("load", () => drawRuler());
  drawRuler();
  if (gl2) {
    button.onclick = () => (api.cloud ? close3d() : open3d());
    if (api.view() === "3d") await open3d();
  } else {
    api.setColorFeed({view: "2d"});  // ?view=3d in a browser without WebGL2
  }
  api.depthReady = true;
}

main();
