"""Depth in the browser: bytes per frame, 3D-view frame rate, decode accuracy.

Serves a librealsense recording of known depth (bands from 0.4 to 9.5 m, built at run time)
at 640x480 and 1280x720 and measures:
- bytes per frame that reach the 3D view (metric + color JPEG) against a float32 xyz +
  uint8 rgb point cloud of the same size (what Intel's REST viewer sends);
- frames per second the 3D view renders in headless Chromium (WebGL2 on SwiftShader, so
  only the ratio between sizes means anything), at one point per pixel and every 2nd;
- the browser's hue decoder (JavaScript, and the 3D view's shader read back from the GPU)
  against the Python decoder and the truth.

    .venv/bin/python bench/bench_depth_web.py --runs 3 --seconds 8
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media.hue import decode_hue_depth  # noqa: E402
from tests.browser import Browser  # noqa: E402
from tests.camera.rs_recording import make_recording  # noqa: E402
from tests.helpers import MjpegReader, running  # noqa: E402

log = logging.getLogger("bench_depth_web")
TOKEN = "bench-depth-web"

DECODE_JS = """(async () => {
  const m = await import('./static/hue.js');
  const bytes = Uint8Array.from(atob('%s'), (c) => c.charCodeAt(0));
  const bmp = await createImageBitmap(new Blob([bytes], {type: 'image/jpeg'}),
                                      {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  const c = document.createElement('canvas'); c.width = bmp.width; c.height = bmp.height;
  const ctx = c.getContext('2d', {willReadFrequently: true}); ctx.drawImage(bmp, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const enc = {mapping: '%s', min: %s, max: %s};
  const out = new Float32Array(c.width * c.height);
  for (let i = 0; i < out.length; i++) {
    const v = m.decodePixel(d[4 * i], d[4 * i + 1], d[4 * i + 2], enc);
    out[i] = v === null ? 0 : v;
  }
  const u8 = new Uint8Array(out.buffer); let s = '';
  for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode(...u8.subarray(i, i + 8192));
  return btoa(s);
})()"""


def band_fn(width: int, height: int):  # noqa: ANN201
    """Depth (mm) in 12 vertical bands from 0.4 to 9.5 m, the bottom 1/12 invalid."""
    bands = np.round(np.geomspace(400, 9500, 12)).astype(np.uint16)
    edges = np.linspace(0, width, 13).astype(int)
    depth = np.zeros((height, width), np.uint16)
    for i, mm in enumerate(bands):
        depth[: height - height // 12, edges[i] : edges[i + 1]] = mm
    return lambda _n: depth


def part_sizes(port: int, path: str, n: int) -> list[int]:
    r = MjpegReader(port, f"{path}?token={TOKEN}")
    try:
        r.next_part()
        return [len(r.next_part()[1]) for _ in range(n)]
    finally:
        r.close()


def cloud_fps(b: Browser, base: str, step: int, seconds: float) -> tuple[float, float]:
    """(3D frames rendered per second, metric frames decoded per second) at one decimation."""
    b.goto(f"{base}/?view=3d&token={TOKEN}")
    b.wait_for("window.depthcam && window.depthcam.cloud && window.depthcam.cloud.frames > 1",
               timeout=60)
    b.eval(f"(() => {{ const s = document.getElementById('decimate'); s.value = '{step}';"
           " s.dispatchEvent(new Event('change')); })()")
    q = "[window.depthcam.cloud.frames, window.depthcam.metric.frames]"
    f0, m0 = b.eval(q)
    t0 = time.monotonic()
    time.sleep(seconds)
    f1, m1 = b.eval(q)
    dt = time.monotonic() - t0
    return (f1 - f0) / dt, (m1 - m0) / dt


def accuracy(b: Browser, srv, truth: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    """Browser decoder vs Python decoder vs truth, on one /metric.jpg."""
    code, headers, jpeg = srv.get(f"/metric.jpg?token={TOKEN}")
    assert code == 200, code
    dmin, dmax = float(headers["x-depth-min"]), float(headers["x-depth-max"])
    b.goto(f"{srv.base}/?token={TOKEN}")
    b.wait_for("window.depthcam && window.depthcam.depthReady", timeout=60)
    raw = b.eval(DECODE_JS % (base64.b64encode(jpeg).decode(), "log", dmin, dmax), timeout=120)
    web = np.frombuffer(base64.b64decode(raw), np.float32).reshape(truth.shape).astype(float)
    py = decode_hue_depth(jpeg, dmin, dmax, depth_scale=dmax / 65000,
                          mapping="log").astype(float) * dmax / 65000
    b.goto(f"{srv.base}/?view=3d&token={TOKEN}")
    b.wait_for("window.depthcam && window.depthcam.cloud && window.depthcam.cloud.frames > 0",
               timeout=60)
    b.eval("(() => { const s = document.getElementById('decimate'); s.value = '1';"
           " s.dispatchEvent(new Event('change')); })()")
    g = b.eval("(() => { const g = window.depthcam.cloud.gpuDepth(); const u8 = new Uint8Array("
               "g.data.buffer); let s = ''; for (let i = 0; i < u8.length; i += 8192)"
               " s += String.fromCharCode(...u8.subarray(i, i + 8192)); return btoa(s); })()",
               timeout=120)
    gpu = np.frombuffer(base64.b64decode(g), np.float32).reshape(truth.shape).astype(float)
    valid = truth > 0
    both = (web > 0) & (py > 0)
    t = truth[valid]
    return {
        "gpu_within_1pct": float(np.mean(np.abs(gpu[valid] - t) <= 0.01 * t)),
        "gpu_same_validity_as_py": float(np.mean((gpu > 0) == (py > 0))),
        "web_within_1pct": float(np.mean(np.abs(web[valid] - t) <= 0.01 * t)),
        "py_within_1pct": float(np.mean(np.abs(py[valid] - t) <= 0.01 * t)),
        "same_validity": float(np.mean((web > 0) == (py > 0))),
        "web_vs_py_max_rel": float(np.max(np.abs(web[both] - py[both]) / py[both])),
        "web_eq_py_within_0.1pct": float(np.mean(np.abs(web[both] - py[both])
                                                 <= 0.001 * py[both])),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("load average before: %s", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    rows = []
    acc: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Browser(webgl=True, width=1280, height=800) as b:
        for w, h in ((640, 480), (1280, 720)):
            path = Path(tmp) / f"bands-{w}.db3"
            fn = band_fn(w, h)
            make_recording(path, w, h, 30, frames=30, depth_fn=fn, baseline=0.0)
            with running("--source", str(path), "--width", str(w), "--height", str(h),
                         "--no-align", "--depth-max", "10", "--token", TOKEN) as srv:
                metric = statistics.median(part_sizes(srv.port, "/metric", 30))
                color = statistics.median(part_sizes(srv.port, "/color", 30))
                fps = {1: [], 2: []}
                decoded = []
                for _ in range(a.runs):
                    for step in (1, 2):
                        f, m = cloud_fps(b, srv.base, step, a.seconds)
                        fps[step].append(f)
                        decoded.append(m)
                if (w, h) == (640, 480):
                    acc = accuracy(b, srv, fn(0) / 1000.0)
            with running("--width", str(w), "--height", str(h), "--token", TOKEN) as srv:
                synth = (statistics.median(part_sizes(srv.port, "/metric", 30)),
                         statistics.median(part_sizes(srv.port, "/color", 30)))
            cloud_bytes = w * h * (3 * 4 + 3)
            rows.append((w, h, metric, color, cloud_bytes, statistics.median(fps[1]),
                         statistics.median(fps[2]), statistics.median(decoded), synth))
    log.info("load average after: %s", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("| size | scene | metric JPEG KB | color JPEG KB | ours KB/frame |"  # noqa: T201
          " float32 xyz + rgb cloud KB | ratio |")
    print("|---|---|---|---|---|---|---|")  # noqa: T201
    for w, h, m, c, cb, *_, synth in rows:
        for scene, (mm, cc) in (("bands", (m, c)), ("synthetic", synth)):
            print(f"| {w}x{h} | {scene} | {mm / 1e3:.0f} | {cc / 1e3:.0f} | "  # noqa: T201
                  f"{(mm + cc) / 1e3:.0f} | {cb / 1e3:.0f} | {cb / (mm + cc):.0f}x |")
    print("\n| size | 3D fps, every pixel | 3D fps, every 2nd | metric frames decoded/s |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    for w, h, _m, _c, _cb, f1, f2, md, _s in rows:
        print(f"| {w}x{h} | {f1:.1f} | {f2:.1f} | {md:.1f} |")  # noqa: T201
    if len(rows) == 2:
        print(f"\n3D fps ratio 640x480 / 1280x720: every pixel {rows[0][5] / rows[1][5]:.2f}, "  # noqa: T201
              f"every 2nd {rows[0][6] / rows[1][6]:.2f}")
    print("\naccuracy (640x480, one /metric.jpg):", {k: round(v, 4) for k, v in acc.items()})  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
