"""Foxglove messages built from what the rings and the capture process already hold.

No pixel is re-encoded here: the color JPEG goes out as it came from the encoder, depth
as the capture process wrote it (16-bit device units), the calibration from
`camera_model`, the same numbers as `/camera.json`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foxglove.messages import (
    CameraCalibration,
    CompressedImage,
    CompressedVideo,
    FrameTransform,
    LocationFix,
    LocationFixPositionCovarianceType,
    Quaternion,
    RawImage,
    Timestamp,
    Vector3,
)

TOPIC_COLOR = "/camera/color"
TOPIC_DEPTH = "/camera/depth"
TOPIC_H264 = "/camera/h264"
TOPIC_CALIBRATION = "/camera/calibration"
TOPIC_GPS = "/gps"
TOPIC_TF = "/tf"
GPS_FRAME_ID = "gps"
BODY_FRAME_ID = "camera_link"
"""The camera body (x forward, y left, z up), parent of the optical frame, as in realsense-ros."""
OPTICAL_IN_BODY = (-0.5, 0.5, -0.5, 0.5)
"""Rotation (x, y, z, w) of the optical frame (z forward, x right, y down) in the body frame."""


def stamp(ts: float) -> Timestamp:
    """A protobuf timestamp of seconds since the epoch."""
    return Timestamp.from_epoch_secs(ts)


def color_message(jpeg: bytes, ts: float, frame_id: str) -> CompressedImage:
    """The encoder's JPEG as a foxglove.CompressedImage (format jpeg)."""
    return CompressedImage(timestamp=stamp(ts), frame_id=frame_id, data=jpeg, format="jpeg")


def video_message(access_unit: bytes, ts: float, frame_id: str) -> CompressedVideo:
    """One H.264 access unit (Annex B; SPS/PPS before each IDR) as foxglove.CompressedVideo."""
    return CompressedVideo(timestamp=stamp(ts), frame_id=frame_id, data=access_unit,
                           format="h264")


def depth_message(depth: bytes, width: int, height: int, ts: float,
                  frame_id: str) -> RawImage:
    """Depth in device units (see the channel's depth_scale) as a 16UC1 foxglove.RawImage."""
    return RawImage(timestamp=stamp(ts), frame_id=frame_id, width=width, height=height,
                    encoding="16UC1", step=width * 2, data=depth)


def depth_png_message(png: bytes, ts: float, frame_id: str) -> CompressedImage:
    """Depth in device units as a lossless 16-bit PNG foxglove.CompressedImage (format png)."""
    return CompressedImage(timestamp=stamp(ts), frame_id=frame_id, data=png, format="png")


def distortion_model(model: str) -> str:
    """librealsense's distortion name in ROS/Foxglove terms."""
    return "kannala_brandt" if "kannala" in model or "ftheta" in model else "plumb_bob"


def calibration_fields(model: dict[str, Any]) -> dict[str, Any]:
    """CameraCalibration fields (K, P row-major 3x3 and 3x4; R identity) of a camera_model."""
    i = model["intrinsics"]
    fx, fy, cx, cy = float(i["fx"]), float(i["fy"]), float(i["ppx"]), float(i["ppy"])
    coeffs = [float(c) for c in i.get("coeffs", [])]
    dist = distortion_model(str(i.get("model", "none")))
    if dist == "plumb_bob":
        coeffs = (coeffs + [0.0] * 5)[:5]
    return {
        "frame_id": model["frame_id"],
        "width": int(i["width"]), "height": int(i["height"]),
        "distortion_model": dist, "D": coeffs,
        "K": [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        "R": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "P": [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    }


def calibration_message(model: dict[str, Any], ts: float) -> CameraCalibration:
    """foxglove.CameraCalibration of the image depth is aligned to."""
    return CameraCalibration(timestamp=stamp(ts), **calibration_fields(model))


def fix_time(iso: str, fallback: float) -> float:
    """Seconds since the epoch of a gpsd-style ISO time, or `fallback` if it does not parse."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback


def gps_message(lat: float, lon: float, alt: float | None, ts: float) -> LocationFix:
    """A foxglove.LocationFix (WGS 84 degrees, metres) with unknown covariance."""
    return LocationFix(
        timestamp=stamp(ts), frame_id=GPS_FRAME_ID, latitude=lat, longitude=lon,
        altitude=alt if alt is not None else 0.0,
        position_covariance=[0.0] * 9,
        position_covariance_type=LocationFixPositionCovarianceType.Unknown,
    )


def optical_transform(ts: float, frame_id: str, parent: str = BODY_FRAME_ID) -> FrameTransform:
    """camera_link (`parent`) -> the optical frame, so a 3D view built in camera_link
    stands upright."""
    x, y, z, w = OPTICAL_IN_BODY
    return FrameTransform(timestamp=stamp(ts), parent_frame_id=parent,
                          child_frame_id=frame_id, translation=Vector3(x=0.0, y=0.0, z=0.0),
                          rotation=Quaternion(x=x, y=y, z=z, w=w))
