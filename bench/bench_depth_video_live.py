"""The depth-video stage and the page's decoder, live, for docs/BENCHMARKS.md.

    .venv/bin/python bench/bench_depth_video_live.py                 # 848x480@30, 3 runs of 10 s
    .venv/bin/python bench/bench_depth_video_live.py --width 1280 --height 720

Each run starts app_mp.py on the synthetic scene and opens its page in headless Chromium,
which shows the color and depth MJPEG images as usual; a script keeps the page's depth
tools reading (/depth-video, decoded with WebCodecs). Over --seconds it reports the
capture rate, the stage's encode time per frame and rate (/status), the frames the page
decoded per second with its median decode time (depthStats()), the bit rate, and the
stage child's CPU. Prints Markdown; medians over the runs.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_foxglove import cpu_s  # noqa: E402
from bench.common import bench_args  # noqa: E402
from tests.browser import Browser  # noqa: E402
from tests.helpers import running  # noqa: E402

log = logging.getLogger("bench")


def one_run(width: int, height: int, seconds: float) -> dict[str, float]:
    with running("--width", str(width), "--height", str(height), "--fps", "30",
                 "--log-level", "warning") as srv, Browser() as b:
        b.goto(srv.base + "/")
        b.wait_for("window.depthcam && window.depthcam.depthReady === true", timeout=30)
        assert b.eval("window.depthcam.depthSource()") == "video"
        b.eval("window.depthcam.metricIdleMs = 600000")
        assert b.eval("window.depthcam.metricReady(30000)", timeout=40) is True
        time.sleep(3.0)  # past the first keyframe and the stats window
        st0 = srv.status()
        pid = st0["depth_video"]["pid"]
        c0, t0 = cpu_s(pid), time.monotonic()
        encode_ms, page = [], []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            encode_ms.append(srv.status()["depth_video"]["encode_ms"])
            page.append(b.eval("window.depthcam.depthStats()"))
        st1, c1, t1 = srv.status(), cpu_s(pid), time.monotonic()
        dt = t1 - t0
        dv0, dv1 = st0["depth_video"], st1["depth_video"]
        res = {"capture_fps": (st1["frames_captured"] - st0["frames_captured"]) / dt,
               "stage_fps": (dv1["frames"] - dv0["frames"]) / dt,
               "encode_ms": statistics.median(encode_ms),
               "stage_cpu": (c1 - c0) / dt,
               "mbps": (dv1["bytes"] - dv0["bytes"]) * 8 / dt / 1e6,
               "page_fps": statistics.median(p["fps"] for p in page),
               "decode_ms": statistics.median(p["decode_ms"] for p in page)}
    log.info("run: %s", {k: round(v, 2) for k, v in res.items()})
    return res


def main() -> None:
    args = bench_args(__doc__, width=848, height=480, seconds=10.0, runs=3)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    load = os.getloadavg()[0]
    rs = [one_run(args.width, args.height, args.seconds) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    print(f"\n{args.width}x{args.height} at 30 fps, synthetic scene, one page (its two MJPEG "
          f"images and the depth tools on /depth-video), median of {args.runs} runs of "
          f"{args.seconds:g} s (load average before: {load:.1f}, {os.cpu_count()} cores)\n")
    print("| figure | value |\n|---|---|")
    print(f"| capture | {med['capture_fps']:.1f} fps |")
    print(f"| depth-video stage | {med['stage_fps']:.1f} fps, {med['encode_ms']:.1f} ms per "
          f"frame (depth to codes + encode), {med['stage_cpu'] * 100:.0f} % of a core |")
    print(f"| bit rate | {med['mbps']:.2f} Mbit/s |")
    print(f"| page (WebCodecs) | {med['page_fps']:.1f} frames decoded per second, "
          f"{med['decode_ms']:.1f} ms median from a unit's arrival to its frame |")


if __name__ == "__main__":
    main()
