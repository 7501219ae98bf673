"""A serial NMEA 0183 receiver: GGA and RMC sentences, one fix per epoch."""

from __future__ import annotations

import collections
import logging
from datetime import date, datetime, timezone
from typing import Any

import pynmea2
import serial

from push.gps.fix import POLL_S, GpsFix, utc_iso
from push.gps.reader import StreamReader

log = logging.getLogger("push.gps")

KNOT_MS = 0.514444
NMEA_BAUDS = (4800, 9600, 19200, 38400, 57600, 115200)


class NmeaSerialReader(StreamReader):
    """Read NMEA 0183 from a serial port; combine GGA and RMC into one fix per epoch."""

    kind = "nmea"
    open_errors = (serial.SerialException, OSError, ValueError)
    read_errors = (serial.SerialException, OSError)
    lost = "port lost"

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

    def _open(self) -> serial.Serial:
        return serial.Serial(self.device, self.baud, timeout=POLL_S)

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
