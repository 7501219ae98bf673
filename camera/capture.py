"""The capture process: read the source, write frames into the raw ring, never wait.

The capture loop owns the source's lifecycle: it opens it, counts missed frames, and
when the source is lost (unplugged, recording ended, pusher gone) it closes it, shows
NO SIGNAL frames with the reason while it reopens with backoff, and resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from camera.base import Frame, FrameSource, SourceConfigError, SourceError, SourceWaiting
from camera.factory import make_source
from camera.imu_feed import ImuWriter
from media.nosignal import render_no_signal
from pipeline.child import EXIT_CONFIG, CannotStart, Child, set_nonblocking_writer, wake
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_HAS_DEPTH, FLAG_NO_SIGNAL, FrameRing

log = logging.getLogger("capture")

MISSES_BEFORE_LOST = 3
NO_SIGNAL_PERIOD = 0.5
BACKOFF_MIN, BACKOFF_MAX = 0.5, 5.0


class RawWriter:
    """Writes frames into the raw ring and wakes the encoder."""

    def __init__(self, ring: FrameRing, control: Control, waker: object,
                 also_wake: tuple[object, ...] = ()) -> None:
        self.ring, self.control, self.waker = ring, control, waker
        self.also_wake = also_wake
        self.frame_no = 0
        self._fps_t = time.monotonic()
        self._fps_n = 0

    def write(self, color: np.ndarray, depth: np.ndarray | None, ts: float, scale: float,
              flags: int = 0) -> None:
        """Copy one frame into the next slot (shrinking it if it cannot fit) and publish."""
        h, w = color.shape[:2]
        need = color.nbytes + (depth.nbytes if depth is not None else 0)
        if need > self.ring.capacity:
            f = (self.ring.capacity / need) ** 0.5
            size = (max(int(w * f) - 1, 1), max(int(h * f) - 1, 1))
            color = cv2.resize(color, size, interpolation=cv2.INTER_AREA)
            if depth is not None:
                depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
            h, w = color.shape[:2]
        slot, view = self.ring.begin_write()
        n0 = h * w * 3
        np.copyto(np.ndarray((h, w, 3), np.uint8, buffer=view), color)
        n1 = 0
        if depth is not None:
            n1 = h * w * 2
            np.copyto(np.ndarray((h, w), np.uint16, buffer=view, offset=n0), depth)
            flags |= FLAG_HAS_DEPTH
        self.frame_no += 1
        self.ring.end_write(slot, frame_no=self.frame_no, ts_capture=ts, width=w, height=h,
                            len0=n0, len1=n1, flags=flags, depth_scale=scale)
        wake(self.waker)
        for also in self.also_wake:
            wake(also)
        self._count()

    def _count(self) -> None:
        c = self.control
        c.add("frames_captured")
        self._fps_n += 1
        now = time.monotonic()
        if now - self._fps_t >= 1.0:
            c["capture_fps"] = self._fps_n / (now - self._fps_t)
            self._fps_t, self._fps_n = now, 0


class CaptureLoop:
    """Drives one FrameSource: open, read, pace, recover."""

    def __init__(self, cfg: Config, source: FrameSource, writer: RawWriter,
                 control: Control, stop: threading.Event, *,
                 beat: Callable[[], None], imu: ImuWriter | None = None) -> None:
        self.cfg, self.source, self.writer, self.control, self.stop = (
            cfg, source, writer, control, stop)
        self.beat = beat
        self.imu = imu
        self.period = 1.0 / (source.pace_fps or cfg.fps)
        self.size = (cfg.width, cfg.height)
        self._last_no_signal = 0.0

    def no_signal(self, reason: str, duration: float) -> None:
        """Show NO SIGNAL frames for `duration` seconds (or until stopped)."""
        self.control["source_ok"] = 0
        end = time.monotonic() + duration
        while not self.stop.is_set():
            self.beat()
            img = render_no_signal(self.size[0], self.size[1], reason)
            self.writer.write(img, None, time.time(), 0.0, FLAG_NO_SIGNAL)
            left = end - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(NO_SIGNAL_PERIOD, left))

    def open_source(self) -> bool:
        """Open the source, retrying with backoff; False only when stopping. A source
        that cannot start at all ends the child, unless it is one camera of several: then
        it is retried too, its reason said once."""
        backoff = BACKOFF_MIN
        said = ""
        while not self.stop.is_set():
            try:
                self.source.open()
            except SourceConfigError as exc:
                if not self.cfg.retry_config:
                    raise CannotStart(f"source: {exc}", EXIT_CONFIG) from None
                if str(exc) != said:
                    log.warning("source cannot start: %s; this camera shows NO SIGNAL and "
                                "tries again every %.0f s (the others go on)", exc, BACKOFF_MAX)
                    said = str(exc)
                self.no_signal(str(exc), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except SourceError as exc:
                log.warning("source not available: %s; retrying in %.1f s", exc, backoff)
                self.no_signal(str(exc), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            info = self.source.info()
            self.control.set_info(info)
            if self.imu is not None:
                self.imu.opened(self.source, info)
            self.period = 1.0 / (self.source.pace_fps or self.cfg.fps)
            self.control["source_ok"] = 1
            if info.get("width") and info.get("height"):
                self.size = (int(info["width"]), int(info["height"]))
            log.info("source %s streaming", info.get("kind", "?"))
            return True
        return False

    def run(self) -> None:
        """The loop: one frame per iteration, newest wins, no busy waiting."""
        if not self.open_source():
            return
        misses = 0
        deadline = time.monotonic()
        info_at = time.monotonic()
        while not self.stop.is_set():
            self.beat()
            if time.monotonic() - info_at >= 1.0:
                info_at = time.monotonic()
                self.control.set_info(self.source.info())
            try:
                t0 = time.perf_counter()
                frame = self.source.read(timeout=1.0)
            except SourceWaiting as exc:
                self._waiting(str(exc))
                continue
            except SourceError as exc:
                self._lost(str(exc) or type(exc).__name__)
                if not self.open_source():
                    return
                misses = 0
                deadline = time.monotonic()
                continue
            if self.imu is not None:  # before the frame, so its wake-up finds them too
                self.imu.pump(self.source)
            if frame is None:
                misses += 1
                if misses >= MISSES_BEFORE_LOST:
                    self._lost(f"no frames for {misses} s")
                    if not self.open_source():
                        return
                    misses = 0
                continue
            misses = 0
            self._publish(frame, time.perf_counter() - t0)
            if not self.source.self_paced:
                deadline += self.period
                delay = deadline - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                elif delay < -self.period:
                    deadline = time.monotonic()

    def _waiting(self, reason: str) -> None:
        """The source is open but idle: a NO SIGNAL frame twice a second, no reopening."""
        self.control["source_ok"] = 0
        now = time.monotonic()
        if now - self._last_no_signal >= NO_SIGNAL_PERIOD:
            self._last_no_signal = now
            img = render_no_signal(self.size[0], self.size[1], reason)
            self.writer.write(img, None, time.time(), 0.0, FLAG_NO_SIGNAL)

    def _publish(self, frame: Frame, read_s: float) -> None:
        size = (frame.color.shape[1], frame.color.shape[0])
        if size != self.size or not self.control["source_ok"]:
            self.size = size
            self.control.set_info(self.source.info())
        self.writer.write(frame.color, frame.depth, frame.timestamp, frame.depth_scale)
        self.control["capture_ms"] = read_s * 1000.0
        self.control["source_ok"] = 1

    def _lost(self, reason: str) -> None:
        log.warning("source lost: %s", reason)
        self.control["source_ok"] = 0
        try:
            self.source.close()
        except SourceError as exc:
            log.debug("closing the lost source: %s", exc)
        self.no_signal(reason, NO_SIGNAL_PERIOD)


class Unusable(FrameSource):
    """A source of one camera of several that cannot even be built: it fails every open
    with its reason, so the loop shows NO SIGNAL and says why."""

    kind = "unusable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def open(self) -> None:
        raise SourceConfigError(self.reason)

    def read(self, timeout: float) -> None:
        raise SourceError(self.reason)

    def close(self) -> None:
        """Nothing was opened."""

    def info(self) -> dict[str, str]:
        return {"kind": self.kind, "error": self.reason}


def capture_main(child: Child) -> None:
    """The capture child: the source into the raw ring, NO SIGNAL while it is lost."""
    handles = child.handles
    ring = FrameRing.attach(handles.raw)
    set_nonblocking_writer(handles.raw_wake_w)
    try:
        source = make_source(child.cfg)
    except SourceConfigError as exc:
        if not child.cfg.retry_config:
            raise CannotStart(f"source: {exc}", EXIT_CONFIG) from None
        source = Unusable(str(exc))
    sink_wakes = tuple(w for _, w in handles.sink_wakes.values())
    for w in sink_wakes:
        set_nonblocking_writer(w)
    writer = RawWriter(ring, child.control, handles.raw_wake_w, sink_wakes)
    imu = ImuWriter(FrameRing.attach(handles.imu), child.control, child.cfg) if handles.imu \
        else None
    loop = CaptureLoop(child.cfg, source, writer, child.control, child.stop, beat=child.beat,
                       imu=imu)
    try:
        loop.run()
    finally:
        try:
            source.close()
        except SourceError:
            pass
