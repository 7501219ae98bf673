"""FrameHub: the observer that fans each encoded frame out to every client.

One pump greenlet waits on the encoder's wake-up pipe, copies the newest JPEG of each
watched stream out of shared memory and builds its multipart part once. Clients wait on
the channel's event and write the same bytes object; a slow client is blocked in its
own socket write and simply picks up the newest part when it is ready: at most one
frame in flight per client, no per-client queue.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.select

from pipeline.child import drain
from pipeline.control import STREAMS, Control
from pipeline.shm import FLAG_NO_SIGNAL, FrameRing, SlotMeta

log = logging.getLogger("web")

BOUNDARY = "frame"
# Every part ends with the next part's boundary line, and a stream opens with one (the
# same bytes as "boundary, headers, JPEG" per part, sent sooner).
OPEN = f"--{BOUNDARY}\r\n".encode()
CLOSE = b"\r\n" + OPEN
# Chromium shows a part only once it has parsed the *next* part's headers
# (crbug.com/527446), i.e. one frame late. For it the header block of the next part
# follows each JPEG at once (µStreamer's advance headers); the next JPEG's length is not
# known yet, so these parts carry no Content-Length, which Chromium does not use.
ADVANCE_HEAD = b"Content-Type: image/jpeg\r\n\r\n"
ADVANCE_OPEN = OPEN + ADVANCE_HEAD
LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
KEEPALIVE_S = 1.0
FRESH_S = 1.0
RECENT_S = 3.0  # latency percentiles cover the parts sent this long ago at most


class Channel:
    """The newest part of one stream plus the viewers waiting for the next."""

    def __init__(self, name: str, extra_headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())
        self.seq = 0
        self.part: bytes | None = None
        self._advance: tuple[int, bytes] | None = None
        self.jpeg: bytes | None = None
        self.meta: SlotMeta | None = None
        self.ring_counter = 0
        self.viewers = 0
        self.parts_sent = 0
        self.frames = 0
        self.latency: deque[tuple[float, float]] = deque(maxlen=4096)  # (when, seconds)
        self.lat_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.lat_sum = 0.0
        self._event = gevent.event.Event()
        self._fps_t = time.monotonic()
        self._fps_frames = 0
        self._fps_sent = 0
        self.fps_out: float | None = 0.0
        self.parts_per_s: float | None = 0.0

    def publish(self, meta: SlotMeta, jpeg: bytes) -> None:
        """Build the multipart part once (headers, JPEG, the next boundary) and wake
        every waiting client."""
        head = (
            f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Timestamp: {meta.ts_capture:.6f}\r\nX-Frame: {meta.frame_no}\r\n"
            f"X-Encode-Ms: {(meta.ts_aux2 - meta.ts_aux1) * 1000:.2f}\r\n"
            f"X-Signal: {'none' if meta.flags & FLAG_NO_SIGNAL else 'live'}\r\n"
            f"{self.extra}\r\n"
        ).encode()
        self.part = head + jpeg + CLOSE
        self._advance: tuple[int, bytes] | None = None
        self.jpeg = jpeg
        self.meta = meta
        self.seq += 1
        self.frames += 1
        event, self._event = self._event, gevent.event.Event()
        event.set()

    def advance_part(self) -> bytes | None:
        """The current part in advance-headers form (JPEG, boundary, next headers),
        built once per frame on first use."""
        if self.jpeg is None:
            return None
        if self._advance is None or self._advance[0] != self.seq:
            self._advance = (self.seq, self.jpeg + CLOSE + ADVANCE_HEAD)
        return self._advance[1]

    def wait(self, seq: int, timeout: float) -> bool:
        """Block this greenlet until a part newer than `seq` exists (or timeout)."""
        if self.seq != seq:
            return True
        self._event.wait(timeout)
        return self.seq != seq

    def observe(self, latency: float) -> None:
        """Record one part's capture-to-send latency (recent window and histogram)."""
        self.latency.append((time.monotonic(), latency))
        self.lat_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
        self.lat_sum += latency

    def watched(self, viewers: int) -> None:
        """The viewer count changed: a stream that just gained its first viewer has no
        measured rate yet (None until a full second has passed), one with none sends 0."""
        if viewers == 1 and self.viewers == 0:
            self._fps_t = time.monotonic()
            self._fps_frames, self._fps_sent = self.frames, self.parts_sent
            self.fps_out = self.parts_per_s = None
        self.viewers = viewers

    def tick(self) -> None:
        """Roll the per-second rates."""
        now = time.monotonic()
        dt = now - self._fps_t
        if dt >= 1.0:
            self.fps_out = (self.frames - self._fps_frames) / dt
            self.parts_per_s = (self.parts_sent - self._fps_sent) / dt
            self._fps_t, self._fps_frames, self._fps_sent = now, self.frames, self.parts_sent

    def latency_ms(self) -> dict[str, float | None]:
        """p50/p99 of capture-to-send latency over the parts sent in the last RECENT_S
        seconds (None when there were none: old figures would describe nobody)."""
        horizon = time.monotonic() - RECENT_S
        while self.latency and self.latency[0][0] < horizon:
            self.latency.popleft()
        if not self.latency:
            return {"p50": None, "p99": None}
        values = sorted(v for _, v in self.latency)
        n = len(values)
        return {
            "p50": round(values[n // 2] * 1000, 2),
            "p99": round(values[min(n - 1, int(n * 0.99))] * 1000, 2),
        }


class FrameHub:
    """One channel per stream (pipeline.control.STREAMS), fed from the JPEG rings."""

    def __init__(self, control: Control, rings: dict[str, FrameRing], wake_r: Any,
                 stream_headers: dict[str, dict[str, str]] | None = None,
                 send_timeout: float = 20.0) -> None:
        self.control = control
        self.rings = rings
        self.wake_r = wake_r
        headers = stream_headers or {}
        self.channels = {s: Channel(s, headers.get(s)) for s in STREAMS}
        self._pump: gevent.Greenlet | None = None
        from web.fanout import FanOut  # noqa: PLC0415

        self.fan = FanOut(self, send_timeout)

    def start(self) -> None:
        """Start the pump greenlet."""
        self._pump = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop the pump and let every stream client served by the shared writer go."""
        if self._pump is not None:
            self._pump.kill(block=False)
        self.fan.close_all()

    def _run(self) -> None:
        fd = self.wake_r.fileno()
        while True:
            self.control["hb_web"] = time.time()
            readable, _, _ = gevent.select.select([fd], [], [], 0.5)
            if readable:
                drain(self.wake_r)
            self.poll_rings()
            self.fan.keepalive(time.monotonic(), KEEPALIVE_S)
            for ch in self.channels.values():
                ch.tick()

    def poll_rings(self) -> None:
        """Publish any stream whose ring has a newer frame than its channel."""
        for name, ch in self.channels.items():
            if ch.viewers <= 0 and ch.part is not None:
                continue
            ring = self.rings[name]
            counter = ring.counter()
            if counter == ch.ring_counter:
                continue
            got = ring.read_latest()
            if got is None:
                continue
            meta, jpeg = got
            ch.ring_counter = meta.counter
            ch.publish(meta, jpeg)
            self.fan.publish(ch)

    def add_viewer(self, name: str, delta: int) -> None:
        """Count a viewer in or out; the encoder reads the total from the control block."""
        ch = self.channels[name]
        ch.watched(ch.viewers + delta)
        self.control[f"viewers_{name}"] = ch.viewers

    def serve(self, sock: Any, name: str, advance: bool = False) -> None:
        """Feed one client's socket (headers and opening boundary sent) from the shared
        writer until it goes."""
        self.fan.serve(sock, name, advance)

    def stream(self, name: str, min_interval: float = 0.0,
               advance: bool = False) -> Iterator[bytes]:
        """Generator of multipart parts for one client; unregisters itself when closed.

        The web server hands plain-HTTP, unthrottled clients to `serve` instead; this
        generator serves the rest (TLS, ?fps=, any other WSGI server). `advance`: parts
        in advance-headers form (for Chromium)."""
        ch = self.channels[name]
        self.add_viewer(name, 1)
        try:
            yield ADVANCE_OPEN if advance else OPEN
            seq = ch.seq
            if ch.part is not None and ch.meta is not None and (
                time.time() - ch.meta.ts_capture < FRESH_S
                or ch.meta.flags & FLAG_NO_SIGNAL
            ):
                yield (ch.advance_part() if advance else ch.part) or b""
            last_sent = time.monotonic()
            while True:
                fresh = ch.wait(seq, KEEPALIVE_S)
                if not fresh and ch.part is None:
                    continue
                if min_interval:
                    gap = min_interval - (time.monotonic() - last_sent)
                    if gap > 0:
                        gevent.sleep(gap)
                part = ch.advance_part() if advance else ch.part
                meta, seq = ch.meta, ch.seq
                assert part is not None and meta is not None
                yield part
                last_sent = time.monotonic()
                ch.parts_sent += 1
                if fresh:
                    ch.observe(time.time() - meta.ts_capture)
        finally:
            self.add_viewer(name, -1)

    def snapshot(self, name: str, timeout: float) -> tuple[bytes, SlotMeta] | None:
        """The next freshly encoded JPEG of a stream, or None after `timeout` seconds."""
        ch = self.channels[name]
        self.add_viewer(name, 1)
        try:
            seq = ch.seq
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if ch.wait(seq, left) and ch.jpeg is not None and ch.meta is not None:
                    return ch.jpeg, ch.meta
        finally:
            self.add_viewer(name, -1)
