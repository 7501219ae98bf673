"""Generated stand-in frames: "NO SIGNAL - reason" and "no depth for this source".

Clients keep their connections through an outage because these still travel as normal
multipart parts; the clock drawn in shows the stream is alive.
"""

from __future__ import annotations

import time
from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=8)
def _base(width: int, height: int, title: str, reason: str) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :] = (40, 24, 24)
    for x in range(-height, width, max(width // 24, 8)):
        cv2.line(img, (x, 0), (x + height, height), (56, 36, 36), max(width // 160, 2))
    scale = max(min(width, 1280) / 640, 0.35)
    size, _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_DUPLEX, scale * 1.6, 3)
    org = ((width - size[0]) // 2, height // 2)
    cv2.putText(img, title, org, cv2.FONT_HERSHEY_DUPLEX, scale * 1.6, (80, 80, 255), 3,
                cv2.LINE_AA)
    text = reason[:120]
    rsize, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.6, 1)
    if rsize[0] > width - 20:
        scale_r = scale * 0.6 * (width - 20) / rsize[0]
    else:
        scale_r = scale * 0.6
    rsize, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale_r, 1)
    cv2.putText(img, text, ((width - rsize[0]) // 2, height // 2 + int(50 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, scale_r, (230, 230, 230), 1, cv2.LINE_AA)
    return img


def render_no_signal(width: int, height: int, reason: str, now: float | None = None) -> np.ndarray:
    """A BGR frame saying NO SIGNAL with the reason and the current time."""
    img = _base(width, height, "NO SIGNAL", reason).copy()
    _stamp(img, now)
    return img


def render_no_depth(width: int, height: int) -> np.ndarray:
    """A BGR frame for the depth stream of a source that has no depth."""
    return _base(width, height, "NO DEPTH", "this source has no depth stream").copy()


def _stamp(img: np.ndarray, now: float | None) -> None:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    scale = max(img.shape[1] / 1280, 0.35)
    cv2.putText(img, stamp, (int(12 * scale), img.shape[0] - int(16 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, (200, 200, 200), 1, cv2.LINE_AA)
