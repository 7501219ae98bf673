"""The readers' common ground: a background thread keeping the latest fix and queueing
every new one, and the reconnect loop of the readers that read a stream.

Only fixes with a valid position (mode 2 or 3) and a timestamp are published; a fix is
identified by its timestamp, so a refined report for the same epoch replaces the latest
fix instead of counting as a new one.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from push.gps.fix import POLL_S, GpsFix, utc_iso

log = logging.getLogger("push.gps")


class GpsReader:
    """Base of the readers: background thread, latest fix and a bounded queue of new fixes."""

    kind = "gps"

    def __init__(self, queue_size: int = 1024) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque[GpsFix] = collections.deque(maxlen=queue_size)
        self._history: collections.deque[tuple[int, GpsFix]] = collections.deque(
            maxlen=queue_size)
        self._latest: GpsFix | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self.fixes = 0

    def describe(self) -> str:
        """Short human-readable name of the source, for logs."""
        return self.kind

    @property
    def connected(self) -> bool:
        """True while the underlying stream (socket, serial port) is open."""
        return self._connected

    def start(self) -> None:
        """Start the background thread (no-op if already running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_guarded, name=f"gps-{self.kind}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds for it."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def latest(self) -> GpsFix | None:
        """Return the newest fix, or None if none was received yet."""
        with self._lock:
            return self._latest

    def since(self, seq: int) -> list[tuple[int, GpsFix]]:
        """(sequence number, fix) of every new fix after `seq`, oldest first (bounded)."""
        with self._lock:
            return [item for item in self._history if item[0] > seq]

    def get(self, timeout: float | None = None) -> GpsFix | None:
        """Pop the oldest queued new fix, waiting up to `timeout` s; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or self._stop.is_set():
                    return None
                self._cond.wait(POLL_S if remaining is None else min(remaining, POLL_S))
            return self._queue.popleft()

    def _publish(self, fix: GpsFix) -> None:
        """Make `fix` the latest; queue it unless it is the same epoch as the previous one."""
        with self._cond:
            same_epoch = self._latest is not None and self._latest.time == fix.time
            self._latest = fix
            if not same_epoch:
                self.fixes += 1
                self._queue.append(fix)
                self._history.append((self.fixes, fix))
                self._cond.notify_all()

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("GPS reader %s crashed", self.describe())
        finally:
            self._connected = False

    def _run(self) -> None:
        raise NotImplementedError


class _Outage:
    """Reconnect backoff that logs one line per outage instead of one per attempt."""

    def __init__(self, what: str, first: float = 0.25, cap: float = 5.0) -> None:
        self.what = what
        self.first = first
        self.cap = cap
        self.delay = first
        self.down = False

    def failed(self, err: object, stop: threading.Event) -> None:
        """Record a failed attempt (warning on the first of an outage) and back off."""
        log.debug("%s: connection attempt failed: %s", self.what, err)
        if not self.down:
            self.down = True
            log.warning("%s unavailable (%s); retrying in the background", self.what, err)
        stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def ok(self) -> None:
        """Record a successful connection and reset the backoff."""
        if self.down:
            log.info("%s available again", self.what)
        else:
            log.info("%s connected", self.what)
        self.down = False
        self.delay = self.first



class StreamReader(GpsReader):
    """A reader of one stream (a socket, a serial port): open it, read it until it is lost,
    and reopen it with backoff, one warning per outage.

    A subclass says how to open the stream (`_open`; `open_errors` mean "not there yet"),
    what to do once it is open (`_greet`), how to read it until it ends (`_read`, returning
    why; `read_errors` mean it was lost) and how a loss is worded (`lost`).
    """

    open_errors: tuple[type[BaseException], ...] = (OSError,)
    read_errors: tuple[type[BaseException], ...] = (OSError,)
    lost = "connection lost"

    def _open(self) -> Any:
        raise NotImplementedError

    def _greet(self, stream: Any) -> None:
        """Anything to do on a fresh stream before reading it."""

    def _read(self, stream: Any) -> str:
        raise NotImplementedError

    def _run(self) -> None:
        outage = _Outage(self.describe())
        while not self._stop.is_set():
            try:
                stream = self._open()
            except self.open_errors as err:
                outage.failed(err, self._stop)
                continue
            try:
                self._greet(stream)
                self._connected = True
                outage.ok()
                reason = self._read(stream)
            except self.read_errors as err:
                reason = str(err)
            finally:
                self._connected = False
                stream.close()
            if not self._stop.is_set():
                outage.failed(f"{self.lost}: {reason}", self._stop)


class FixedReader(GpsReader):
    """Emit a constant position, stamped with the current time, every `interval` seconds."""

    kind = "fixed"

    def __init__(self, lat: float, lon: float, alt: float | None = None,
                 interval: float = 1.0, queue_size: int = 1024) -> None:
        super().__init__(queue_size)
        self.lat, self.lon, self.alt = lat, lon, alt
        self.interval = interval

    def describe(self) -> str:
        """Return e.g. ``fixed:48.1,11.5``."""
        alt = "" if self.alt is None else f",{self.alt}"
        return f"fixed:{self.lat},{self.lon}{alt}"

    def make_fix(self) -> GpsFix:
        """Return the configured position stamped with the current UTC time."""
        return GpsFix(time=utc_iso(datetime.now(timezone.utc)), lat=self.lat, lon=self.lon,
                      alt=self.alt, speed=None, track=None, mode=2 if self.alt is None else 3)

    def _run(self) -> None:
        self._connected = True
        while not self._stop.is_set():
            self._publish(self.make_fix())
            self._stop.wait(self.interval)
