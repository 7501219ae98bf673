"""Depth for the MCAP file: 16-bit PNG encoded beside the publisher, and which frames went out.

`PngEncoder` turns 16-bit depth into lossless PNG on worker threads (OpenCV releases the
GIL while it compresses), returns the results in the order they were submitted, and
drops a frame rather than queue it when the workers fall behind, so the publisher
(and with it color) never waits for an encode. `FrameSpan` is the account of the depth
frames one file holds: first and last capture frame number, how many, how many missed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("robotics")

PNG_LEVEL = 1
"""zlib level 1: within a few per cent of level 9's size on depth, at a fraction of the CPU."""
PNG_WORKERS = 2
PNG_BACKLOG = 4
"""Frames being encoded at most; a newer frame is dropped (and counted) beyond this."""
DROP_LOG_PERIOD_S = 10.0


def encode_png(data: bytes, width: int, height: int) -> bytes:
    """16-bit little-endian depth (device units) as a lossless 16-bit grey PNG."""
    depth = np.frombuffer(data, np.dtype("<u2"), width * height).reshape(height, width)
    ok, png = cv2.imencode(".png", depth, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise ValueError(f"PNG encoding of a {width}x{height} depth frame failed")
    return png.tobytes()


class PngEncoder:
    """Depth frames to PNG on worker threads, handed back in order; drops when behind."""

    def __init__(self, workers: int = PNG_WORKERS, backlog: int = PNG_BACKLOG) -> None:
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="depth-png")
        self.pending: deque[tuple[Future[bytes], Any]] = deque()
        self.backlog = backlog
        self.dropped = 0
        self.logged_drops = 0
        self.next_log = 0.0

    def submit(self, data: bytes, width: int, height: int, tag: Any) -> bool:
        """Start encoding a frame (`tag` comes back with it); False if it was dropped."""
        if len(self.pending) >= self.backlog:
            self.dropped += 1
            now = time.monotonic()
            if now >= self.next_log:
                self.next_log = now + DROP_LOG_PERIOD_S
                log.warning("depth PNG encoding falls behind: %d depth frames dropped so far "
                            "(color is not affected)", self.dropped)
            return False
        self.pending.append((self.pool.submit(encode_png, data, width, height), tag))
        return True

    def finished(self, wait: bool = False) -> list[tuple[bytes, Any]]:
        """(png, tag) of the frames encoded so far, in submission order; `wait`: all of them."""
        out = []
        while self.pending and (wait or self.pending[0][0].done()):
            future, tag = self.pending.popleft()
            out.append((future.result(), tag))
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class FrameSpan:
    """The depth frames of one file: capture frame numbers, count and frames missed.

    `previous` is the last frame number of the file before, so a frame lost at the
    boundary counts as missed in the new file.
    """

    def __init__(self, previous: int | None = None) -> None:
        self.first: int | None = None
        self.last = previous
        self.messages = 0
        self.missed = 0

    def add(self, frame_no: int) -> None:
        if self.last is not None and frame_no > self.last:
            self.missed += frame_no - self.last - 1  # a restarted source counts nothing
        if self.first is None:
            self.first = frame_no
        self.last = frame_no
        self.messages += 1

    def record(self) -> dict[str, str]:
        """The MCAP metadata of the span (empty values when the file has no depth)."""
        return {"depth_first_frame": "" if self.first is None else str(self.first),
                "depth_last_frame": "" if self.first is None else str(self.last),
                "depth_messages": str(self.messages), "depth_missed": str(self.missed)}
