"""Adaptive MJPEG for a thin push link: estimate the link, pick a frame size that fits.

The push sink measures what the link carries (bytes written and the time the sender
spent blocked on a full socket, and the kernel's own delivery-rate samples from
TCP_INFO) and picks a (width, quality) level from a ladder so that frames keep flowing at
a useful rate. It only *asks*: the encoder process applies the level (encoder/shaping.py),
so every frame is still encoded once. `TokenBucket` enforces `--max-bitrate`.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import numpy as np

TARGET_FPS = 15.0     # the rate an adaptive push protects before it spends bytes on quality
HEADROOM = 0.8        # share of the estimated link the video may plan to use (GPS, ACKs, jitter)
QUALITY_KNEE = 50     # below this quality, shrink the frame before lowering quality further
TICK_S = 0.5          # how often the estimate and the level are updated
UP_HOLD_S = 1.0       # least time before a step up (steps down are immediate)
MAX_HOLD_S = 8.0      # the hold doubles after each step up the link could not carry
UP_MARGIN = 0.85      # a level above the current one must fit with this much to spare
BUSY_LIMITED = 0.7    # share of a tick blocked on the socket that means "link-limited"
BUSY_IDLE = 0.3       # ... and a share below which the link clearly has room to spare
WIDTH_STEPS = (1.0, 0.75, 0.5, 0.375, 0.25)

# Relative JPEG size against quality (libjpeg tables, natural images; 80 -> 1).
_Q_POINTS = np.array([1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100], float)
_Q_SIZES = np.array([0.18, 0.23, 0.28, 0.34, 0.43, 0.51, 0.61, 0.77, 1.0, 1.55, 2.2, 3.5])

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)


@dataclass(frozen=True)
class Level:
    """One rung of the ladder: frame width in pixels and JPEG quality."""

    width: int
    quality: int


def size_model(level: Level, native_width: int) -> float:
    """Relative size of a frame at `level` (pixels times a quality curve)."""
    area = (level.width / native_width) ** 2
    return area * float(np.interp(level.quality, _Q_POINTS, _Q_SIZES))


def ladder(native_width: int, max_quality: int, min_quality: int, min_width: int) -> list[Level]:
    """Levels from best to smallest: lower quality to the knee, then narrower, then below it."""
    widths: list[int] = []
    for f in WIDTH_STEPS:
        w = int(native_width * f) // 8 * 8
        if w >= min(min_width, native_width) and w not in widths and w > 0:
            widths.append(w)
    knee = max(min(QUALITY_KNEE, max_quality), min_quality)
    qs = list(range(max_quality, knee - 1, -10))
    if qs[-1] != knee:
        qs.append(knee)
    out = [Level(w, q) for w in widths for q in qs]
    low = list(range(knee - 10, min_quality - 1, -10))
    if min_quality < knee and (not low or low[-1] != min_quality):
        low.append(min_quality)
    out += [Level(widths[-1], q) for q in low]
    return out


class Adapter:
    """Chooses the level from the link estimate and the sizes of recent frames."""

    def __init__(self, max_quality: int, min_quality: int, min_width: int,
                 max_bps: float | None = None) -> None:
        self.max_quality, self.min_quality = max_quality, min_quality
        self.min_width, self.max_bps = min_width, max_bps
        self.native = 0
        self.levels: list[Level] = []
        self.index = 0
        self.frame_bytes = 0.0       # EWMA of frame sizes at the current level
        self.frame_level: Level | None = None
        self.capacity = 0.0          # estimated link rate, bytes/s (0: unknown yet)
        self.t_up = self.t_down = float("-inf")
        self.hold = UP_HOLD_S
        self.idle_ticks = 0

    @property
    def level(self) -> Level | None:
        return self.levels[self.index] if self.levels else None

    def observe_frame(self, width: int, quality: int, nbytes: int) -> None:
        """Learn from a frame that was sent (its level may lag the request by a frame)."""
        if width > self.native:
            self.native = width
            self.levels = ladder(width, self.max_quality, self.min_quality, self.min_width)
            self.index = 0
        lv = Level(width, quality)
        if lv != self.frame_level:
            self.frame_level, self.frame_bytes = lv, float(nbytes)
        else:
            self.frame_bytes += 0.3 * (nbytes - self.frame_bytes)

    def estimate(self, level: Level) -> float:
        """Expected bytes of a frame at `level`, scaled from what frames cost just now."""
        ref = self.frame_level
        if ref is None or not self.native:
            return 0.0
        return self.frame_bytes * size_model(level, self.native) / size_model(ref, self.native)

    def update_capacity(self, *, sent_rate: float, busy: float, delivery: float) -> None:
        """Fold one tick's measurements (bytes/s, busy share 0..1) into the link estimate.

        While the sender is blocked most of the tick the link is the limit, and what went
        through while busy is its rate. Otherwise the link carries more than we send: the
        kernel's delivery-rate samples (taken as frames burst out) say how much more, but
        the estimate may at most double what was sent, so a wrong sample costs one probe.
        """
        # Two ticks with the socket mostly idle: the link has room now, whatever the
        # probes at its old limit said, so steps up need no long hold any more.
        self.idle_ticks = self.idle_ticks + 1 if busy < BUSY_IDLE else 0
        if self.idle_ticks >= 2:
            self.hold = UP_HOLD_S
        if busy >= BUSY_LIMITED and sent_rate > 0:
            est = sent_rate / busy
            self.capacity = est if not self.capacity else min(0.5 * (self.capacity + est),
                                                             1.2 * est)
            return
        est = max(min(delivery, 2.0 * sent_rate), 1.25 * sent_rate)
        self.capacity = max(self.capacity, est) if self.capacity else est

    def budget(self, source_fps: float) -> float:
        """Bytes a frame may take so the target rate fits the usable link."""
        usable = self.capacity * HEADROOM if self.capacity else float("inf")
        if self.max_bps:
            usable = min(usable, self.max_bps / 8.0)
        fps = min(TARGET_FPS, source_fps) if source_fps > 0 else TARGET_FPS
        return usable / fps

    def choose(self, source_fps: float, now: float | None = None) -> Level | None:
        """Move to the best level that fits the budget: down at once, up after a hold.

        A step up that the link cannot carry (a step down soon after) doubles the hold
        before the next try, so a link at its limit is probed now and then, not hammered.
        """
        if not self.levels or self.frame_level is None:
            return self.level
        now = time.monotonic() if now is None else now
        budget = self.budget(source_fps)
        best = len(self.levels) - 1
        for i, lv in enumerate(self.levels):
            margin = 1.0 if i >= self.index else UP_MARGIN
            if self.estimate(lv) <= budget * margin:
                best = i
                break
        if best > self.index:
            if now - self.t_up < 2 * UP_HOLD_S:
                self.hold = min(self.hold * 2, MAX_HOLD_S)
            self.index = best
            self.t_down = now
        elif best < self.index and now - max(self.t_up, self.t_down) >= self.hold:
            if now - self.t_down > 4 * self.hold:
                self.hold = UP_HOLD_S
            self.index = best
            self.t_up = now
        return self.level


class TokenBucket:
    """Byte budget refilled at `rate` bytes/s; `--max-bitrate` pacing at the source."""

    def __init__(self, rate: float, depth: float) -> None:
        self.rate, self.depth = rate, depth
        self.tokens = depth
        self.t = time.monotonic()

    def wait_for(self, nbytes: int) -> float:
        """Seconds until `nbytes` may go (0: now; the bytes are then taken)."""
        now = time.monotonic()
        self.tokens = min(self.depth, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= nbytes or self.tokens >= self.depth:
            self.tokens -= nbytes
            return 0.0
        return (min(nbytes, self.depth) - self.tokens) / self.rate


def delivery_rate(sock: socket.socket) -> float | None:
    """The kernel's latest delivery-rate sample in bytes/s (TCP_INFO; None if unavailable)."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 232)
    except OSError:
        return None
    if len(raw) < 168:  # struct tcp_info before Linux 4.9 has no tcpi_delivery_rate
        return None
    return float(struct.unpack_from("<Q", raw, 160)[0])


