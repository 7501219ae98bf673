"""Depth for machines: one exact depth frame as 16-bit PNG, and the camera model as JSON.

`/depth.png` copies the newest aligned depth out of the raw ring (exactly the values the
capture process wrote, in device units) and `/camera.json` tells a client everything it
needs to turn a pixel of the color image, or of the metric stream, into a 3D point. Both
answer 409 for a source without depth and 503 while no frame arrives.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import gevent
import numpy as np
from flask import Blueprint, Response, abort, jsonify, request

from media.geometry import camera_model
from media.hue import HUE_MODES
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_HAS_DEPTH, FLAG_NO_SIGNAL, FrameRing, SlotMeta, TornRead

PAGE_VIEWS = ("2d", "3d")
"""What /?view= accepts: the two images with the depth tools, or the point cloud."""
FRESH_TIMEOUT_S = 5.0
POLL_S = 0.005
PNG_COMPRESSION = 1
"""zlib level 1: about as small as level 6 for depth, several times faster."""


def metric_encoding(cfg: Config) -> dict[str, Any]:
    """How the metric stream codes depth, and where to find it."""
    return {"route": "/metric", "snapshot": "/metric.jpg", "format": "image/jpeg",
            "mode": cfg.metric.mode, "mapping": HUE_MODES[cfg.metric.mode],
            "min": cfg.depth_min, "max": cfg.depth_max, "units": "m",
            "quality": cfg.metric.quality, "subsampling": cfg.metric.subsampling}


def read_depth(ring: FrameRing, after: int) -> tuple[SlotMeta, np.ndarray] | None:
    """Copy the depth of the newest frame with depth published after counter `after`."""
    counter, slot = ring.latest()
    if counter <= after:
        return None
    try:
        seq, meta = ring.read_meta(slot, counter)
    except TornRead:
        return None
    if meta.flags & FLAG_NO_SIGNAL or not meta.flags & FLAG_HAS_DEPTH:
        return None
    if meta.len1 != meta.width * meta.height * 2 or meta.len0 + meta.len1 > ring.capacity:
        return None
    depth = np.ndarray((meta.height, meta.width), np.uint16, buffer=ring.payload(slot),
                       offset=meta.len0).copy()
    if not ring.still_valid(slot, seq):
        return None
    return meta, depth


def depth_api(cfg: Config, control: Control, raw: FrameRing | None,
              depth_video: dict[str, Any] | None = None) -> Blueprint:
    """Routes /depth.png and /camera.json, and the no-depth answer for /metric and
    /depth-video (`depth_video`: how that stream codes depth, when it runs)."""
    bp = Blueprint("depth_api", __name__)

    def model_or_abort(meta: SlotMeta | None = None) -> dict[str, Any]:
        info = control.info()
        if not info:
            abort(503, description="the source has not started yet")
        if meta is not None:
            info = {**info, "width": meta.width, "height": meta.height}
        model = camera_model(info)
        if model is None:
            abort(409, description=f"the source ({info.get('kind', '?')}) has no depth")
        return model

    @bp.before_app_request
    def _metric_needs_depth() -> None:
        if request.path in ("/metric", "/metric.jpg", "/depth-video"):
            info = control.info()
            if info and camera_model(info) is None:  # before the source starts: let it wait
                abort(409, description=f"the source ({info.get('kind', '?')}) has no depth")

    def latest_meta() -> SlotMeta | None:
        if raw is None:
            return None
        counter, slot = raw.latest()
        try:
            return raw.read_meta(slot, counter)[1] if counter else None
        except TornRead:
            return None

    @bp.get("/camera.json")
    def camera_json() -> Response:
        _only_token()
        model = model_or_abort(latest_meta())
        return jsonify({**model, "metric": metric_encoding(cfg),
                        "depth_video": depth_video,
                        "depth_png": "/depth.png", "color": "/color",
                        "color_snapshot": "/color.jpg"})

    @bp.get("/depth.png")
    def depth_png() -> Response:
        _only_token()
        model_or_abort()
        if raw is None:
            abort(503, description="no raw frames in this process")
        start = raw.counter()
        deadline = time.monotonic() + FRESH_TIMEOUT_S
        got = read_depth(raw, start)
        while got is None:
            if time.monotonic() > deadline:
                abort(503, description="no depth frame within the timeout")
            gevent.sleep(POLL_S)
            got = read_depth(raw, start)
        meta, depth = got
        # Several ms for a 720p frame: in a worker thread (OpenCV lets go of the GIL), so the
        # event loop keeps feeding every stream client meanwhile.
        ok, png = gevent.get_hub().threadpool.apply(
            cv2.imencode, (".png", depth, (cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION)))
        if not ok:
            abort(503, description="PNG encoding failed")
        resp = Response(png.tobytes(), mimetype="image/png")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Timestamp"] = f"{meta.ts_capture:.6f}"
        resp.headers["X-Frame"] = str(meta.frame_no)
        resp.headers["X-Depth-Scale"] = repr(float(meta.depth_scale))
        resp.headers["X-Depth-Units"] = "device"
        return resp

    return bp


def _only_token() -> None:
    unknown = set(request.args) - {"token"}
    if unknown:
        abort(400, description=f"unknown query parameter(s): {', '.join(sorted(unknown))}")
