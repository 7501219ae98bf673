"""The loop every push shares: connect, stream, reconnect every `retry` seconds on failure.

When the destination is down, refuses, resets or stalls, one line is logged and the push
is retried every `retry` seconds; capture and encoding go on meanwhile, so the first frame
after a reconnect is fresh. While connected, each turn of the loop beats the heartbeat,
closes an adaptation tick every TICK_S and logs statistics every STATS_EVERY_S, then lets
the pusher (push/mjpeg.py, push/h264.py) take one step: wait for room in the link or for
a frame, or send one.
"""

from __future__ import annotations

import logging
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable

from media.urls import redact
from pipeline.child import CannotStart, drain
from pipeline.control import Control
from pipeline.shm import FrameRing, SlotMeta
from push.adapt import TICK_S, Adapter, delivery_rate
from push.connection import STALL_TIMEOUT_S, Connection, Output, PushFailed
from push.options import PushOptions

log = logging.getLogger("push")

STATS_EVERY_S = 10.0
WAIT_S = 0.25  # longest wait for the link or the ring, so the stop flag is seen in time


class Stats:
    """What the 10-second log line reports."""

    def __init__(self, counter: int) -> None:
        self.reset(time.monotonic(), counter)
        self.res, self.quality = "-", 0

    def reset(self, now: float, counter: int) -> None:
        self.t0, self.counter0, self.n, self.bytes = now, counter, 0, 0

    def frame(self, meta: SlotMeta, quality: int, nbytes: int) -> None:
        self.n += 1
        self.bytes += nbytes
        self.res, self.quality = f"{meta.width}x{meta.height}", quality


class Tick:
    """One adaptation tick's measurements: bytes written, time blocked, delivery samples."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock
        self.t0 = time.monotonic()
        self.busy = 0.0
        self.sent = 0
        self.rates: list[float] = []

    def sample(self) -> None:
        """Keep the kernel's delivery-rate sample (after each frame)."""
        rate = delivery_rate(self.sock) if self.sock is not None else None
        if rate:
            self.rates.append(rate)

    def close(self, now: float) -> dict[str, float]:
        """This tick's figures (the median sample, robust to odd ones), and start anew."""
        dt = max(now - self.t0, 1e-3)
        out = {"sent_rate": self.sent / dt, "busy": min(self.busy / dt, 1.0),
               "delivery": statistics.median(self.rates) if self.rates else 0.0}
        self.t0, self.busy, self.sent, self.rates = now, 0.0, 0, []
        return out


class Pusher:
    """Connect, push the newest frames, reconnect every `retry` seconds on failure.

    A pusher says what it announces while running (`_begin`, `_end`), what it connects
    to (`_connection`), what one step of streaming is (`_step`, built from `_room`,
    `_idle` and `_sent`), how it follows the link (`_adapt`) and what its statistics
    line says (`_log_stats`).
    """

    adapter: Adapter | None = None

    def __init__(self, opts: PushOptions, ring: FrameRing, control: Control, wake_r: object,
                 stop: threading.Event, *, beat: Callable[[], None]) -> None:
        self.opts, self.ring, self.control, self.wake_r, self.stop, self.beat = (
            opts, ring, control, wake_r, stop, beat)
        self.sent = 0
        # Per connection: this tick's and this statistics period's figures, and when the
        # link last moved (or had nothing to carry).
        self.tick = Tick(None)
        self.stats = Stats(0)
        self.progress = 0.0

    def _begin(self) -> None:
        """Before the first connection."""

    def _end(self) -> None:
        """After the last one."""

    def _connection(self) -> Output:
        return Connection(self.opts, self.beat)

    def _connected(self) -> None:
        """The destination takes the stream: say so once, and end a failure streak."""
        log.info("connected to %s%s", redact(self.opts.url),
                 f" after {self.failures} failed attempt(s)" if self.failures else "")
        self.failures, self.down_since = 0, None

    def run(self) -> None:
        """Until stopped (or out of retries)."""
        self.failures = 0
        self.down_since: float | None = None
        self._begin()
        try:
            while not self.stop.is_set():
                conn = self._connection()
                try:
                    conn.open()
                    if not getattr(conn, "deferred", False):  # else: once it is established
                        self._connected()
                    self._stream(conn)
                    conn.finish()
                except PushFailed as exc:
                    self.failures += 1
                    if self.down_since is None:
                        self.down_since = time.monotonic()
                        log.warning("push to %s failed: %s; retrying every %g s",
                                    redact(self.opts.url), exc, self.opts.retry)
                    else:
                        log.debug("attempt %d failed: %s", self.failures, exc)
                    if (self.opts.max_retries is not None
                            and self.failures > self.opts.max_retries):
                        raise CannotStart(f"giving up on {redact(self.opts.url)} after "
                                          f"{self.failures} failed attempts: {exc}") from None
                    self.stop.wait(self.opts.retry)
                finally:
                    conn.close()
        finally:
            self._end()

    def _stream(self, conn: Output) -> None:
        """Push over one open connection until stopped or it fails (PushFailed)."""
        self.stats = Stats(self.ring.counter())
        self.tick = Tick(conn.sock)
        self.progress = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            self.beat()
            if now - self.tick.t0 >= TICK_S:
                self._adapt(self.tick.close(now))
            if now - self.stats.t0 >= STATS_EVERY_S:
                self._log_stats(self.stats, now)
            self._step(conn)

    def _step(self, conn: Output) -> None:
        raise NotImplementedError

    def _room(self, conn: Output) -> bool:
        """Wait up to WAIT_S for room in the link; False if there is none yet.

        The time waited counts as busy (the link is the limit), and PushFailed is raised
        once nothing has moved for STALL_TIMEOUT_S.
        """
        t_wait = time.monotonic()
        writable = conn.wait_writable(WAIT_S)
        self.tick.busy += time.monotonic() - t_wait
        if not writable and time.monotonic() - self.progress > STALL_TIMEOUT_S:
            raise PushFailed(f"stalled: no progress for {STALL_TIMEOUT_S:.0f} s")
        return writable

    def _idle(self) -> None:
        """Nothing new in the ring: wait up to WAIT_S for the producer's wake-up."""
        fd = self.wake_r.fileno()  # type: ignore[attr-defined]
        readable, _, _ = select.select([fd], [], [], WAIT_S)
        if readable:
            drain(self.wake_r)  # type: ignore[arg-type]

    def _sent(self, meta: SlotMeta, quality: int, nbytes: int, t_send: float) -> None:
        """Account for one frame written since `t_send`."""
        done = time.monotonic()
        self.tick.busy += done - t_send
        self.tick.sent += nbytes
        self.tick.sample()
        self.progress = done
        self.sent += 1
        self.stats.frame(meta, quality, nbytes)

    def _adapt(self, m: dict[str, float]) -> None:
        """Fold one tick's figures into the link estimate."""

    def _log_stats(self, st: Stats, now: float) -> None:
        raise NotImplementedError

    def _link(self) -> str:
        """The estimated link for the statistics line, if there is one."""
        if self.adapter is not None and self.adapter.capacity:
            return f", link ~{self.adapter.capacity * 8e-6:.2f} Mbit/s"
        return ""
