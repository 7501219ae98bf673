"""Depth in an MCAP file for docs/BENCHMARKS.md: 16-bit PNG against raw 16UC1 in zstd chunks.

    .venv/bin/python bench/bench_mcap_depth.py                  # 1280x720, 3 runs of 90 frames
    .venv/bin/python bench/bench_mcap_depth.py --runs 5 --frames 150

Each run writes the same depth frames through the SDK's MCAP writer with the recorder's
settings (zstd or lz4 chunks of MCAP_CHUNK_BYTES, one compression thread), once as the
recorder's `raw` (RawImage 16UC1) and once as its `png` (CompressedImage, the recorder's
own `encode_png`), and reports bytes of file per frame and CPU ms per frame (PNG encode
+ chunk compression + writing, one thread, `time.process_time`). Two scenes: the
synthetic source (noisy floor and wall, moving objects) and the depth of the RealSense
test recordings (tests/camera/rs_recording.py: a plane, a box, an invalid strip).
Prints Markdown; medians over the runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import foxglove  # noqa: E402
from foxglove.mcap import MCAPCompression, MCAPWriteOptions  # noqa: E402

from bench.common import bench_args, synthetic_depth  # noqa: E402
from robotics.depth import encode_png  # noqa: E402
from robotics.flavours import FoxgloveFlavour  # noqa: E402
from robotics.mcap_files import MCAP_CHUNK_BYTES  # noqa: E402
from tests.camera.rs_recording import scene_depth  # noqa: E402


def recording_frames(width: int, height: int, n: int) -> list[bytes]:
    base = scene_depth(width, height)
    out = []
    for i in range(n):
        d = base.copy()
        d[: height // 8, : width // 8] = 500 + 7 * i  # what the numbered test recording varies
        out.append(d.tobytes())
    return out


def write(frames: list[bytes], width: int, height: int, *, depth: str, chunks: str, path: Path
          ) -> tuple[float, float]:
    """(bytes per frame, CPU ms per frame) of `frames` written as the recorder would."""
    ctx = foxglove.Context()
    make = FoxgloveFlavour()
    writer = foxglove.open_mcap(path, allow_overwrite=True, context=ctx,
                                writer_options=MCAPWriteOptions(
                                    compression={"zstd": MCAPCompression.Zstd,
                                                 "lz4": MCAPCompression.Lz4}[chunks],
                                    chunk_size=MCAP_CHUNK_BYTES, compression_threads=0))
    channel = make.channel("depth" if depth == "raw" else "depth_png", "/camera/depth", ctx)
    t = time.process_time()
    for i, data in enumerate(frames):
        ts = 1.0 + i / 30
        if depth == "raw":
            msg = make.depth(data, width, height, ts, "depth")
        else:
            msg = make.depth_png(encode_png(data, width, height), ts, "depth")
        channel.log(msg, log_time=int(ts * 1e9))
    writer.close()
    cpu = time.process_time() - t
    return path.stat().st_size / len(frames), cpu / len(frames) * 1000


def main() -> None:
    a = bench_args(__doc__, width=1280, height=720, frames=90, runs=3)
    scenes = {"synthetic": [d.tobytes() for d in synthetic_depth(a.width, a.height, a.frames)],
              "test recording": recording_frames(a.width, a.height, a.frames)}
    print(f"{a.width}x{a.height}, {a.frames} frames, median of {a.runs} runs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} before the runs\n")
    print("| scene | depth | bytes per frame | CPU ms per frame | MB/s at 30 fps |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for scene, frames in scenes.items():
            for chunks in ("zstd", "lz4"):
                for depth in ("raw", "png"):
                    runs = [write(frames, a.width, a.height, depth=depth, chunks=chunks,
                                  path=Path(tmp) / "d.mcap")
                            for _ in range(a.runs)]
                    size = statistics.median(r[0] for r in runs)
                    ms = statistics.median(r[1] for r in runs)
                    label = "raw 16UC1" if depth == "raw" else "PNG level 1"
                    print(f"| {scene} | {label} + {chunks} chunks | {size / 1000:.1f} kB | "
                          f"{ms:.1f} | {size * 30 / 1e6:.2f} |")


if __name__ == "__main__":
    main()
