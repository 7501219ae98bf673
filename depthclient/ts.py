"""Turn a recorded MPEG-TS of `app_https_client.py --format h264 --depth` into metres.

    python3 -m depthclient.ts rx.ts OUT_DIR            # an .npz per depth frame
    python3 -m depthclient.ts rx.ts OUT_DIR --ply      # and a coloured .ply per frame

The push carries colour (H.264) and the depth video (10-bit H.264) in one TS; a receiver
keeps both with `ffmpeg -listen 1 -f mpegts -i http://HOST:PORT -map 0 -c copy rx.ts`.
The depth stream says how to read it in an SEI on every keyframe (media/depth_video.py):
the log mapping and the camera's intrinsics. Each .npz holds `depth_m` (float32 metres,
0 = no depth), `pts` (the capture time as the 90 kHz PTS, seconds modulo 2**33 ticks),
`color_bgr` (the colour frame of the same capture time, when the file has it) and
`intrinsics` (JSON). Frames before the first keyframe with the mapping are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from depthclient.client import deproject_image
from depthclient.ply import write_ply
from media.depth_video import DepthVideoDecoder, read_mapping
from media.depthcode import DepthCoder
from media.geometry import scaled_intrinsics

log = logging.getLogger("depthclient.ts")

PAIR_TOLERANCE_S = 0.5 / 30
"""Colour and depth of one capture share its time stamp; this far apart still pairs."""


class TsFrame(NamedTuple):
    """One depth frame of the file, with the colour of the same capture where there is one."""

    depth_m: np.ndarray
    pts: float
    color_bgr: np.ndarray | None
    intrinsics: dict[str, Any] | None


def _depth_stream(container: Any) -> Any:
    """The video stream that carries the depth mapping (the 10-bit one)."""
    for stream in container.streams.video:
        if stream.codec_context.pix_fmt == "yuv420p10le" or stream.profile == "High 10":
            return stream
    raise ValueError("no depth video in this file (push with --format h264 --depth, and "
                     "receive with -map 0 so ffmpeg keeps both streams)")


def read_ts(path: str | Path) -> Iterator[TsFrame]:
    """The depth frames of a recorded TS, in order, as metres."""
    import av  # noqa: PLC0415

    with av.open(str(path)) as container:
        depth = _depth_stream(container)
        colour = next((s for s in container.streams.video if s is not depth), None)
        decoder = DepthVideoDecoder()
        coder: DepthCoder | None = None
        intrinsics: dict[str, Any] | None = None
        colours: dict[float, np.ndarray] = {}
        waiting: list[tuple[float, np.ndarray]] = []
        streams = [depth] + ([colour] if colour is not None else [])
        for packet in container.demux(*streams):
            if packet.stream is colour:
                for frame in packet.decode():
                    colours[float(frame.time)] = frame.to_ndarray(format="bgr24")
                continue
            data = bytes(packet)
            if not data:
                continue
            doc = read_mapping(data)
            if doc is not None:
                coder = DepthCoder(float(doc["min"]), float(doc["max"]), 0.001)
                intrinsics = doc.get("intrinsics")
            if coder is None:
                continue  # before the first keyframe that says how to read it
            for codes in decoder.decode(data):
                waiting.append((float(packet.pts * packet.time_base), coder.decode(codes)))
            yield from _paired(waiting, colours, intrinsics, final=False)
        yield from _paired(waiting, colours, intrinsics, final=True)


def _paired(waiting: list[tuple[float, np.ndarray]], colours: dict[float, np.ndarray],
            intrinsics: dict[str, Any] | None, *, final: bool) -> Iterator[TsFrame]:
    """Depth frames whose colour has been decoded (or, at the end, all), paired by time."""
    newest = max(colours, default=None)
    while waiting and (final or (newest is not None and newest >= waiting[0][0])):
        pts, depth_m = waiting.pop(0)
        near = min(colours, key=lambda t: abs(t - pts), default=None)
        color = colours[near] if near is not None and abs(near - pts) <= PAIR_TOLERANCE_S \
            else None
        for t in [t for t in colours if t < pts - 1.0]:
            del colours[t]  # colour more than a second older than depth pairs with nothing
        yield TsFrame(depth_m, pts, color, intrinsics)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m depthclient.ts",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("ts", help="the recorded MPEG-TS")
    p.add_argument("out", help="directory for the frames (made if missing)")
    p.add_argument("--ply", action="store_true",
                   help="also write a coloured point cloud per frame (needs the intrinsics "
                   "the stream carries)")
    p.add_argument("--step", type=int, default=1, help="PLY: keep every N-th pixel (default 1)")
    a = p.parse_args(argv)
    if a.step < 1:
        p.error("--step must be 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(a.out)
    n = 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        for n, frame in enumerate(read_ts(a.ts), start=1):
            arrays: dict[str, Any] = {"depth_m": frame.depth_m, "pts": frame.pts,
                                      "intrinsics": json.dumps(frame.intrinsics)}
            if frame.color_bgr is not None:
                arrays["color_bgr"] = frame.color_bgr
            np.savez_compressed(out / f"frame_{n:06d}.npz", **arrays)
            if a.ply:
                if frame.intrinsics is None:
                    raise ValueError("the stream carries no intrinsics: no point cloud")
                h, w = frame.depth_m.shape
                xyz, idx = deproject_image(frame.depth_m, scaled_intrinsics(
                    frame.intrinsics, w, h), a.step)
                rgb = (frame.color_bgr[idx[:, 0], idx[:, 1], ::-1] if frame.color_bgr is not None
                       else np.full((len(xyz), 3), 255, np.uint8))
                write_ply(out / f"frame_{n:06d}.ply", xyz, rgb)
    except (OSError, ValueError) as exc:
        log.error("depthclient.ts: %s", exc)
        return 1
    log.info("wrote %d depth frames to %s", n, out)
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
