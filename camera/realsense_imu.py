"""A RealSense's accelerometer and gyroscope, read beside the video streams.

Motion and video run at different rates, so librealsense advises reading motion through
a pipeline (or a sensor callback) of its own rather than the video pipeline's syncer:
`MotionStreams` starts one with a callback that only stores what arrives, and the
capture thread converts the stored samples when it drains them (the callback holds the
GIL for as short a time as possible, so the playback or device queue never overflows).

Rates are what the device's motion profiles offer (the highest per stream), never
assumed. Each sample is corrected with the profile's motion intrinsics when the device
has them (M @ v - bias, `media.imu.correct`); librealsense's own correction is switched
off where the sensor offers the option, so it is applied exactly once, and a recording
made with --record-raw keeps the raw samples with the intrinsics beside them.

Timestamps are seconds since the epoch, as the frames' are: the device's own clock when
its domain is host time (global or system time, within CLOCK_TOLERANCE of time.time());
otherwise (a hardware clock, a recording's past) the device clock shifted onto
time.time() at the first sample and shifted again if it jumps (a recording looping).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from camera.base import SourceError
from camera.realsense_device import (
    CLOCK_TOLERANCE,
    one_line,
    rs,
    start_pipeline,
    stop_pipeline,
)
from media.imu import ACCEL, GYRO, SAMPLE, correct, samples

log = logging.getLogger(__name__)

REANCHOR_S = 0.5
"""A hardware-clock sample this far from time.time() (after the first) moves the anchor."""
BACKLOG = 4000
"""Samples kept for a drain that comes late (20 s of gyro at 200 Hz); older ones go."""


def motion_profiles(sensors: Any) -> dict[int, Any]:
    """The fastest motion_xyz32f profile of each of accel and gyro among `sensors`."""
    kinds = {rs.stream.accel: ACCEL, rs.stream.gyro: GYRO}
    best: dict[int, Any] = {}
    for sensor in sensors:
        for p in sensor.get_stream_profiles():
            kind = kinds.get(p.stream_type())
            if (kind is None or not p.is_motion_stream_profile()
                    or p.format() != rs.format.motion_xyz32f):
                continue
            if kind not in best or p.fps() > best[kind].fps():
                best[kind] = p
    return best


def intrinsics_of(profile: Any) -> list[list[float]] | None:
    """A motion profile's 3x4 intrinsic matrix, or None when the device has none."""
    try:
        intr = profile.as_motion_stream_profile().get_motion_intrinsics()
    except RuntimeError as exc:
        log.debug("no motion intrinsics for %s: %s", profile.stream_name(), one_line(exc))
        return None
    data = [[float(v) for v in row] for row in intr.data]
    identity = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]
    return None if data == identity else data


