"""Throughput benchmark of the raw-TCP MJPEG stream parser on a synthetic 720p stream.

Builds a stream of libjpeg-turbo 1280x720 frames, splits it with JpegStreamParser in 64 KiB
chunks and in 1460-byte chunks (one TCP segment), and compares the rate with 720p30 ingest.
Run: .venv/bin/python bench/bench_parser.py [--runs N] [--frames N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from turbojpeg import TJPF_RGB, TJSAMP_420, TurboJPEG

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.jpeg_stream import JpegStreamParser  # noqa: E402

logger = logging.getLogger("bench_parser")

WIDTH, HEIGHT = 1280, 720
TARGET_FPS = 30


def build_stream(frames: int, quality: int) -> list[bytes]:
    """Encode ``frames`` 720p frames of a textured scene panning sideways by 4 px per frame."""
    rng = np.random.default_rng(7)
    step = 4
    texture = rng.normal(0, 7, (HEIGHT, WIDTH + frames * step, 3))
    xs = np.arange(WIDTH + frames * step, dtype=np.float32)
    ys = np.arange(HEIGHT, dtype=np.float32)[:, None]
    scene = 128 + 60 * np.sin(xs / 37.0)[None, :] * np.cos(ys / 23.0) + 20 * np.sin(xs / 5.0)
    scene = np.clip(scene[:, :, None] + texture, 0, 255).astype(np.uint8)
    tj = TurboJPEG()
    return [
        tj.encode(
            np.ascontiguousarray(scene[:, i * step : i * step + WIDTH]),
            quality,
            TJPF_RGB,
            TJSAMP_420,
        )
        for i in range(frames)
    ]


def run_once(stream: bytes, chunk: int, expected: int) -> float:
    """Split ``stream`` fed in ``chunk``-byte pieces; return the elapsed seconds."""
    parser = JpegStreamParser()
    view = memoryview(stream)
    found = 0
    start = time.perf_counter()
    for offset in range(0, len(stream), chunk):
        found += len(parser.feed(view[offset : offset + chunk]))
    elapsed = time.perf_counter() - start
    if found != expected:
        raise RuntimeError(f"parser found {found} of {expected} frames")
    if parser.scanned_bytes > 2 * len(stream):
        raise RuntimeError(f"parser scanned {parser.scanned_bytes} bytes of {len(stream)}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Build the stream, time the parser for each chunk size and print the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per chunk size")
    ap.add_argument("--frames", type=int, default=300, help="frames in the stream")
    ap.add_argument("--quality", type=int, default=80, help="JPEG quality")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    frames = build_stream(args.frames, args.quality)
    stream = b"".join(frames)
    mean_frame = len(stream) / len(frames)
    needed = mean_frame * TARGET_FPS / 1e6
    logger.info(
        "stream: %d frames %dx%d q%d, %.1f KB/frame, %.1f MB total; %d fps needs %.2f MB/s",
        len(frames),
        WIDTH,
        HEIGHT,
        args.quality,
        mean_frame / 1e3,
        len(stream) / 1e6,
        TARGET_FPS,
        needed,
    )
    for chunk in (64 * 1024, 1460):
        times = [run_once(stream, chunk, len(frames)) for _ in range(args.runs)]
        median = statistics.median(times)
        rate = len(stream) / median / 1e6
        logger.info(
            "chunk %6d B: median %.1f ms/stream, %.0f MB/s, %.0f frames/s, "
            "%.0fx the %d fps data rate (runs=%d, min %.1f ms)",
            chunk,
            median * 1e3,
            rate,
            len(frames) / median,
            rate / needed,
            TARGET_FPS,
            args.runs,
            min(times) * 1e3,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
