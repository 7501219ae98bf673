"""Which RealSense cameras came on the bus since the last look: the hot-plug watcher.

The supervisor asks `DeviceWatcher.poll()` at every turn of its loop; at most once per
`period` it lists the attached serials and returns the ones never seen in this run. A
camera unplugged and plugged in again is not new: its capture child reopens it on the
same routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

POLL_S = 1.0
"""Seconds between two listings: well inside the 5 s a new camera has to appear in."""


def realsense_serials() -> list[str]:
    """Serials of the RealSense devices attached now ([] without pyrealsense2)."""
    from camera.realsense_device import realsense_devices  # noqa: PLC0415

    return [d["serial"] for d in realsense_devices() if d.get("serial")]


class DeviceWatcher:
    """New serials on the bus, each returned once."""

    def __init__(self, known: Iterable[str], list_serials: Callable[[], list[str]] =
                 realsense_serials, period: float = POLL_S) -> None:
        self.known = set(known)
        self.list_serials = list_serials
        self.period = period
        self.next_at = 0.0

    def poll(self, now: float | None = None) -> list[str]:
        """The serials attached now that this run has not seen, in the order listed."""
        now = time.monotonic() if now is None else now
        if now < self.next_at:
            return []
        self.next_at = now + self.period
        try:
            found = self.list_serials()
        except (OSError, RuntimeError) as exc:
            log.debug("listing devices: %s", exc)
            return []
        new = [s for s in dict.fromkeys(found) if s not in self.known]
        self.known.update(new)
        return new