class MotionStreams:
    """Accel and gyro of one device or recording, collected by a callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: list[tuple[int, float, bool, float, float, float]] = []
        self._pipe: Any = None
        self._sensor: Any = None
        self.rates: dict[int, int] = {}
        self.intrinsics: dict[int, list[list[float]] | None] = {}
        self._anchor: float | None = None
        self._stream_kinds: dict[Any, int] = {}

    @property
    def running(self) -> bool:
        return self._pipe is not None or self._sensor is not None

    def _profiles(self, sensors: Any) -> dict[int, Any]:
        found = motion_profiles(sensors)
        self.rates = {k: int(p.fps()) for k, p in found.items()}
        self.intrinsics = {k: intrinsics_of(p) for k, p in found.items()}
        self._stream_kinds = {p.stream_type(): k for k, p in found.items()}
        return found

    def start_pipeline(self, sensors: Any, cfg: Any, what: str) -> Any:
        """Start a pipeline of their own for the motion streams `sensors` offer; `cfg`
        names the device or file. Its profile, or None without a motion stream to read."""
        found = self._profiles(sensors)
        if not found:
            return None
        for p in found.values():
            cfg.enable_stream(p.stream_type(), p.format(), p.fps())
        for sensor in sensors:
            _raw_samples(sensor)
        pipe = rs.pipeline()
        try:
            profile = start_pipeline(pipe, cfg, what, self._on_frame)
        except (RuntimeError, SourceError) as exc:
            log.warning("IMU not started: %s", one_line(exc))
            self.rates = {}
            return None
        self._pipe = pipe
        self._anchor = None
        return profile

    def start_sensor(self, sensors: Any) -> bool:
        """Open and start the motion sensor itself with the callback (a given device, or
        the recording device of --record-raw, so the samples land in the same file)."""
        found = self._profiles(sensors)
        for sensor in sensors:
            if not found or not any(motion_profiles([sensor]).values()):
                continue
            _raw_samples(sensor)
            try:
                sensor.open(list(found.values()))
                sensor.start(self._on_frame)
            except RuntimeError as exc:
                log.warning("IMU not started: %s", one_line(exc))
                self.rates = {}
                return False
            self._sensor = sensor
            self._anchor = None
            return True
        return False

    def _on_frame(self, frame: Any) -> None:
        """The librealsense callback: store, nothing more."""
        kind = self._stream_kinds.get(frame.get_profile().stream_type())
        if kind is None:
            return
        d = frame.as_motion_frame().get_motion_data()
        host = frame.get_frame_timestamp_domain() in (rs.timestamp_domain.global_time,
                                                      rs.timestamp_domain.system_time)
        item = (kind, frame.get_timestamp() / 1000.0, host, d.x, d.y, d.z)
        with self._lock:
            self._raw.append(item)
            if len(self._raw) > BACKLOG:
                del self._raw[: len(self._raw) - BACKLOG]

    def drain(self) -> np.ndarray:
        """The samples that arrived since the last call, corrected and stamped."""
        with self._lock:
            raw, self._raw = self._raw, []
        out = []
        for kind in (ACCEL, GYRO):
            rows = [r for r in raw if r[0] == kind]
            if not rows:
                continue
            arr = np.array([r[3:] for r in rows], np.float32)
            t = np.array([self._stamp(r[1], r[2]) for r in rows])
            out.append(samples(t, kind, correct(arr, self.intrinsics.get(kind))))
        if not out:
            return np.empty(0, SAMPLE)
        batch = np.concatenate(out)
        return batch[np.argsort(batch["t"], kind="stable")]

    def _stamp(self, device_s: float, host_domain: bool) -> float:
        now = time.time()
        if host_domain and abs(device_s - now) < CLOCK_TOLERANCE:
            return device_s
        if self._anchor is None or abs(device_s + self._anchor - now) > REANCHOR_S:
            self._anchor = now - device_s
        return device_s + self._anchor

    def stop(self) -> None:
        """Stop the motion pipeline or sensor. Safe to call twice."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            stop_pipeline(pipe, "motion pipeline stop", "stopping the IMU")
        sensor, self._sensor = self._sensor, None
        if sensor is not None:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError as exc:
                    log.debug("closing the motion sensor: %s", one_line(exc))
        with self._lock:
            self._raw = []

    def info(self) -> dict[str, Any] | None:
        """Nominal rates and whether intrinsics are applied, for /status; None without IMU."""
        if not self.rates:
            return None
        return {"accel_hz": self.rates.get(ACCEL), "gyro_hz": self.rates.get(GYRO),
                "intrinsics": {("accel" if k == ACCEL else "gyro"): v is not None
                               for k, v in self.intrinsics.items()}}


def _raw_samples(sensor: Any) -> None:
    """Switch off librealsense's own motion correction: ours applies the intrinsics."""
    option = getattr(rs.option, "enable_motion_correction", None)
    try:
        if option is not None and sensor.supports(option):
            sensor.set_option(option, 0)
    except RuntimeError as exc:
        log.debug("motion correction option: %s", one_line(exc))
