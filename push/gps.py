"""GPS fixes for point-to-point mode: read them (gpsd, serial NMEA, fixed) and POST them.

Readers run a background thread, keep the latest fix and queue every new one.  Only
fixes with a valid position (mode 2 or 3) and a timestamp are published; a fix is
identified by its timestamp, so a refined report for the same epoch replaces the
latest fix instead of counting as a new one.

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
import json
import logging
import math
import re
import socket
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pynmea2
import requests
import serial
import urllib3

log = logging.getLogger(__name__)

KNOT_MS = 0.514444
DEFAULT_GPSD_HOST = "127.0.0.1"
DEFAULT_GPSD_PORT = 2947
NMEA_BAUDS = (4800, 9600, 19200, 38400, 57600, 115200)
_WATCH = b'?WATCH={"enable":true,"json":true};\n'
_MAX_LINE = 65536
_POLL = 0.2  # seconds a blocking read waits before re-checking the stop flag


def utc_iso(dt: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds, as gpsd does."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def redact_url(url: str) -> str:
    """Return the URL without user:password@ and without query/fragment, safe to log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host if parts.port is None else f"{host}:{parts.port}"
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class GpsFix:
    """One position fix; field meanings follow gpsd's TPV object (SI units, degrees)."""

    time: str
    lat: float
    lon: float
    alt: float | None = None
    speed: float | None = None
    track: float | None = None
    mode: int = 3

    def to_json(self) -> dict[str, Any]:
        """Return the fix as a JSON-serialisable dict (all keys present, null if unknown)."""
        return asdict(self)


class FixSource(Protocol):
    """Anything that can hand the poster its newest fix."""

    def latest(self) -> GpsFix | None:
        """Return the newest fix, or None if there is none yet."""


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
                self._cond.wait(_POLL if remaining is None else min(remaining, _POLL))
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


