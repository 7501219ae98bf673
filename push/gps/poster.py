"""POST sampled GPS fixes to the -g URL, in order, through outages of the route.

`GpsPoster` *samples*: every ``interval`` seconds it takes the fixes that arrived
since it last looked, keeping each one that is at least (nine tenths of) an interval
newer, by its own timestamp, than the last fix taken, so a fix is never sent twice and
a stalled receiver sends nothing.  With a receiver faster than the interval the
intermediate fixes are skipped (the posting rate is what ``--gps-interval`` sets);
with a receiver slower than the interval every fix is sent, even when a busy machine
delivers several at once.  Taken fixes go through a
bounded backlog that survives outages of the route: they are sent strictly in order,
removed only after a 2xx, and the oldest are dropped (and counted) past the bound.
The backlog lives in memory only.  A post that times out may still have reached the
receiver and is sent again, so receivers should treat ``time`` as the fix's key.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import time
import warnings
from datetime import datetime

import requests
import urllib3

from media.urls import redact
from push.gps.fix import POLL_S, FixSource, GpsFix

log = logging.getLogger("push.gps")


def redact_url(url: str) -> str:
    """The receiver's URL as the GPS log lines show it: `media.urls.redact` with the
    credentials and the query left out entirely."""
    return redact(url, userinfo="", query=False)


_ERRNO_RE = re.compile(r"\[Errno -?\d+\][^'()\]]*|certificate verify failed[^'()\]]*")


def _reason(err: BaseException) -> str:
    """Short description of a request failure, without URLs or query strings."""
    if isinstance(err, requests.Timeout):
        return "timeout"
    found = _ERRNO_RE.search(str(err))
    name = type(err).__name__
    return f"{name}: {found.group(0).strip()}" if found else name


class GpsPoster:
    """POST sampled fixes as JSON to a URL, buffering them in order while the route is down."""

    def __init__(self, url: str, reader: FixSource, *, interval: float = 1.0,
                 max_backlog: int = 3600, verify: bool | str = True, timeout: float = 5.0,
                 retry_max: float = 5.0) -> None:
        if interval <= 0:
            raise ValueError("GPS interval must be > 0")
        if max_backlog < 1:
            raise ValueError("GPS max_backlog must be >= 1")
        self.url = url
        self.safe_url = redact_url(url)
        self.reader = reader
        self.interval = interval
        self.max_backlog = max_backlog
        self.timeout = timeout
        self.retry_max = max(retry_max, interval)
        self.verify = verify
        self.session = requests.Session()
        if verify is False:
            warnings.simplefilter("once", urllib3.exceptions.InsecureRequestWarning)
            log.warning("GPS poster: TLS certificate of %s is NOT verified", self.safe_url)
        self.posted = 0
        self.dropped = 0
        self.rejected = 0
        self.taken = 0
        self._backlog: collections.deque[GpsFix] = collections.deque()
        self._last_time: str | None = None
        self._last_seq = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._down_since: float | None = None
        self._outage_drops = 0
        self._last_reject_log = -math.inf
        self._rejects_unlogged = 0

    @property
    def backlog(self) -> int:
        """Number of fixes waiting to be sent."""
        with self._lock:
            return len(self._backlog)

    @property
    def route_up(self) -> bool:
        """False between a failed post and the next successful one."""
        return self._down_since is None

    def start(self) -> None:
        """Start the sampling and sending threads."""
        if any(t.is_alive() for t in self._threads):
            return
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._sample_loop, name="gps-sample", daemon=True),
            threading.Thread(target=self._send_loop, name="gps-post", daemon=True),
        ]
        for t in self._threads:
            t.start()
        log.info("posting GPS fixes to %s every %.3g s", self.safe_url, self.interval)

    def stop(self, timeout: float = 0.9) -> None:
        """Stop promptly; a post still in flight finishes in the background (daemon thread)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if not any(t.is_alive() for t in self._threads):
            self.session.close()
        if self._backlog:
            log.info("GPS poster stopped with %d unsent fixes", len(self._backlog))

    def sample(self) -> bool:
        """Take new fixes into the backlog; True if any was taken.

        From a reader that keeps its history, every fix at least 0.9 `interval` (in fix
        time) after the last one taken is taken, so a burst of late deliveries (a busy machine,
        a gpsd that lagged) loses nothing; otherwise the reader's newest fix, if new.
        """
        since = getattr(self.reader, "since", None)
        if since is None:
            fix = self.reader.latest()
            fixes = [] if fix is None or fix.time == self._last_time else [fix]
        else:
            fixes = []
            for seq, fix in since(self._last_seq):
                self._last_seq = seq
                if fix.time != self._last_time and self._due(fix.time):
                    fixes.append(fix)
                    self._last_time = fix.time
        if not fixes:
            return False
        self._last_time = fixes[-1].time
        with self._cond:
            for fix in fixes:
                self.taken += 1
                self._backlog.append(fix)
            while len(self._backlog) > self.max_backlog:
                self._backlog.popleft()
                self.dropped += 1
                self._outage_drops += 1
                if self._outage_drops == 1:
                    log.warning("GPS backlog full (%d fixes); dropping the oldest",
                                self.max_backlog)
            self._cond.notify_all()
        return True

    def _due(self, stamp: str) -> bool:
        """True if fix time `stamp` is at least 0.9 interval after the last fix taken."""
        if self._last_time is None:
            return True
        try:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            last = datetime.fromisoformat(self._last_time.replace("Z", "+00:00"))
        except ValueError:
            return True
        return (t - last).total_seconds() >= 0.9 * self.interval

    def _sample_loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:
                log.exception("GPS sampling failed")
            next_tick += self.interval
            now = time.monotonic()
            if next_tick < now:
                next_tick = now + self.interval
            self._stop.wait(next_tick - now)

    def _send_loop(self) -> None:
        retry = self.interval
        while not self._stop.is_set():
            with self._cond:
                while not self._backlog and not self._stop.is_set():
                    self._cond.wait(POLL_S)
                if self._stop.is_set():
                    return
                fix = self._backlog[0]
            outcome = self._post(fix)
            if outcome == "retry":
                self._stop.wait(retry)
                retry = min(retry * 2, self.retry_max)
                continue
            retry = self.interval
            with self._cond:
                if self._backlog and self._backlog[0] is fix:
                    self._backlog.popleft()
                    if outcome == "sent":
                        self.posted += 1
                    else:
                        self.rejected += 1
                elif outcome == "sent":
                    # Dropped from a full backlog while in flight, yet delivered.
                    self.posted += 1
                    self.dropped -= 1

    def _post(self, fix: GpsFix) -> str:
        """Send one fix; return 'sent', 'rejected' (drop it) or 'retry' (route down)."""
        try:
            # verify is passed per request: requests lets REQUESTS_CA_BUNDLE override a
            # session-level CA file.
            resp = self.session.post(self.url, json=fix.to_json(), timeout=self.timeout,
                                     verify=self.verify, allow_redirects=False)
        except requests.RequestException as err:
            self._went_down(_reason(err))
            return "retry"
        status = resp.status_code
        resp.close()
        if 200 <= status < 300:
            self._came_back()
            return "sent"
        if status >= 500 or status in (408, 429):
            self._went_down(f"HTTP {status}")
            return "retry"
        self._came_back()
        self._rejects_unlogged += 1
        now = time.monotonic()
        if now - self._last_reject_log >= 60.0:
            log.error("GPS fix rejected by %s with HTTP %d; dropping it (%d rejected since "
                      "last report)", self.safe_url, status, self._rejects_unlogged)
            self._last_reject_log = now
            self._rejects_unlogged = 0
        return "rejected"

    def _went_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("GPS route to %s down (%s); buffering fixes (backlog %d)",
                        self.safe_url, reason, self.backlog)
        else:
            log.debug("GPS post to %s failed again: %s", self.safe_url, reason)

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        down_for = time.monotonic() - self._down_since
        self._down_since = None
        log.info("GPS route to %s back after %.1f s; backlog %d, dropped %d", self.safe_url,
                 down_for, self.backlog, self._outage_drops)
        self._outage_drops = 0
