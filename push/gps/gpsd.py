"""gpsd: fixes from its JSON protocol over TCP (TPV objects)."""

from __future__ import annotations

import json
import logging
import math
import socket
from typing import Any

from push.gps.fix import POLL_S, GpsFix
from push.gps.reader import StreamReader

log = logging.getLogger("push.gps")

DEFAULT_GPSD_HOST = "127.0.0.1"
DEFAULT_GPSD_PORT = 2947
_WATCH = b'?WATCH={"enable":true,"json":true};\n'
_MAX_LINE = 65536


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


class GpsdReader(StreamReader):
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

    def _open(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=1.0)

    def _greet(self, stream: socket.socket) -> None:
        stream.settimeout(POLL_S)
        stream.sendall(_WATCH)

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
