"""The --gps spec: `gpsd://HOST:PORT`, `nmea:DEVICE[:BAUD]`, `fixed:LAT,LON[,ALT]` or `none`."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from push.gps.gpsd import DEFAULT_GPSD_HOST, DEFAULT_GPSD_PORT, GpsdReader
from push.gps.nmea import NMEA_BAUDS, NmeaSerialReader
from push.gps.reader import FixedReader, GpsReader

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
