"""A GPS fix, as readers produce it and the poster and the robotics sinks take it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

POLL_S = 0.2  # seconds a blocking wait lasts before the stop flag is checked again


def utc_iso(dt: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds, as gpsd does."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


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
