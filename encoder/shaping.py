"""Frame shaping a sink asked for: a lower JPEG quality or a narrower frame for one stream.

The adaptive push writes `push_quality_<stream>` and `push_width_<stream>` into the
control block; the encoder applies them here, so a thin link gets smaller frames that
are still encoded once, where every other JPEG is. Zero means "as configured", and a
request never raises quality or enlarges a frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.control import Control


def requested_shape(control: Control | None, stream: str, img: np.ndarray,
                    quality: int) -> tuple[np.ndarray, int]:
    """(image, quality) to encode for `stream`, after any request in the control block."""
    if control is None:
        return img, quality
    want_q = int(control[f"push_quality_{stream}"])
    want_w = int(control[f"push_width_{stream}"])
    if 0 < want_q < quality:
        quality = want_q
    w = img.shape[1]
    if 16 <= want_w < w:
        h = max(2, round(img.shape[0] * want_w / w / 2) * 2)
        img = cv2.resize(img, (want_w, h), interpolation=cv2.INTER_AREA)
    return img, quality
