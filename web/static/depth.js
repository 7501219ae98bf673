// Depth tools on the page: metres under the cursor, a two-point ruler, and the 3D view's
// button. Depth comes from /depth-video (10-bit H.264 decoded with WebCodecs,
// depthvideo.js) where the browser decodes it, else from the metric stream (/metric,
// hue-coded JPEG decoded by hue.js); `?depth=metric` picks the latter. The 3D view reads
// the same source. The camera model comes once from /camera.json. Extends window.depthcam with
// depthAt(x, y), pointAt(x, y), measure(p1, p2), metricReady(), depthSource(),
// depthStats() and cloudStats(); all readings take the nearest pixel with depth when a
// pixel has none (lookup()).
//
// Depth streams are open only while something needs them: the pointer over an image, a
// ruler set, the 3D view, or a script calling depthAt/pointAt/measure (until it has been
// idle for api.metricIdleMs).
import {api} from "./app.js";
import {LatestFrame} from "./mjpeg.js";
import {decodePixel, encodingOf} from "./hue.js";
import {DepthVideo, videoSupported} from "./depthvideo.js";

const url = api.url;
const $ = (id) => document.getElementById(id);

let camera = null;  // /camera.json
let metric = null;  // LatestFrame of /metric while something needs it
let video = null;  // DepthVideo of /depth-video while something needs it
let mode = "metric";  // where the tools read depth: "video" or "metric"
let metricOpened = 0;  // when /metric opened (performance.now()), for depthStats()
const needs = new Set();  // why depth is open: "hover", "ruler", "3d", "script"
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
  const wantVideo = mode === "video" && needs.size > 0;
  const wantMetric = mode === "metric" && needs.size > 0;
  if (wantMetric && !metric) {
    metric = new LatestFrame(url(camera.metric.route.replace(/^\//, "")), onMetricFrame);
    metricOpened = performance.now();
  } else if (!wantMetric && metric) {
    metric.stop();
    metric = null;
  }
  if (wantVideo && !video) {
    video = new DepthVideo(url(camera.depth_video.route.replace(/^\//, "")), camera,
                           onMetricFrame);
  } else if (!wantVideo && video) {
    video.stop();
    video = null;
  }
  api.metric = metric;
  api.video = video;
}
// Which needs hold a depth stream open now (for tests and diagnostics).
api.metricNeeds = () => [...needs].sort();
// Where the depth tools read depth: "video" (/depth-video) or "metric" (/metric).
api.depthSource = () => mode;
// {bytes_per_s, fps, decode_ms} of the source in use over the last seconds (zeros while
// it is closed; decode_ms is null for /metric, whose JPEGs the browser decodes).
api.depthStats = () => {
  if (mode === "video") return video ? video.stats() : {bytes_per_s: 0, fps: 0, decode_ms: null};
  const s = metric ? (performance.now() - metricOpened) / 1000 : 0;
  return {bytes_per_s: s > 0 ? metric.bytes / s : 0, fps: s > 0 ? metric.frames / s : 0,
          decode_ms: null};
};

// ---- depth lookup ------------------------------------------------------------------
// Every reading (depthAt, pointAt, measure, the hover read-out, the ruler) goes through
// lookup(): depth at a color pixel, or, where the camera saw nothing there (alignment
// leaves single-pixel holes and whole hole columns), at the nearest pixel with depth
// within a small radius. Sources of depth only say what is at which pixel of their frame.
api.snapRadius = 3;  // pixels around a hole searched for depth; {radius: N} overrides
const MAX_RADIUS = 50;

// Metres of a w x h block of the newest metric frame (row by row, null where none), read
// back as one small image (never the whole frame) and remembered for the rest of the frame.
let blockCanvas = null;
function metricBlock(f, x0, y0, w, h) {
  if (!f.pixels) f.pixels = new Map();
  const out = new Array(w * h);
  let missing = false;
  for (let j = 0; j < h && !missing; j++) {
    for (let i = 0; i < w; i++) {
      const key = (y0 + j) * f.width + x0 + i;
      if (!f.pixels.has(key)) { missing = true; break; }
      out[j * w + i] = f.pixels.get(key);
    }
  }
  if (!missing) return out;
  blockCanvas = blockCanvas || document.createElement("canvas");
  blockCanvas.width = w;
  blockCanvas.height = h;
  const ctx = blockCanvas.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(f.bitmap, x0, y0, w, h, 0, 0, w, h);
  const d = ctx.getImageData(0, 0, w, h).data;
  const enc = f.encoding || (f.encoding = encodingOf(f, camera));
  for (let i = 0; i < w * h; i++) {
    out[i] = decodePixel(d[4 * i], d[4 * i + 1], d[4 * i + 2], enc);
    f.pixels.set((y0 + Math.floor(i / w)) * f.width + x0 + (i % w), out[i]);
  }
  return out;
}

// The newest depth frame of the source in use: {width, height, read(x0, y0, w, h)}; null
// while there is none.
function depthFrame() {
  if (mode === "video") return video && video.frame;
  const f = metric && metric.frame;
  if (!f) return null;
  return {width: f.width, height: f.height, read: (x0, y0, w, h) => metricBlock(f, x0, y0, w, h)};
}

// The whole newest frame of the source in use as metres, {width, height, metres} (row by
// row, 0 where there is no depth), or null: a check of every pixel, for tests.
api.depthImage = () => {
  const src = depthFrame();
  if (!src) return null;
  const got = src.read(0, 0, src.width, src.height);
  return {width: src.width, height: src.height,
          metres: Float32Array.from(got, (v) => (v === null ? 0 : v))};
};

// Offsets [dx, dy] within `r` pixels, nearest first; at equal distance up before down,
// left before right (depthclient/client.py's snap_offsets orders them the same way).
const offsetsByRadius = new Map();
function snapOffsets(r) {
  let list = offsetsByRadius.get(r);
  if (!list) {
    list = [];
    for (let dy = -r; dy <= r; dy++) {
      for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r) list.push([dx, dy]);
    }
    list.sort((a, b) => (a[0] * a[0] + a[1] * a[1]) - (b[0] * b[0] + b[1] * b[1]) ||
      a[1] - b[1] || a[0] - b[0]);
    offsetsByRadius.set(r, list);
  }
  return list;
}

function radiusOf(opts) {
  const r = opts && opts.radius !== undefined ? Number(opts.radius) : api.snapRadius;
  return Number.isFinite(r) ? Math.min(Math.max(Math.floor(r), 0), MAX_RADIUS) : 0;
}

// Depth for color pixel (x, y) of the newest frame: {x, y, z, snapped} with (x, y) the
// color pixel whose depth z (metres) was taken (moved by whole pixels when snapped), or
// null: no frame, outside the image, or no depth within `radius` pixels.
function lookup(x, y, radius) {
  const src = depthFrame();
  if (!src || !camera) return null;
  const sx = src.width / camera.intrinsics.width, sy = src.height / camera.intrinsics.height;
  const mx = Math.floor(x * sx), my = Math.floor(y * sy);
  if (!(mx >= 0 && my >= 0 && mx < src.width && my < src.height)) return null;
  const z = src.read(mx, my, 1, 1)[0];
  if (z !== null) return {x, y, z, snapped: false};
  if (!radius) return null;
  const x0 = Math.max(mx - radius, 0), y0 = Math.max(my - radius, 0);
  const w = Math.min(mx + radius + 1, src.width) - x0;
  const h = Math.min(my + radius + 1, src.height) - y0;
  const block = src.read(x0, y0, w, h);
  for (const [dx, dy] of snapOffsets(radius)) {
    const i = mx + dx - x0, j = my + dy - y0;
    if (i < 0 || j < 0 || i >= w || j >= h) continue;
    const v = block[j * w + i];
    if (v !== null) return {x: x + dx / sx, y: y + dy / sy, z: v, snapped: true};
  }
  return null;
}

// The 3D point of a lookup's result, with the color pixel it was taken at as .pixel.
function pointOf(hit) {
  const k = camera.intrinsics;
  const p = [(hit.x - k.ppx) / k.fx * hit.z, (hit.y - k.ppy) / k.fy * hit.z, hit.z];
  p.pixel = [hit.x, hit.y];
  return p;
}

function depthAt(x, y, opts) {
  const hit = lookup(x, y, radiusOf(opts));
  return hit ? hit.z : null;
}

function pointAt(x, y, opts) {
  const hit = lookup(x, y, radiusOf(opts));
  return hit ? pointOf(hit) : null;
}

function distance(a, b) {
  return a && b ? Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) : null;
}

function measure(p1, p2, opts) {
  return distance(pointAt(p1[0], p1[1], opts), pointAt(p2[0], p2[1], opts));
}

// A script's call: /metric opens on the first and stays open while calls keep coming.
const scriptCall = (fn) => (...args) => {
  need("script", true, api.metricIdleMs);
  return fn(...args);
};
// Metres at pixel (x, y) of the color image in the newest frame, or at the nearest pixel
// with depth within {radius} (default api.snapRadius) where it has none; null where there
// is none or no metric frame yet (the first call opens /metric: see metricReady()).
api.depthAt = scriptCall(depthAt);
// The 3D point (metres, camera frame: x right, y down, z forward) at color pixel (x, y);
// its .pixel is the color pixel whose depth was used.
api.pointAt = scriptCall(pointAt);
// Metres between the 3D points at two color pixels; null if either has no depth.
api.measure = scriptCall(measure);
// Resolves to true once the source in use has a decoded frame for depthAt/pointAt/measure
// (opening it as their calls do), false after timeoutMs without one.
api.metricReady = (timeoutMs = 10000) => new Promise((resolve) => {
  const end = performance.now() + timeoutMs;
  const check = () => {
    if (camera) need("script", true, api.metricIdleMs);
    if (depthFrame()) resolve(true);
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
let rulerEnds = [];  // the lookup of each ruler point in the newest frame (null: no depth)
let rulerDist = null;
const overlays = [];  // {canvas, figure, shown(): the element showing the picture now}
let hover = null;  // the color pixel [x, y] under the pointer while it is over an image
let hoverHit = null;  // its lookup in the newest frame: where the read-out measured

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
const fmtPx = (x, y) => `(${Math.floor(x)}, ${Math.floor(y)})`;

// The read-out names the pixel it measured when that is not the one under the pointer.
function showHover() {
  if (!hover) return;
  const [x, y] = hover;
  const ready = !!depthFrame();
  hoverHit = ready ? lookup(x, y, radiusOf()) : null;
  const where = hoverHit && hoverHit.snapped ?
    `${fmtPx(x, y)} → ${fmtPx(hoverHit.x, hoverHit.y)}` : fmtPx(x, y);
  $("depth-hover").textContent = `${where}: ${ready ? fmtM(hoverHit && hoverHit.z) :
    "reading depth…"}`;
  drawOverlays();
}

function onMetricFrame() {
  if (ruler.length === 2) drawRuler();
  if (hover) showHover();
}

// Measure the ruler in the newest frame, label it and redraw the overlays.
function drawRuler() {
  need("ruler", ruler.length === 2);
  rulerEnds = ruler.map(([x, y]) => lookup(x, y, radiusOf()));
  rulerDist = ruler.length === 2 && rulerEnds[0] && rulerEnds[1] ?
    distance(pointOf(rulerEnds[0]), pointOf(rulerEnds[1])) : null;
  const waiting = ruler.length === 2 && !depthFrame();
  const text = ruler.length === 2 ? `ruler: ${waiting ? "reading depth…" : rulerDist === null ?
    "no depth at an end" : rulerDist.toFixed(3) + " m"}` :
    ruler.length === 1 ? "ruler: click the second point" : "ruler: click two points";
  $("depth-ruler").textContent = text;
  drawOverlays();
}

// The ruler (its ends where they measured) and the hover marker (on the pixel the read-out
// measured) over both pictures.
function drawOverlays() {
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
    if (!camera || !w || !h) continue;
    const sx = w / camera.intrinsics.width, sy = h / camera.intrinsics.height;
    if (hover && hoverHit) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ff0";
      ctx.beginPath();
      ctx.arc(hoverHit.x * sx, hoverHit.y * sy, 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (!ruler.length) continue;
    const pts = ruler.map(([x, y], i) => {
      const end = rulerEnds[i];
      return end ? [end.x * sx, end.y * sy] : [x * sx, y * sy];
    });
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    if (pts[1]) ctx.lineTo(pts[1][0], pts[1][1]);
    ctx.stroke();
    for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill(); }
    if (pts[1] && rulerDist !== null) {
      const mx = (pts[0][0] + pts[1][0]) / 2, my = (pts[0][1] + pts[1][1]) / 2;
      ctx.font = "bold 14px system-ui, sans-serif";
      const label = rulerDist.toFixed(3) + " m";
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
    hover = hoverHit = null;
    need("hover", true, HOVER_GRACE_MS);
    $("depth-hover").textContent = "hover an image";
    drawOverlays();
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
  api.cloud = new Cloud(box, {camera, metric, video, encoding: (frame) => encodingOf(frame, camera),
                              colorUrl: url("color"), colorVideo: () => api.colorVideo(),
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
    const cam = await loadCamera();
    // The source is settled before anything can open one (need() waits for `camera`).
    const asked = new URLSearchParams(location.search).get("depth");
    mode = asked !== "metric" && await videoSupported(cam) ? "video" : "metric";
    camera = cam;
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
