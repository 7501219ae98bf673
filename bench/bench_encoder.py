"""Cost of the encoder process per 720p frame, per depth mode, against raw libjpeg-turbo.

For every depth mode it times, frame by frame and interleaved (so all columns see the same
machine load): the depth render (`render_depth_bgrx` into a reused buffer, as FrameEncoder
does it, and the old 3-byte table look-up for comparison), the depth and color JPEG
encodes through `JpegCodec`, the whole `FrameEncoder.encode` of color + depth as the
encoder process does it, and the floor: the same two images (depth pre-rendered) encoded
by `tjCompress2` called directly, with one reused handle and output buffer per thread,
once one after the other and once on two threads at the same time. Besides wall time it
records the process's CPU time (all threads), which other load on the machine barely
moves: ratio_cpu is the work the encoder adds over libjpeg-turbo alone. Settings come
from the real option parser (`pipeline_config()`).
Run: .venv/bin/python bench/bench_encoder.py [--runs N] [--frames N] [--modes LIST]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camera.synthetic import SyntheticSource  # noqa: E402
from encoder.process import FrameEncoder  # noqa: E402
from media.depth import DEPTH_MODES, _bgr_lut, _level_lut, render_depth_bgrx  # noqa: E402
from media.filters import FilterChain  # noqa: E402
from media.jpeg import JpegCodec, pick_backend  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.shm import FLAG_HAS_DEPTH, SlotMeta  # noqa: E402
from wiring.options import pipeline_config, pipeline_parser  # noqa: E402

logger = logging.getLogger("bench_encoder")

TJPF_BGR, TJFLAG_NOREALLOC = 1, 1024
TJSAMP = {"444": 0, "422": 1, "420": 2}


class RawTurbo:
    """tjCompress2 through ctypes: one handle and one output buffer per thread, no copies
    besides the final bytes() -- the least any Python caller can spend on an encode."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
        lib = ctypes.CDLL(path)
        lib.tjInitCompress.restype = ctypes.c_void_p
        lib.tjBufSize.restype = ctypes.c_ulong
        lib.tjBufSize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.tjCompress2.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
            ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ]
        self.lib = lib
        self.local = threading.local()

    def encode(self, img: np.ndarray, quality: int, subsampling: str) -> bytes:
        """JPEG of a C-contiguous BGR image."""
        h, w = img.shape[:2]
        loc = self.local
        if getattr(loc, "handle", None) is None:
            loc.handle = self.lib.tjInitCompress()
            loc.size = self.lib.tjBufSize(w, h, TJSAMP["444"])
            loc.buf = (ctypes.c_ubyte * loc.size)()
        ptr = ctypes.c_void_p(ctypes.addressof(loc.buf))
        size = ctypes.c_ulong(loc.size)
        if self.lib.tjCompress2(loc.handle, img.ctypes.data, w, img.strides[0], h, TJPF_BGR,
                                ctypes.byref(ptr), ctypes.byref(size), TJSAMP[subsampling],
                                quality, TJFLAG_NOREALLOC) != 0:
            raise RuntimeError("tjCompress2 failed")
        return ctypes.string_at(ptr, size.value)


def make_config(mode: str, quality: int, backend: str) -> Config:
    """The Config the server would run with for these options."""
    p = pipeline_parser("bench_encoder", "")
    ns = p.parse_args(["--source", "synthetic", "--depth-mode", mode, "--quality", str(quality),
                       "--encoder", backend, "--log-level", "warning"])
    return pipeline_config(p, ns)


def make_frames(width: int, height: int, count: int) -> list[tuple[SlotMeta, memoryview]]:
    """Synthetic frames packed like a raw ring slot: color bytes, then the depth plane."""
    src = SyntheticSource(width, height, 30)
    src.open()
    frames = []
    for i in range(count):
        src._t0 -= 0.1  # noqa: SLF001  (move the objects between frames)
        f = src.read(1.0)
        assert f is not None
        payload = bytearray(f.color.tobytes() + f.depth.tobytes())
        meta = SlotMeta(i + 1, i + 1, 0.0, 0.0, 0.0, f.depth_scale, width, height,
                        f.color.nbytes, f.depth.nbytes, FLAG_HAS_DEPTH)
        frames.append((meta, memoryview(payload)))
    return frames


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, CPU ms of the whole process, all threads) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1000.0, (time.process_time() - c0) * 1000.0


