"""/depth-video: the depth-video ring to each client, every access unit in order.

Unlike the MJPEG streams (newest frame wins), a video client needs every access unit
from a keyframe on. One pump greenlet turns the stage's wake-ups into a gevent event;
each client follows the ring in order (pipeline.shm.Follower). A client that falls so
far behind that the ring laps it, or that just joined, skips to the next keyframe and
asks the stage for one (rate-limited there). The response is multipart, as the other
streams: each part is one Annex B access unit (`Content-Type: video/h264`) with
`X-Frame`, `X-Timestamp` (capture time) and `X-Keyframe`; the response's headers say how
to turn the decoded 10-bit luma into metres (`X-Depth-*`, media/depthcode.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.select

from media.depth_video import webcodecs_codec
from media.depthcode import mapping_doc
from pipeline.child import drain
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_KEYFRAME, Follower, FrameRing, SlotMeta
from web.channel import CLOSE, OPEN

log = logging.getLogger("web")

IDLE_WAIT_S = 1.0
"""A client with nothing to send checks for new units at least this often."""


def coding(cfg: Config) -> dict[str, Any]:
    """How to read the stream's 10-bit luma as metres (media/depthcode.py), for
    /camera.json."""
    return mapping_doc(cfg.depth_min, cfg.depth_max)


def coding_headers(cfg: Config) -> dict[str, str]:
    """The same as response headers: X-Depth-Coding, X-Depth-Min, ... X-Depth-Invalid-Below."""
    return {"X-Depth-" + "-".join(w.capitalize() for w in k.split("_")): f"{v:g}"
            if isinstance(v, float) else str(v) for k, v in coding(cfg).items()}


def part(meta: SlotMeta, data: bytes) -> bytes:
    """One multipart part: headers, the access unit, the next boundary."""
    return (f"Content-Type: video/h264\r\nContent-Length: {len(data)}\r\n"
            f"X-Frame: {meta.frame_no}\r\nX-Timestamp: {meta.ts_capture:.6f}\r\n"
            f"X-Keyframe: {1 if meta.flags & FLAG_KEYFRAME else 0}\r\n"
            f"X-Width: {meta.width}\r\nX-Height: {meta.height}\r\n\r\n"
            ).encode() + data + CLOSE


class DepthVideoFeed:
    """The web's side of the depth-video ring: wake-ups, clients, keyframe requests."""

    def __init__(self, cfg: Config, ring: FrameRing, wake_r: Any, control: Control) -> None:
        self.cfg, self.ring, self.wake_r, self.control = cfg, ring, wake_r, control
        self.viewers = 0
        control["dv_viewers"] = 0
        self._event = gevent.event.Event()
        self._pump: gevent.Greenlet | None = None

    def start(self) -> None:
        self._pump = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.kill(block=False)

    def _run(self) -> None:
        fd = self.wake_r.fileno()
        while True:
            readable, _, _ = gevent.select.select([fd], [], [], IDLE_WAIT_S)
            if readable:
                drain(self.wake_r)
                event, self._event = self._event, gevent.event.Event()
                event.set()

    def codec(self) -> str:
        """The WebCodecs codec string at the size the stream has now (capture's size)."""
        return webcodecs_codec("h264", self.cfg.width & ~1, self.cfg.height & ~1)

    def _count(self, delta: int) -> None:
        self.viewers += delta
        self.control["dv_viewers"] = self.viewers

    def stream(self) -> Iterator[bytes]:
        """The parts for one client: every access unit from the next keyframe on."""
        follower = Follower(self.ring)
        self._count(+1)
        self.control.add("dv_keyframe_requests")
        synced, lost = False, 0
        try:
            yield OPEN
            while True:
                units = follower.new()
                if follower.lost != lost:
                    lost = follower.lost
                    if synced:
                        log.debug("a depth-video client fell behind; resuming at a keyframe")
                        self.control.add("dv_keyframe_requests")
                    synced = False
                if not units:
                    self._event.wait(IDLE_WAIT_S)
                    continue
                for meta, data in units:
                    if not synced and not meta.flags & FLAG_KEYFRAME:
                        continue
                    synced = True
                    yield part(meta, data)
        finally:
            self._count(-1)
