"""The capture process's IMU writer: the source's motion samples into the IMU ring.

The capture loop drains the source after every read (a frame or a timeout), so samples
reach the ring within a frame period; a batch larger than a slot takes several slots.
It counts the samples per stream and writes each stream's rate over the last second of
its own clock into the control block (`imu_accel_hz`, `imu_gyro_hz`), which is what
/status reports beside the nominal rates of the source's info.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from camera.base import FrameSource
from media.imu import ACCEL, GYRO, max_samples, pack
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FrameRing

log = logging.getLogger("capture")

RATE_WINDOW_S = 1.0


class ImuWriter:
    """Writes batches of samples into the IMU ring and measures the streams' rates."""

    def __init__(self, ring: FrameRing, control: Control, cfg: Config) -> None:
        self.ring, self.control, self.cfg = ring, control, cfg
        self.per_slot = max_samples(ring.capacity)
        self.batches = 0
        self._counts = {ACCEL: 0, GYRO: 0}
        self._since = time.monotonic()
        self._told = False

    def opened(self, source: FrameSource, info: dict) -> None:
        """A (re)opened source: say once when --imu asked for an IMU it does not have."""
        self._counts = {ACCEL: 0, GYRO: 0}
        self._since = time.monotonic()
        if "imu" not in info:
            self.control["imu_accel_hz"] = self.control["imu_gyro_hz"] = 0.0
            if self.cfg.imu == "on" and not self._told:
                self._told = True
                log.warning("--imu: the %s source has no IMU; streaming without one",
                            info.get("kind", source.kind))

    def pump(self, source: FrameSource) -> None:
        """Move what the source collected into the ring."""
        batch = source.imu_samples()
        if batch is None:
            return
        for i in range(0, len(batch), self.per_slot):
            self.write(batch[i : i + self.per_slot])
        self._rates(batch)

    def write(self, batch: np.ndarray) -> None:
        """One slot: the packed batch; ts_capture is its newest sample's time."""
        self.batches += 1
        self.ring.publish(pack(batch), frame_no=self.batches, ts_capture=float(batch["t"][-1]),
                          width=len(batch), height=1)
        self.control.add("imu_samples", len(batch))

    def _rates(self, batch: np.ndarray) -> None:
        for kind in self._counts:
            self._counts[kind] += int(np.count_nonzero(batch["kind"] == kind))
        now = time.monotonic()
        span = now - self._since
        if span >= RATE_WINDOW_S:
            self.control["imu_accel_hz"] = self._counts[ACCEL] / span
            self.control["imu_gyro_hz"] = self._counts[GYRO] / span
            self._counts = {ACCEL: 0, GYRO: 0}
            self._since = now
