"""Capture-to-paint latency of an MJPEG <img> in headless Chromium.

Chromium's multipart parser ignores Content-Length and shows a part only when the next
boundary arrives (crbug.com/527446), so a server that sends each part's closing boundary
with the next frame makes every frame wait one frame interval before it is painted.
This starts the server (synthetic source, which draws its capture time into each frame
as a machine-readable stamp, media/stamp.py), opens its page in headless Chromium and,
on every animation frame, reads the stamp of the color <img> (web/static/stamp.js):
the first animation frame that shows a new stamp gives that frame's capture-to-paint
time. Medians over several runs, as Markdown.

    .venv/bin/python bench/bench_paint.py --fps 5 30 --runs 3
    .venv/bin/python bench/bench_paint.py --app /tmp/older-checkout/app_mp.py
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import wait_started  # noqa: E402
from tests.browser import Browser  # noqa: E402

log = logging.getLogger("bench")

MEASURE_JS = """
(async () => {
  const {readStamp} = await import("./static/stamp.js");
  const img = document.getElementById("color");
  const src = %s;
  if (src) {
    img.src = src;
    await new Promise((ok) => { img.onload = ok; setTimeout(ok, 5000); });
  }
  const out = [];
  let last = null;
  const end = performance.now() + %d;
  await new Promise((done) => {
    function tick() {
      const t = readStamp(img);
      if (t !== null && t !== last) {
        if (last !== null) out.push(Date.now() / 1000 - t);
        last = t;
      }
      if (performance.now() < end) requestAnimationFrame(tick); else done();
    }
    requestAnimationFrame(tick);
  });
  return out;
})()
"""


def paint_latencies(base: str, seconds: float, src: str | None = None) -> list[float]:
    """Capture-to-paint times (s) of the frames one page painted in `seconds`; `src`
    replaces the color <img>'s stream URL (e.g. "color?advance_headers=0")."""
    with Browser(width=1400, height=900) as b:
        b.goto(base + "/")
        b.wait_for("document.getElementById('color').naturalWidth > 0", timeout=20)
        return b.eval(MEASURE_JS % (json.dumps(src), int(seconds * 1000)),
                      timeout=seconds + 30)


def one_run(args: argparse.Namespace, fps: float) -> dict:
    port = args.port
    app = Path(args.app).resolve()
    srv = subprocess.Popen(
        [sys.executable, str(app), "--host", "127.0.0.1", "--port", str(port), "--source",
         "synthetic", "--width", str(args.width), "--height", str(args.height), "--fps",
         str(fps), "--log-level", "warning"], cwd=app.parent, start_new_session=True)
    try:
        wait_started(port, srv)
        lat = sorted(paint_latencies(f"http://127.0.0.1:{port}", args.seconds, args.src))
    finally:
        srv.send_signal(signal.SIGINT)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
    if not lat:
        raise RuntimeError("no stamped frame was painted")
    return {"frames": len(lat), "p50_ms": lat[len(lat) // 2] * 1000,
            "p90_ms": lat[int(len(lat) * 0.9)] * 1000}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fps", type=float, nargs="+", default=[5.0, 30.0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--port", type=int, default=5187)
    p.add_argument("--app", default=str(ROOT / "app_mp.py"), help="the server to measure")
    p.add_argument("--label", default="this build", help="name of the build in the table")
    p.add_argument("--src", help="stream URL for the color <img>, relative to the page "
                   "(e.g. color?advance_headers=0); default: the page's own")
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(message)s")
    w = sys.stdout.write
    w("| build | fps | frame interval ms | frames painted | capture-to-paint p50 ms "
      "| p90 ms |\n|---|---|---|---|---|---|\n")
    for fps in args.fps:
        runs = []
        for i in range(args.runs):
            r = one_run(args, fps)
            log.info("fps %g run %d: %s", fps, i + 1, json.dumps(r))
            runs.append(r)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        w(f"| {args.label} | {fps:g} | {1000 / fps:.0f} | {med['frames']:.0f} | "
          f"{med['p50_ms']:.0f} | {med['p90_ms']:.0f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
