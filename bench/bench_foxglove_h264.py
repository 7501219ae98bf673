"""/camera/h264 against /camera/color on the Foxglove WebSocket: bytes per second, CPU.

    .venv/bin/python bench/bench_foxglove_h264.py                  # 640x480 and 1280x720
    .venv/bin/python bench/bench_foxglove_h264.py --runs 5 --seconds 20

Each run starts app_mp.py (synthetic scene, 30 fps, default H.264 settings: 2.5 Mbit/s,
keyframe every 60 frames) with --foxglove, subscribes one Foxglove protocol client to
/camera/color and /camera/h264 together, and reads for --seconds: received bytes and
messages per second per channel (one run, so the two share the machine's load), and the
CPU of the H.264 child per access unit (from /proc). Prints Markdown; medians over runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_foxglove import cpu_s  # noqa: E402
from bench.common import count_messages  # noqa: E402
from tests.helpers import free_port, running  # noqa: E402
from tests.robotics.fox_client import FoxgloveClient  # noqa: E402

log = logging.getLogger("bench")
TOPICS = ("/camera/color", "/camera/h264")


def one_run(width: int, height: int, seconds: float) -> dict[str, float]:
    port = free_port()
    with running("--width", str(width), "--height", str(height), "--fps", "30",
                 "--foxglove", f"127.0.0.1:{port}", "--log-level", "warning") as srv:
        c = FoxgloveClient(port)
        c.wait_channels(list(TOPICS))
        h264 = srv.status()["h264"]["pid"]
        c.subscribe(list(TOPICS))
        c.collect({t: 5 for t in TOPICS}, timeout=30)
        c.bytes_by_topic.clear()
        h0 = cpu_s(h264)
        counts, dt = count_messages(c, TOPICS, seconds)
        res = {"h264_cpu": (cpu_s(h264) - h0) / dt}
        for topic in TOPICS:
            key = topic.rsplit("/", 1)[1]
            res[f"{key}_Bps"] = c.bytes_by_topic.get(topic, 0) / dt
            res[f"{key}_fps"] = counts[topic] / dt
        c.close()
    res["ratio"] = res["color_Bps"] / max(res["h264_Bps"], 1e-9)
    log.info("run %dx%d: %s", width, height, {k: round(v, 3) for k, v in res.items()})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    load = os.getloadavg()[0]
    print(f"\nsynthetic scene at 30 fps, one client on color + h264, median of {args.runs} "
          f"runs of {args.seconds:g} s (load average before: {load:.1f})\n")
    print("| size | /camera/color | /camera/h264 | color / h264 | fps (color, h264) "
          "| H.264 child CPU |\n|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        runs = [one_run(w, h, args.seconds) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ms = med["h264_cpu"] * 1000 / max(med["h264_fps"], 1e-9)
        print(f"| {w}x{h} | {med['color_Bps'] / 1e6:.2f} MB/s "
              f"({med['color_Bps'] / med['color_fps'] / 1e3:.0f} kB/msg) "
              f"| {med['h264_Bps'] / 1e6:.2f} MB/s "
              f"({med['h264_Bps'] / med['h264_fps'] / 1e3:.1f} kB/msg) "
              f"| **{med['ratio']:.1f}x** | {med['color_fps']:.1f}, {med['h264_fps']:.1f} "
              f"| {med['h264_cpu'] * 100:.0f} % of a core ({ms:.1f} ms per frame) |")


if __name__ == "__main__":
    main()
