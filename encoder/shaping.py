"""Frame shaping a sink asked for: a lower JPEG quality or a narrower frame for one stream.

The adaptive push writes `push_quality_<stream>` and `push_width_<stream>` into the
control block; the encoder applies them here, so a thin link gets smaller frames that
are still encoded once, where every other JPEG is. Zero means "as configured", and a
request never raises quality or enlarges a frame. A request is honoured only while the
push is the stream's only reader: the ring is shared, and a recording, a Foxglove client
or a web viewer must not get the thin link's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.control import Control


@dataclass(frozen=True)
class Shape:
    """Quality and width asked for one stream (0: as configured)."""

    quality: int = 0
    width: int = 0

    def __bool__(self) -> bool:
        return bool(self.quality or self.width)


AS_CONFIGURED = Shape()


def requested(control: Control | None, stream: str) -> Shape:
    """The push's request for `stream`, or none while anyone else also reads that ring."""
    if control is None:
        return AS_CONFIGURED
    shape = Shape(int(control[f"push_quality_{stream}"]), int(control[f"push_width_{stream}"]))
    if not shape or control.viewers(stream) > control[f"sink_{stream}"]:
        return AS_CONFIGURED
    return shape


def apply_shape(shape: Shape, img: np.ndarray, quality: int, *,
                nearest: bool = False) -> tuple[np.ndarray, int]:
    """(image, quality) to encode under `shape`; `nearest` keeps coded depth values whole."""
    if 0 < shape.quality < quality:
        quality = shape.quality
    w = img.shape[1]
    if 16 <= shape.width < w:
        h = max(2, round(img.shape[0] * shape.width / w / 2) * 2)
        img = cv2.resize(img, (shape.width, h),
                         interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return img, quality


def requested_shape(control: Control | None, stream: str, img: np.ndarray,
                    quality: int) -> tuple[np.ndarray, int]:
    """(image, quality) to encode for `stream`, after any request in the control block."""
    return apply_shape(requested(control, stream), img, quality)
