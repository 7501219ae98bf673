"""Depth as 10-bit video, rate against accuracy, for docs/DEPTH_VIDEO.md.

    .venv/bin/python bench/bench_depth_video.py                      # 848x480, 90 frames
    .venv/bin/python bench/bench_depth_video.py --width 1280 --height 720 --metric

Three scenes: the synthetic source (floor, wall, moving objects, sensor noise), the
known-depth test recording's plane and box, and that depth made to look like a D455's
(noise growing with the square of distance, speckle holes, flying pixels at the box's
edges). Each codec (H.264 High 10 through libx264 at several constant qualities under a
cap; SVT-AV1 10-bit and x265 10-bit at several bit rates) encodes the scene's frames with
media/depthcode.py's mapping over --depth-min/--depth-max and decodes them with
libavcodec. Reported per point: bit rate at 30 fps, the share of valid pixels decoded
within 1 % of the truth (median over frames, and the worst frame), invalid pixels read
as valid, and encode CPU ms per frame. `--metric` adds the /metric stream's bytes (hue-log
JPEG q90 4:4:4) on the same frames, the figure the video is compared against.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_args, synthetic_depth  # noqa: E402
from media.depth_video import DepthVideoDecoder, DepthVideoEncoder, VideoSettings  # noqa: E402
from media.depthcode import DepthCoder  # noqa: E402
from tests.camera.rs_recording import scene_depth, scene_regions  # noqa: E402

log = logging.getLogger("bench")
SCALE = 0.001  # metres per depth unit in every scene here

POINTS = [("h264", {"crf": c, "preset": "superfast"}) for c in (4, 8, 12, 16, 20)] + [
    ("av1", {"bitrate": b, "preset": "10"}) for b in (1_000_000, 2_000_000, 4_000_000)] + [
    ("hevc", {"bitrate": b, "preset": "ultrafast"}) for b in (1_000_000, 2_000_000, 4_000_000)]


def recording(width: int, height: int, n: int) -> list[np.ndarray]:
    base = scene_depth(width, height)
    return [base.copy() for _ in range(n)]


def d455_like(width: int, height: int, n: int) -> list[np.ndarray]:
    """The recording's scene with a D455's faults: noise ~ 0.1 % x d (in m) of d, 2 %
    speckle holes, and flying pixels (depths between box and plane) along the box's edge."""
    rng = np.random.default_rng(7)
    base = scene_depth(width, height).astype(np.float64)
    x0, y0, x1, y1 = scene_regions(width, height)["box"]
    edge = np.zeros((height, width), bool)
    edge[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = True
    edge[y0 + 2:y1 - 2, x0 + 2:x1 - 2] = False
    out = []
    for _ in range(n):
        d = base * (1 + rng.normal(0, 0.001, base.shape) * base / 1000.0)
        flying = edge & (rng.random(base.shape) < 0.5)
        d[flying] = rng.uniform(base[edge].min(), base[edge].max(), flying.sum())
        d[rng.random(base.shape) < 0.02] = 0
        d[base == 0] = 0
        out.append(np.clip(d, 0, 65535).astype(np.uint16))
    return out


def measure(frames: list[np.ndarray], coder: DepthCoder, codec: str, kw: dict
            ) -> dict[str, float]:
    h, w = frames[0].shape
    enc = DepthVideoEncoder(w, h, 30.0, VideoSettings(codec=codec, **kw))
    dec = DepthVideoDecoder(codec)
    size, cpu, decoded = 0, 0.0, []
    for d in frames:
        codes = coder.video_codes(d)
        t = time.process_time()
        aus = enc.encode(codes)
        cpu += time.process_time() - t
        for au in aus:
            size += len(au.data)
            decoded += dec.decode(au.data)
    for au in enc.flush():
        size += len(au.data)
        decoded += dec.decode(au.data)
    decoded += dec.flush()
    assert len(decoded) == len(frames), (codec, len(decoded))
    within, false_valid = [], 0
    for d, codes in zip(frames, decoded, strict=True):
        truth = d * SCALE
        got = coder.decode(codes)
        valid = (d > 0) & (truth >= coder.dmin) & (truth <= coder.dmax)
        within.append(float((np.abs(got[valid] - truth[valid]) <= 0.01 * truth[valid]).mean()))
        false_valid += int(((d == 0) & (got > 0)).sum())
    return {"mbps": size * 8 * 30 / len(frames) / 1e6, "within": statistics.median(within),
            "worst": min(within), "false_valid": false_valid / len(frames),
            "enc_ms": cpu / len(frames) * 1000}


def metric_mbps(frames: list[np.ndarray], dmin: float, dmax: float) -> float:
    """The /metric stream's bit rate at 30 fps on these frames (hue-log, q90, 4:4:4)."""
    from media.depth import render_depth_bgrx  # noqa: PLC0415
    from media.jpeg import JpegCodec, pick_backend  # noqa: PLC0415

    codec = JpegCodec(pick_backend())
    size = sum(len(codec.encode(render_depth_bgrx(d, "hue-log", dmin, dmax, SCALE)[:, :, :3],
                                90, "444")) for d in frames)
    return size * 8 * 30 / len(frames) / 1e6


def main() -> None:
    args = bench_args(__doc__, width=848, height=480, frames=90, depth_min=0.3,
                      depth_max=10.0, metric=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    coder = DepthCoder(args.depth_min, args.depth_max, SCALE)
    scenes = {"synthetic": synthetic_depth, "recording": recording, "D455-like": d455_like}
    print(f"\n{args.width}x{args.height}, {args.frames} frames at 30 fps, depth "
          f"{args.depth_min:g}-{args.depth_max:g} m (load average before: "
          f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)\n")
    for name, make in scenes.items():
        frames = make(args.width, args.height, args.frames)
        metric = (f" (/metric: {metric_mbps(frames, args.depth_min, args.depth_max):.1f} "
                  "Mbit/s)") if args.metric else ""
        print(f"\n**{name}**{metric}\n")
        print("| codec | setting | Mbit/s | valid within 1 % (median frame) | worst frame | "
              "invalid read as valid per frame | encode CPU ms |\n|---|---|---|---|---|---|---|")
        for codec, kw in POINTS:
            r = measure(frames, coder, codec, kw)
            setting = f"crf {kw['crf']}" if "crf" in kw else f"{kw['bitrate'] / 1e6:g} Mbit/s"
            print(f"| {codec} | {setting} | {r['mbps']:.2f} | {r['within'] * 100:.2f} % | "
                  f"{r['worst'] * 100:.2f} % | {r['false_valid']:.0f} | {r['enc_ms']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
