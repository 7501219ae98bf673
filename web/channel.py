"""One stream's newest part and its viewers, and the multipart framing every writer uses.

The hub (which fills channels from shared memory) and the fan-out writer (which empties
them onto sockets) both work on Channel; keeping it here lets each import it without
importing the other.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter, deque

import gevent.event

from pipeline.shm import FLAG_NO_SIGNAL, SlotMeta

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
        self.clients: Counter[str] = Counter()  # viewers by client address, for /status
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

    def fresh(self) -> bool:
        """Is the current part worth sending to a client that just joined? A frame older
        than FRESH_S is not (the next one follows), a NO SIGNAL frame always is."""
        return self.part is not None and self.meta is not None and bool(
            time.time() - self.meta.ts_capture < FRESH_S or self.meta.flags & FLAG_NO_SIGNAL)

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

    def count(self, delta: int, client: str | None = None) -> None:
        """A viewer joins (+1) or leaves (-1); `client` is its address."""
        self.watched(self.viewers + delta)
        if client:
            self.clients[client] += delta
            if self.clients[client] <= 0:
                del self.clients[client]

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