def bound_socket_queue(sock: socket.socket, lowat: int) -> None:
    """Let the kernel hold at most about `lowat` unsent bytes (writability waits for it)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, lowat)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * lowat)


# libjpeg's standard luminance quantisation table; a JPEG's quality is read back from it.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int64)


def _scaled_tables() -> np.ndarray:
    out = np.empty((100, 64), np.int64)
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        out[q - 1] = np.sort(np.clip((_STD_LUMA * scale + 50) // 100, 1, 255))
    return out


_TABLES = _scaled_tables()
_quality_cache: dict[bytes, int] = {}


def jpeg_quality(jpeg: bytes) -> int:
    """The libjpeg quality (1-100) a JPEG was encoded with, from its first DQT; 0 if unknown."""
    i = 2
    n = len(jpeg)
    while i + 4 <= n and jpeg[i] == 0xFF:
        marker = jpeg[i + 1]
        seglen = int.from_bytes(jpeg[i + 2:i + 4], "big")
        if marker == 0xDB and seglen >= 67 and jpeg[i + 4] >> 4 == 0:
            table = bytes(jpeg[i + 5:i + 69])
            q = _quality_cache.get(table)
            if q is None:
                obs = np.sort(np.frombuffer(table, np.uint8).astype(np.int64))
                q = int(np.argmin(np.abs(_TABLES - obs).sum(axis=1))) + 1
                if len(_quality_cache) < 256:
                    _quality_cache[table] = q
            return q
        if marker == 0xDA:
            break
        i += 2 + seglen
    return 0
