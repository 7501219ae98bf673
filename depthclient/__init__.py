"""A Python client for the camera server's depth: frames in metres and point clouds.

    from depthclient import DepthClient
    cam = DepthClient("http://host:5000", token="...")
    for color_bgr, depth_m, timestamp in cam.frames(max_frames=10):
        xyz, rgb = cam.point_cloud(depth_m, color_bgr, step=2)

`frames()` follows the metric stream (/metric, hue-coded JPEG, decoded within ~1 %) paired
with /color by frame number; `snapshot()` reads one exact frame from /depth.png (16-bit PNG,
lossless) and /color.jpg. `/camera.json` supplies the intrinsics and the metric coding.
Depth is float32 metres with 0 where the camera saw nothing; `depth_at`, `point_at` and
`measure` (also as DepthClient methods) take the nearest pixel with depth within
SNAP_RADIUS pixels where a pixel has none, as the page does.
"""

from __future__ import annotations

from depthclient.client import (
    SNAP_RADIUS,
    DepthClient,
    Frame,
    Point,
    deproject_image,
    depth_at,
    measure,
    nearest_depth,
    point_at,
)
from depthclient.stream import MultipartReader

__all__ = ["SNAP_RADIUS", "DepthClient", "Frame", "MultipartReader", "Point", "deproject_image",
           "depth_at", "measure", "nearest_depth", "point_at"]
