"""What the 3D view downloads: WebRTC colour plus the depth video, against MJPEG colour.

    .venv/bin/python bench/bench_cloud_bytes.py              # 1280x720@30, 3 runs of 8 s each
    .venv/bin/python bench/bench_cloud_bytes.py --width 848 --height 480

One server (synthetic scene, --webrtc with the distribution's Janus) and one headless
Chromium with WebGL2. Each run opens the 3D view once with the WebRTC player and once with
the MJPEG player, alternating on the same server, and measures over --seconds: the bit
rate of each stream the view reads (WebRTC inbound bytes, the depth video, MJPEG /color),
the frames the view drew with new depth and the colour frames it uploaded. Prints
Markdown; medians over the runs.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_args  # noqa: E402
from tests.browser import Browser  # noqa: E402
from tests.helpers import Server, running  # noqa: E402

log = logging.getLogger("bench")
CLOUD = "window.depthcam.cloudStats()"
RTC = "window.depthcam.webrtcStats()"


def one_view(srv: Server, player: str, seconds: float) -> dict[str, float]:
    """Open the 3D view with `player` and measure what it downloads and draws."""
    with Browser(webgl=True, width=900, height=600) as b:
        b.goto(f"{srv.base}/?player={player}&view=3d")
        b.wait_for(f"window.depthcam.cloud && {CLOUD}.color === '{player}'"
                   f" && {CLOUD}.frames > 0", timeout=60)
        time.sleep(2.0)  # past the first keyframes
        s0, w0, t0 = b.eval(CLOUD), b.eval(RTC) or {}, time.monotonic()
        time.sleep(seconds)
        s1, w1, t1 = b.eval(CLOUD), b.eval(RTC) or {}, time.monotonic()
        assert s1["color"] == player, s1
    dt = t1 - t0
    colour = (w1.get("bytesReceived", 0) - w0.get("bytesReceived", 0)
              + s1["color_bytes"] - s0["color_bytes"])
    depth = (s1["bytes"] - s0["bytes"]) - (s1["color_bytes"] - s0["color_bytes"])
    return {"color_mbps": colour * 8 / dt / 1e6, "depth_mbps": depth * 8 / dt / 1e6,
            "mbps": (colour + depth) * 8 / dt / 1e6,
            "cloud_fps": (s1["frames"] - s0["frames"]) / dt,
            "color_fps": (s1["color_frames"] - s0["color_frames"]) / dt}


def main() -> None:
    args = bench_args(__doc__, width=1280, height=720, seconds=8.0, runs=3)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    load = os.getloadavg()[0]
    out: dict[str, list[dict[str, float]]] = {"webrtc": [], "mjpeg": []}
    with running("--width", str(args.width), "--height", str(args.height), "--fps", "30",
                 "--webrtc", "--log-level", "warning") as srv:
        for _ in range(args.runs):
            for player, runs in out.items():
                r = one_view(srv, player, args.seconds)
                log.info("%s: %s", player, {k: round(v, 2) for k, v in r.items()})
                runs.append(r)
    print(f"\n{args.width}x{args.height} at 30 fps, synthetic scene, the 3D view in headless "
          f"Chromium (SwiftShader), median of {args.runs} runs of {args.seconds:g} s each "
          f"(load average before: {load:.1f}, {os.cpu_count()} cores)\n")
    print("| colour from | all the view downloads | colour | depth video | frames drawn with "
          "new depth | colour frames uploaded |\n|---|---|---|---|---|---|")
    for player, rs in out.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        name = "WebRTC (H.264)" if player == "webrtc" else "MJPEG `/color`"
        print(f"| {name} | {med['mbps']:.2f} Mbit/s | {med['color_mbps']:.2f} Mbit/s | "
              f"{med['depth_mbps']:.2f} Mbit/s | {med['cloud_fps']:.1f} fps | "
              f"{med['color_fps']:.1f} fps |")

if __name__ == "__main__":
    main()
