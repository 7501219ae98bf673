// The page's core: live status, filter buttons, and the window.depthcam script API that
// the other modules (depth tools, 3D view, players) extend.
import {readStamp} from "./stamp.js";

const cfg = JSON.parse(document.getElementById("page-config").textContent);
const $ = (id) => document.getElementById(id);
const api = window.depthcam = window.depthcam || {};
api.config = cfg;
// Capture time of the frame an element ("color", "depth", or any element id) shows now.
api.stampOf = (id) => readStamp($(id));
// Seconds between the capture of the frame shown now and this moment (null: no stamp).
api.frameAge = (id = "color") => {
  const t = readStamp($(id));
  return t === null ? null : Date.now() / 1000 - t;
};
api.url = (path) => path + cfg.query;

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
    if (Array.isArray(s.filters)) showActive(s.filters);  // also changed by keys, scripts
  } catch (e) { /* the next tick retries */ }
}
setInterval(refresh, 1000);
refresh();

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
