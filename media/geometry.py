"""Camera geometry, computed once: the intrinsics a client needs to turn a pixel into a point.

Every consumer (`/camera.json`, the page's ruler and point cloud, the Python client,
Foxglove's CameraCalibration) takes the model from `camera_model(info)`, where `info` is
what the capture process publishes for its source, so the numbers agree everywhere.
Depth is aligned to the color image unless the source says otherwise, so the model is the
color stream's; unaligned depth gets the depth stream's own intrinsics.
"""

from __future__ import annotations

import math
from typing import Any

from numpy.typing import ArrayLike

SYNTHETIC_HFOV_DEG = 90.0
"""The synthetic scene's horizontal field of view, about a D455 color camera's."""
SYNTHETIC_CAMERA_HEIGHT_M = 0.5
"""Height of the synthetic camera above its floor plane (metres)."""
SYNTHETIC_WALL_M = 4.5
"""Distance from the synthetic camera to its back wall (metres)."""
FRAME_ID = "camera_color_optical_frame"
"""Frame of reference of the images and points (ROS's name for the color optical frame)."""


def synthetic_intrinsics(width: int, height: int) -> dict[str, Any]:
    """Pinhole intrinsics of the synthetic scene: square pixels, centred, no distortion."""
    f = width / 2.0 / math.tan(math.radians(SYNTHETIC_HFOV_DEG) / 2.0)
    return {"width": width, "height": height, "fx": f, "fy": f,
            "ppx": width / 2.0, "ppy": height / 2.0, "model": "none", "coeffs": [0.0] * 5}


def scaled_intrinsics(intr: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """Intrinsics of a stream resized to width x height (the raw ring may shrink frames)."""
    w0, h0 = intr.get("width") or width, intr.get("height") or height
    if (w0, h0) == (width, height):
        return dict(intr)
    sx, sy = width / w0, height / h0
    return {**intr, "width": width, "height": height, "fx": intr["fx"] * sx,
            "fy": intr["fy"] * sy, "ppx": intr["ppx"] * sx, "ppy": intr["ppy"] * sy}


def camera_model(info: dict[str, Any]) -> dict[str, Any] | None:
    """Intrinsics and depth scale of the image depth is aligned to; None without depth.

    `info` is the capture process's source description (`Control.info()`).
    """
    scale = info.get("depth_scale")
    if not scale:
        return None
    if info.get("intrinsics"):
        intr = info["intrinsics"]
    elif info.get("depth_aligned_to_color", True) and info.get("color_intrinsics"):
        intr = info["color_intrinsics"]
    elif info.get("depth_intrinsics"):
        intr = info["depth_intrinsics"]
    else:
        return None
    width = int(info.get("width") or intr["width"])
    height = int(info.get("height") or intr["height"])
    out = scaled_intrinsics(intr, width, height)
    out["coeffs"] = [float(c) for c in out.get("coeffs", [0.0] * 5)]
    out["model"] = str(out.get("model", "none"))
    return {"frame_id": FRAME_ID, "depth_scale": float(scale), "intrinsics": out}


def deproject(intr: dict[str, Any], x: ArrayLike, y: ArrayLike, z: ArrayLike
              ) -> tuple[Any, Any, Any]:
    """The 3D point (metres, camera frame: x right, y down, z forward) of pixel (x, y) at depth z.

    Works on scalars and numpy arrays alike. Distortion is ignored: the D455 reports none
    for color (Brown-Conrady with zero or near-zero coefficients) and aligned depth shares
    that image.
    """
    return ((x - intr["ppx"]) / intr["fx"] * z, (y - intr["ppy"]) / intr["fy"] * z, z)