def run_mode(cfg: Config, args: argparse.Namespace, frames: list[tuple[SlotMeta, memoryview]],
             raw: RawTurbo, floor_pool: ThreadPoolExecutor) -> dict[str, float]:
    """Each column's median over the frames of a run, then the median over the runs."""
    mode, q, dq, ds = cfg.depth_mode, cfg.quality, cfg.depth_quality, cfg.depth_subsampling
    codec = JpegCodec(pick_backend(args.encoder))
    w, h = args.width, args.height
    out = np.empty((h, w, 4), np.uint8)
    scale = frames[0][0].depth_scale
    old_lut = _bgr_lut(mode, cfg.depth_min, cfg.depth_max, scale)
    gray_lut = _level_lut(cfg.depth_min, cfg.depth_max, scale, 0)

    def render_old(depth: np.ndarray) -> np.ndarray:
        """The render as it was: a 65536x3 table, or for gray a uint8 table plus cvtColor."""
        if mode == "gray":
            return cv2.cvtColor(np.take(gray_lut, depth), cv2.COLOR_GRAY2BGR)
        return np.take(old_lut, depth, axis=0)

    runs: list[dict[str, float]] = []
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="jpeg") as pool:
        enc = FrameEncoder(cfg, codec, pool, FilterChain([]))
        for _ in range(args.runs):
            cols: dict[str, list[float]] = {}
            for i in range(args.frames):
                meta, view = frames[i % len(frames)]
                color = np.ndarray((h, w, 3), np.uint8, buffer=view)
                depth = np.ndarray((h, w), np.uint16, buffer=view, offset=meta.len0)
                bgr = np.take(old_lut, depth, axis=0)

                def floor_serial(color=color, bgr=bgr) -> None:
                    raw.encode(bgr, dq, ds)
                    raw.encode(color, q, "420")

                def floor_parallel(color=color, bgr=bgr) -> None:
                    f = floor_pool.submit(raw.encode, bgr, dq, ds)
                    g = floor_pool.submit(raw.encode, color, q, "420")
                    f.result(), g.result()

                steps: dict[str, Callable[[], Any]] = {
                    "render_old": lambda d=depth: render_old(d),
                    "render": lambda d=depth, m=meta: render_depth_bgrx(
                        d, mode, cfg.depth_min, cfg.depth_max, m.depth_scale, out=out),
                    "enc_depth": lambda: codec.encode(out, dq, ds),
                    "enc_color": lambda c=color: codec.encode(c, q, "420"),
                    "ours": lambda m=meta, v=view: enc.encode(m, v, ["color", "depth"]),
                    "floor_serial": floor_serial,
                    "floor_parallel": floor_parallel,
                }
                wall, cpu = {}, {}
                for name, fn in steps.items():
                    wall[name], cpu[name] = timed(fn)
                sample = {
                    **wall,
                    "render_cpu": cpu["render"],
                    "ours_cpu": cpu["ours"],
                    "floor_cpu": cpu["floor_serial"],
                    "ratio_parallel": wall["ours"] / wall["floor_parallel"],
                    "ratio_serial": wall["ours"] / wall["floor_serial"],
                    "ratio_cpu": cpu["ours"] / cpu["floor_serial"],
                    "kb_depth": len(raw.encode(bgr, dq, ds)) / 1024,
                }
                for k, v in sample.items():
                    cols.setdefault(k, []).append(v)
            runs.append({k: statistics.median(v) for k, v in cols.items()})
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    p.add_argument("--frames", type=int, default=40, help="frames per run (default 40)")
    p.add_argument("--modes", default=",".join(DEPTH_MODES),
                   help="comma-separated depth modes (default all)")
    p.add_argument("--quality", type=int, default=80, help="--quality of the server (default 80)")
    p.add_argument("--encoder", choices=("turbojpeg", "opencv"), default="turbojpeg",
                   help="JpegCodec backend for our columns (the floor is always libjpeg-turbo)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.setLevel(logging.INFO)  # pipeline_config() sets the root level from --log-level
    frames = make_frames(args.width, args.height, 10)
    raw = RawTurbo()
    cols = ("render_old", "render", "render_cpu", "enc_depth", "enc_color", "ours",
            "floor_parallel", "floor_serial", "ours_cpu", "floor_cpu", "ratio_parallel",
            "ratio_serial", "ratio_cpu", "kb_depth")
    logger.info("%dx%d, color q%d 4:2:0, %s, median of %d runs x %d frames (ms)",
                args.width, args.height, args.quality, args.encoder, args.runs, args.frames)
    logger.info("| mode | depth q / sampling | %s |", " | ".join(cols))
    logger.info("|---|---|%s", "---|" * len(cols))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="floor") as floor_pool:
        for mode in args.modes.split(","):
            cfg = make_config(mode, args.quality, args.encoder)
            r = run_mode(cfg, args, frames, raw, floor_pool)
            logger.info("| %s | q%d %s | %s |", mode, cfg.depth_quality, cfg.depth_subsampling,
                        " | ".join(f"{r[c]:.2f}" for c in cols))


if __name__ == "__main__":
    main()
