// The grid page (/ with several cameras): one live tile per camera, its name, the rate
// its color stream is sent at and the latency, from /status's `cameras`; a camera plugged
// in while the page is open gets its tile within two seconds (/cameras.json).
const cfg = JSON.parse(document.getElementById("page-config").textContent);
const api = window.depthcam = window.depthcam || {};
const stats = {};

function fmt(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(1); }

async function refresh() {
  try {
    const r = await fetch(`status${cfg.query}`, {cache: "no-store"});
    if (!r.ok) return;
    const cams = (await r.json()).cameras || {};
    for (const tile of document.querySelectorAll(".tile")) {
      const s = cams[tile.dataset.name];
      if (!s) continue;
      const color = s.streams.color;
      stats[tile.dataset.name] = {fps: color.fps_sent, latency_ms: color.latency_ms.p50,
                                  source_ok: s.source_ok};
      tile.querySelector(".fps").textContent = fmt(color.fps_sent);
      tile.querySelector(".lat").textContent = fmt(color.latency_ms.p50);
      tile.classList.toggle("down", !s.source_ok);
    }
  } catch (e) { /* the next tick retries */ }
}
setInterval(refresh, 1000);
refresh();

// A tile like the server's own (grid.html) for a camera that came later.
function addTile(cam) {
  const fig = document.createElement("figure");
  fig.className = "tile";
  fig.id = `tile-${cam.name}`;
  fig.dataset.name = cam.name;
  const href = `cam/${cam.name}/${cfg.query}`;
  const link = document.createElement("a");
  link.href = href;
  const img = document.createElement("img");
  img.alt = `${cam.name} color`;
  img.src = `cam/${cam.name}/color${cfg.query}`;
  link.appendChild(img);
  const cap = document.createElement("figcaption");
  const name = document.createElement("a");
  name.className = "name";
  name.href = href;
  name.textContent = cam.name;
  cap.append(name, " ");
  for (const [cls, before, after] of [["fps", "", " fps"], ["lat", "latency p50 ", " ms"]]) {
    const span = document.createElement("span");
    const b = document.createElement("b");
    b.className = cls;
    b.textContent = "–";
    span.append(before, b, after);
    cap.append(span);
  }
  fig.append(link, cap);
  document.querySelector(".grid").appendChild(fig);
}

async function newcomers() {
  try {
    const r = await fetch(`cameras.json${cfg.query}`, {cache: "no-store"});
    if (!r.ok) return;
    for (const cam of await r.json()) {
      if (!document.getElementById(`tile-${cam.name}`)) addTile(cam);
    }
  } catch (e) { /* the next tick retries */ }
}
setInterval(newcomers, 2000);

// Every tile: {name, href, width, height (of the picture it shows), fps, latency_ms, source_ok}.
api.tiles = () => Array.from(document.querySelectorAll(".tile"), (tile) => {
  const img = tile.querySelector("img");
  return {name: tile.dataset.name, href: tile.querySelector("a").getAttribute("href"),
          width: img.naturalWidth, height: img.naturalHeight, ...(stats[tile.dataset.name] || {})};
});
api.ready = true;
