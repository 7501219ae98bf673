"""Push over a shaped link: fps received, frame size and latency per link rate and mode.

    sudo .venv/bin/python bench/bench_push.py                 # 2, 4, 8, 20 Mbit/s, 3 runs
    sudo .venv/bin/python bench/bench_push.py --rates 4 --runs 1 --seconds 8

Two network namespaces joined by a veth pair, the sender's side shaped with tbf (rate,
burst 32 kbit, 100 ms queue), `ffmpeg -listen 1` receiving in the far namespace: the
same set-up as tests/e2e/test_push_shaped.py. 720p color from the synthetic source at
30 fps, pushed by app_https_client.py with fixed-quality MJPEG (`--no-adapt`), adaptive
MJPEG (the default) and adaptive H.264 in MPEG-TS (`--format h264`, received by
`ffmpeg -listen 1 -f mpegts`). Latency is arrival at the receiver minus capture time
(MJPEG: the COM segment; H.264: the PTS, which is the capture time). Prints a Markdown
table of medians over the runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.shaped import (  # noqa: E402
    FfmpegReceiver,
    ShapedLink,
    TsReceiver,
    namespaces_unavailable,
    probe_frames,
    pusher,
    summary,
)

log = logging.getLogger("bench")
MODES = {"MJPEG fixed": ("--no-adapt",), "MJPEG adaptive": (),
         "H.264 adaptive": ("--format", "h264")}
VIDEO = ("--stream", "color", "--width", "1280", "--height", "720", "--fps", "30",
         "--gps", "none")


def run_mode(link: ShapedLink, port: int, mode: str, rates: list[float], *, settle: float,
             seconds: float, tmp: Path) -> dict[float, dict[str, float]]:
    """One pusher for all rates: set the rate, let it settle, measure."""
    out: dict[float, dict[str, float]] = {}
    link.set_rate(rates[0])
    logf = tmp / f"push-{port}.log"
    h264 = "--format" in MODES[mode]
    ts = tmp / f"rx-{port}.ts"
    rx_cm = (TsReceiver(link, port, tmp / f"ffmpeg-{port}.log", ts) if h264
             else FfmpegReceiver(link, port, tmp / f"ffmpeg-{port}.log"))
    with rx_cm as rx, pusher(link, port, logf, *VIDEO, *MODES[mode]):
        deadline = time.monotonic() + 60
        while not rx.arrivals:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frames: {logf.read_text()[-2000:]}")
            time.sleep(0.1)
        for rate in rates:
            link.set_rate(rate)
            time.sleep(settle)
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            got = rx.window(t0, t1)
            out[rate] = summary(got, t1 - t0)
            if h264:  # what the encoder made of the link: mean bit rate received
                out[rate]["mbit"] = sum(a.nbytes for a in got) * 8e-6 / (t1 - t0)
            log.info("%s at %g Mbit/s: %s", mode, rate,
                     {k: round(v, 1) for k, v in out[rate].items()})
    if h264:  # the size ffprobe decodes from what arrived
        width = int(probe_frames(ts, 2.0)[0]["width"])
        for r in out.values():
            r["width"] = width
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="2,4,8,20", help="link rates in Mbit/s")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES), help="which of: " + ", ".join(MODES))
    ap.add_argument("--seconds", type=float, default=10.0, help="measured per rate")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds after a rate change")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    why = namespaces_unavailable()
    if why:
        log.error("cannot run: %s", why)
        return 2
    rates = [float(r) for r in args.rates.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    if unknown := [m for m in modes if m not in MODES]:
        log.error("unknown mode(s): %s", ", ".join(unknown))
        return 2
    results: dict[tuple[float, str], list[dict[str, float]]] = {}
    log.info("machine: %s, %d cores, load %s", platform.processor() or platform.machine(),
             os.cpu_count(), os.getloadavg())
    with tempfile.TemporaryDirectory() as d, ShapedLink(rates[0], tag="b") as link:
        port = 9000
        for run in range(args.runs):
            for mode in modes:
                port += 1
                got = run_mode(link, port, mode, rates, settle=args.settle, seconds=args.seconds,
                               tmp=Path(d))
                for rate, s in got.items():
                    results.setdefault((rate, mode), []).append(s)
            log.info("run %d of %d done", run + 1, args.runs)
    print("| link | format | fps received | resolution, quality (typical) | mean frame "
          "| latency p50 | latency p99 |")
    print("|---|---|---|---|---|---|---|")
    for rate in rates:
        for mode in modes:
            runs = results[(rate, mode)]

            def med(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            width = int(med("width"))
            height = width * 720 // 1280
            what = (f"{width}x{height}, {med('mbit'):.2f} Mbit/s" if "mbit" in runs[0]
                    else f"{width}x{height} q{int(med('quality'))}")
            print(f"| {rate:g} Mbit/s | {mode} | {med('fps'):.1f} | {what} "
                  f"| {med('kbytes'):.0f} KB | {med('p50_ms'):.0f} ms "
                  f"| {med('p99_ms'):.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