def _num(obj: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def tpv_to_fix(obj: dict[str, Any]) -> GpsFix | None:
    """Convert a gpsd TPV object to a GpsFix; None if it has no position or no time.

    Altitude is taken as altMSL (what GGA reports), else alt, else altHAE.
    """
    if obj.get("class") != "TPV":
        return None
    mode = obj.get("mode")
    lat, lon = _num(obj, "lat"), _num(obj, "lon")
    t = obj.get("time")
    if not isinstance(mode, int) or mode < 2 or lat is None or lon is None:
        return None
    if not isinstance(t, str) or not t:
        return None
    alt = _num(obj, "altMSL", "alt", "altHAE") if mode >= 3 else None
    return GpsFix(time=t, lat=lat, lon=lon, alt=alt, speed=_num(obj, "speed"),
                  track=_num(obj, "track"), mode=mode)


class GpsdReader(GpsReader):
    """Read fixes from gpsd's JSON protocol over TCP, reconnecting with backoff."""

    kind = "gpsd"

    def __init__(self, host: str = DEFAULT_GPSD_HOST, port: int = DEFAULT_GPSD_PORT,
                 queue_size: int = 1024) -> None:
        super().__init__(queue_size)
        self.host = host
        self.port = port

    def describe(self) -> str:
        """Return e.g. ``gpsd://127.0.0.1:2947``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"gpsd://{host}:{self.port}"

    def _run(self) -> None:
        outage = _Outage(self.describe())
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError as err:
                outage.failed(err, self._stop)
                continue
            try:
                sock.settimeout(_POLL)
                sock.sendall(_WATCH)
                self._connected = True
                outage.ok()
                reason = self._read(sock)
            except OSError as err:
                reason = str(err)
            finally:
                self._connected = False
                sock.close()
            if not self._stop.is_set():
                outage.failed(f"connection lost: {reason}", self._stop)

    def _read(self, sock: socket.socket) -> str:
        buf = b""
        warned_no_time = False
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return "closed by gpsd"
            buf += data
            *lines, buf = buf.split(b"\n")
            if len(buf) > _MAX_LINE:
                log.debug("%s: discarding %d bytes without newline", self.describe(), len(buf))
                buf = b""
            for line in lines:
                try:
                    obj = json.loads(line)
                except ValueError:
                    log.debug("%s: not JSON: %r", self.describe(), line[:120])
                    continue
                if not isinstance(obj, dict):
                    continue
                if obj.get("class") == "ERROR":
                    log.warning("%s: gpsd error: %s", self.describe(), obj.get("message"))
                fix = tpv_to_fix(obj)
                if fix is not None:
                    self._publish(fix)
                elif obj.get("class") == "TPV" and not obj.get("time") and not warned_no_time:
                    if isinstance(obj.get("mode"), int) and obj["mode"] >= 2:
                        warned_no_time = True
                        log.info("%s: ignoring fixes without time (receiver has not sent a "
                                 "date yet)", self.describe())
        return "stopped"


class NmeaSerialReader(GpsReader):
    """Read NMEA 0183 from a serial port; combine GGA and RMC into one fix per epoch."""

    kind = "nmea"

    def __init__(self, device: str, baud: int = 4800, queue_size: int = 1024) -> None:
        super().__init__(queue_size)
        self.device = device
        self.baud = baud
        self.bad_lines = 0
        self._key: Any = None
        self._parts: dict[str, Any] = {}
        self._emitted = False
        self._recent: collections.deque[frozenset[str]] = collections.deque(
            [frozenset({"GGA", "RMC"})], maxlen=3)
        self._date: date | None = None

    def describe(self) -> str:
        """Return e.g. ``nmea:/dev/ttyUSB0:4800``."""
        return f"nmea:{self.device}:{self.baud}"

    def _run(self) -> None:
        outage = _Outage(self.describe())
        while not self._stop.is_set():
            try:
                port = serial.Serial(self.device, self.baud, timeout=_POLL)
            except (serial.SerialException, OSError, ValueError) as err:
                outage.failed(err, self._stop)
                continue
            try:
                self._connected = True
                outage.ok()
                reason = self._read(port)
            except (serial.SerialException, OSError) as err:
                reason = str(err)
            finally:
                self._connected = False
                port.close()
            if not self._stop.is_set():
                outage.failed(f"port lost: {reason}", self._stop)

    def _read(self, port: serial.Serial) -> str:
        buf = b""
        while not self._stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            buf += data
            *lines, buf = buf.split(b"\n")
            if len(buf) > 4096:
                self._bad(buf[:80], "line too long")
                buf = b""
            for raw in lines:
                line = raw.strip().decode("ascii", errors="replace")
                if line:
                    self.feed_line(line)
        return "stopped"

    def _bad(self, line: object, why: object) -> None:
        self.bad_lines += 1
        log.debug("%s: bad NMEA line %r: %s", self.describe(), line, why)

    def feed_line(self, line: str) -> None:
        """Parse one NMEA sentence and publish a fix when its epoch is complete."""
        start = line.find("$")
        if start < 0:
            self._bad(line, "no '$'")
            return
        try:
            msg = pynmea2.parse(line[start:], check=True)
        except pynmea2.ParseError as err:
            self._bad(line, err)
            return
        kind = getattr(msg, "sentence_type", "")
        if kind not in ("GGA", "RMC"):
            return
        stamp = getattr(msg, "timestamp", None)
        if stamp is None:
            return
        if kind == "RMC" and msg.datestamp is not None:
            self._date = msg.datestamp
        if stamp != self._key:
            self._flush()
            self._key = stamp
            self._parts = {}
            self._emitted = False
        self._parts[kind] = msg
        expect = frozenset().union(*self._recent)
        if not self._emitted and expect <= self._parts.keys():
            self._emit()

    def _flush(self) -> None:
        """Close the current epoch; the sentence types of the last epochs set what to await."""
        if self._parts:
            self._recent.append(frozenset(self._parts))
            if not self._emitted:
                self._emit()

    def _emit(self) -> None:
        self._emitted = True
        gga, rmc = self._parts.get("GGA"), self._parts.get("RMC")
        lat = lon = alt = speed = track = None
        mode = 1
        if gga is not None and gga.gps_qual and gga.lat and gga.lon:
            lat, lon = gga.latitude, gga.longitude
            alt = gga.altitude
            mode = 3 if alt is not None else 2
        if rmc is not None and rmc.status == "A" and rmc.lat and rmc.lon:
            if lat is None:
                lat, lon, mode = rmc.latitude, rmc.longitude, 2
            if rmc.spd_over_grnd is not None:
                speed = round(float(rmc.spd_over_grnd) * KNOT_MS, 3)
            if rmc.true_course is not None:
                track = float(rmc.true_course)
        if lat is None or lon is None:
            return
        day = self._date or datetime.now(timezone.utc).date()
        stamp = datetime.combine(day, self._key.replace(tzinfo=None), tzinfo=timezone.utc)
        self._publish(GpsFix(time=utc_iso(stamp), lat=round(lat, 9), lon=round(lon, 9),
                             alt=alt, speed=speed, track=track, mode=mode))


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


_SPEC_HELP = "expected gpsd://HOST:PORT, nmea:DEVICE[:BAUD], fixed:LAT,LON[,ALT] or none"


def _parse_float(text: str, what: str, spec: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"GPS spec {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"GPS spec {spec!r}: {what} {text!r} is out of range [{lo}, {hi}]")
    return value


def parse_gps_spec(spec: str) -> GpsReader | None:
    """Build a (not yet started) reader from a CLI spec; ``none`` gives None.

    Raises ValueError with a one-line message for a malformed spec.
    """
    text = spec.strip()
    low = text.lower()
    if low == "none":
        return None
    if low == "gpsd" or low.startswith("gpsd://"):
        rest = text[len("gpsd://"):] if low.startswith("gpsd://") else ""
        if "/" in rest or "@" in rest:
            raise ValueError(f"GPS spec {spec!r}: {_SPEC_HELP}")
        try:
            parts = urlsplit(f"//{rest}")
            host = parts.hostname or DEFAULT_GPSD_HOST
            port = parts.port or DEFAULT_GPSD_PORT
        except ValueError as err:
            raise ValueError(f"GPS spec {spec!r}: bad gpsd port ({err})") from None
        if rest.endswith(":") or (rest and not parts.hostname):
            raise ValueError(f"GPS spec {spec!r}: bad gpsd address, {_SPEC_HELP}")
        return GpsdReader(host, port)
    if low.startswith("nmea:"):
        rest = text[len("nmea:"):]
        device, baud = rest, 4800
        head, sep, tail = rest.rpartition(":")
        if sep and tail.isdigit():
            device, baud = head, int(tail)
            if baud not in NMEA_BAUDS:
                raise ValueError(f"GPS spec {spec!r}: baud {baud} not one of "
                                 f"{', '.join(map(str, NMEA_BAUDS))}")
        if not device or device.endswith(":"):
            raise ValueError(f"GPS spec {spec!r}: missing serial device, e.g. nmea:/dev/ttyUSB0")
        return NmeaSerialReader(device, baud)
    if low.startswith("fixed:"):
        fields = [f.strip() for f in text[len("fixed:"):].split(",")]
        if len(fields) not in (2, 3) or not all(fields):
            raise ValueError(f"GPS spec {spec!r}: expected fixed:LAT,LON[,ALT]")
        lat = _parse_float(fields[0], "latitude", spec, -90.0, 90.0)
        lon = _parse_float(fields[1], "longitude", spec, -180.0, 180.0)
        alt = None
        if len(fields) == 3:
            alt = _parse_float(fields[2], "altitude", spec, -1000.0, 100000.0)
        return FixedReader(lat, lon, alt)
    raise ValueError(f"unknown GPS spec {spec!r}: {_SPEC_HELP}")


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
                    self._cond.wait(_POLL)
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
