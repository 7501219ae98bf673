"""The IMU in /status: rates the capture process measured, and the newest readings.

The web process reads the newest batch of the IMU ring (shared memory, as the frames)
and keeps the last accel and gyro values it saw, so a batch holding only one stream does
not blank the other; the page shows the tilt from gravity they give.
"""

from __future__ import annotations

from typing import Any

from media.imu import latest, tilt_deg, unpack
from pipeline.shm import FrameRing


class ImuReadout:
    """The `imu` document of /status, from the control block and the IMU ring."""

    def __init__(self, ring: FrameRing | None) -> None:
        self.ring = ring
        self.held: dict[str, Any] = {}
        self.counter = 0

    def status(self, snap: dict[str, float], info: dict[str, Any]) -> dict[str, Any] | None:
        """Measured and nominal rates, samples so far and the newest readings; None when
        the source has no IMU."""
        nominal = info.get("imu")
        if not nominal:
            self.held = {}
            return None
        if self.ring is not None and self.ring.counter() != self.counter:
            got = self.ring.read_latest()
            if got is not None:
                self.counter = got[0].counter
                self.held.update(latest([unpack(got[1])]))
        readings = None
        if "accel" in self.held:
            readings = {**self.held, "tilt_deg": round(tilt_deg(self.held["accel"]) or 0.0, 3)}
        return {"accel_hz": round(snap["imu_accel_hz"], 2),
                "gyro_hz": round(snap["imu_gyro_hz"], 2),
                "samples": int(snap["imu_samples"]),
                "nominal": {"accel_hz": nominal.get("accel_hz"),
                            "gyro_hz": nominal.get("gyro_hz")},
                "intrinsics": nominal.get("intrinsics"),
                "latest": readings}
