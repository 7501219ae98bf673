"""Capture-process cost per RealSense frame: wait_for_frames + align + conversion to numpy.

Builds .db3 recordings of the test scene with librealsense's software device, plays them
with set_real_time(False) through RecordingSource (the same code as a live camera's
frame path) and prints a markdown table of per-frame medians, align on and off.

    .venv/bin/python bench/bench_capture.py --runs 5 --frames 90
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "camera"))

import pyrealsense2 as rs  # noqa: E402
from rs_recording import make_recording  # noqa: E402

from camera.base import SourceEnded  # noqa: E402
from camera.recording import RecordingSource  # noqa: E402

log = logging.getLogger("bench_capture")
WARMUP = 5


def one_run(path: str, align: bool) -> tuple[float, float, int]:
    """Play a recording once; median ms per frame of read() and of processing alone."""
    src = RecordingSource(path, loop=False, realtime=False, align=align)
    src.open()
    proc_ms: list[float] = []
    original = src._process

    def timed(frames: Any) -> Any:
        t0 = time.perf_counter()
        out = original(frames)
        proc_ms.append((time.perf_counter() - t0) * 1000.0)
        return out

    src._process = timed  # type: ignore[method-assign]
    read_ms: list[float] = []
    try:
        while True:
            t0 = time.perf_counter()
            try:
                frame = src.read(2.0)
            except SourceEnded:
                break
            if frame is None:
                raise RuntimeError("playback stalled")
            read_ms.append((time.perf_counter() - t0) * 1000.0)
    finally:
        src.close()
    if len(read_ms) <= WARMUP:
        raise RuntimeError(f"only {len(read_ms)} frames played")
    return (statistics.median(read_ms[WARMUP:]), statistics.median(proc_ms[WARMUP:]),
            len(read_ms))


def main() -> None:
    """Build the recordings, run each case several times, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per case (default 5)")
    p.add_argument("--frames", type=int, default=90, help="frames per recording (default 90)")
    p.add_argument("--sizes", default="1280x720,640x480", help="WxH list (default %(default)s)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_capture_") as tmp:
        for w, h in sizes:
            path = os.path.join(tmp, f"scene_{w}x{h}.db3")
            make_recording(path, w, h, 30, frames=args.frames, realtime=False)
            for align in (True, False):
                results = [one_run(path, align) for _ in range(args.runs)]
                read_ms = statistics.median(r[0] for r in results)
                proc_ms = statistics.median(r[1] for r in results)
                played = min(r[2] for r in results)
                rows.append((f"{w}x{h}", "on" if align else "off", read_ms, proc_ms, played))
                log.info("%dx%d align=%s done", w, h, align)
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"pyrealsense2 {rs.__version__}; {args.runs} runs of {args.frames} frames, "
          f"first {WARMUP} of each run skipped\n")
    print("| size | align | read() ms/frame | processing ms/frame | frames played (min) |")
    print("|---|---|---|---|---|")
    for size, align, read_ms, proc_ms, played in rows:
        print(f"| {size} | {align} | {read_ms:.2f} | {proc_ms:.2f} | {played} |")
    print("\nread(): try_wait_for_frames + processing, as the capture loop's capture_ms. "
          "processing: align (when on) + BGR/uint16 conversion and copies.")


if __name__ == "__main__":
    main()
