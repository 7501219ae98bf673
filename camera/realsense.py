"""The live Intel RealSense source: a D455 streaming color and z16 depth.

Through rs.pipeline, or a given rs.device's sensors synced by an rs.syncer; frames go
through the shared processing path (camera/realsense_frames.py). Without pyrealsense2
this module still imports and opening the source is a configuration error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camera.base import Frame, SourceConfigError, SourceError
from camera.realsense_device import (
    apply_sync,
    depth_scale,
    device_info,
    one_line,
    require_rs,
    rs,
    start_pipeline,
    stop_pipeline,
    validate_mode,
)
from camera.realsense_frames import TO_BGR, RealSenseBase

log = logging.getLogger(__name__)

DEVICE_WAIT = 3.0      # s a first open() waits for a camera still enumerating
RESET_INTERVAL = 30.0  # s between two hardware resets of the same camera
RESET_SETTLE = 3.0     # s after a reset before the camera is used again
SYNC_QUEUE = 2         # framesets buffered by the syncer of the device= path


def offered_modes(sensors: Any, bgr8_only: bool = False) -> set[tuple[int, int, int]]:
    """(width, height, fps) at which the sensors offer both z16 depth and a color format
    we convert (bgr8 alone: what rs.pipeline is asked for)."""
    depth: set[tuple[int, int, int]] = set()
    color: set[tuple[int, int, int]] = set()
    for sensor in sensors:
        for p in sensor.get_stream_profiles():
            if not p.is_video_stream_profile():
                continue
            v = p.as_video_stream_profile()
            mode = (v.width(), v.height(), p.fps())
            if p.stream_type() == rs.stream.depth and p.format() == rs.format.z16:
                depth.add(mode)
            elif p.stream_type() == rs.stream.color and (
                    p.format() == rs.format.bgr8 if bgr8_only else p.format() in TO_BGR):
                color.add(mode)
    return depth & color


def nearest_mode(modes: set[tuple[int, int, int]], want: tuple[int, int, int]
                 ) -> tuple[int, int, int]:
    """The mode closest to `want`: nearest pixel count, then nearest rate, then larger."""
    w, h, fps = want
    return min(modes, key=lambda m: (abs(m[0] * m[1] - w * h), abs(m[2] - fps), -m[0]))


class RealSenseSource(RealSenseBase):
    """A live RealSense (D455) camera through rs.pipeline, or a given rs.device via a syncer.

    Recovery happens inside open(), which the capture loop calls after close(): it
    re-queries the devices each time; when the camera is still enumerated but stopped
    delivering (or refused to start), open() sends it a hardware_reset() (at most once per
    RESET_INTERVAL) and raises SourceError so the loop backs off while it re-enumerates.
    No device at the first open() is fatal (SourceConfigError); after a successful session
    a missing device is a SourceError (unplugged: keep retrying). Every blocking
    librealsense call is bounded (START_TIMEOUT, STOP_TIMEOUT, the read timeout).

    Frame.timestamp is the device timestamp when its domain is host time (global_time or
    system_time, within CLOCK_TOLERANCE of time.time()), else time.time() at arrival.
    With decimation and align=False the smaller depth image is resized (nearest) to the
    color size; without align depth and color pixels do not correspond.
    """

    kind = "realsense"

    def __init__(self, width: int, height: int, fps: int, *, serial: str | None = None,
                 align: bool = True, filters: Sequence[str] = (),
                 record_raw: str | None = None, device: Any = None,
                 device_wait: float = DEVICE_WAIT, imu: bool = True,
                 sync: str | None = None) -> None:
        super().__init__(align=align, filters=filters, imu=imu)
        validate_mode(width, height, fps)
        if record_raw is not None and not str(record_raw).endswith(".db3"):
            raise SourceConfigError(f"--record-raw {record_raw}: librealsense writes .db3 "
                                    "files only; use a name ending in .db3")
        self.width, self.height, self.fps = width, height, int(fps)
        self.serial = serial
        self.record_raw = record_raw
        self.device_wait = device_wait
        self.sync = sync  # --sync: inter_cam_sync_mode set before each start
        self._device = device
        self._pipe: Any = None
        self._syncer: Any = None
        self._sensors: list[Any] = []
        self._recorder: Any = None
        self._dev_info: dict[str, str] = {}
        self._record_path: str | None = None
        self._recordings = 0
        self._ever_opened = False
        self._stalled = False
        self._needs_reset = False
        self._last_reset = -RESET_INTERVAL

    def _next_record_path(self) -> str:
        """The first session records to record_raw; later ones to NAME-2.db3, NAME-3.db3..."""
        assert self.record_raw is not None
        if self._recordings == 0:
            return self.record_raw
        p = Path(self.record_raw)
        return str(p.with_name(f"{p.stem}-{self._recordings + 1}{p.suffix}"))

    def open(self) -> None:
        """Start streaming (pipeline, or the given device's sensors into a syncer)."""
        require_rs()
        self.close()
        self._stalled = False
        if self._device is not None:
            self._open_device(self._device)
        else:
            self._open_pipeline()
        self._ever_opened = True
        if self._record_path:
            self._recordings += 1
        log.info("RealSense %s %s streaming %dx%d@%d align=%s filters=%s",
                 self._dev_info.get("name", "?"), self._dev_info.get("serial", "?"),
                 self.width, self.height, self.fps, self.align, ",".join(self.filters))

    def _fall_back(self, modes: set[tuple[int, int, int]]) -> None:
        """Stream the nearest mode the device has when it lacks the one asked for,
        saying so in one line (once: a reopen finds the mode it fell back to)."""
        want = (self.width, self.height, self.fps)
        if not modes or want in modes:
            return
        got = nearest_mode(modes, want)
        log.warning("RealSense %s does not offer color + depth at %dx%d@%d: using %dx%d@%d, "
                    "the nearest mode it has", self._dev_info.get("serial", "?"), *want, *got)
        self.width, self.height, self.fps = got

    def _apply_sync(self, dev: Any) -> None:
        """--sync, set before streaming starts; said once, not at every reopen."""
        if self.sync is None:
            return
        line = apply_sync(dev, self.sync)
        (log.debug if self._ever_opened else log.info)("%s", line)

    def _find_device(self) -> Any:
        """The device to use (by serial or the first), waiting briefly on the first open."""
        deadline = time.monotonic() + (0.0 if self._ever_opened else self.device_wait)
        while True:
            try:
                found = list(rs.context().query_devices())
            except RuntimeError as exc:
                log.debug("querying RealSense devices: %s", exc)
                found = []
            for dev in found:
                if self.serial is None or device_info(dev).get("serial") == self.serial:
                    return dev
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        serials = [device_info(d).get("serial", "?") for d in found]
        wanted = f" with serial {self.serial}" if self.serial else ""
        if self._ever_opened:
            self._needs_reset = False  # it left the bus: it will re-enumerate fresh
            raise SourceError(f"RealSense{wanted} not connected")
        if not serials:
            raise SourceConfigError(f"no RealSense device found{wanted}")
        raise SourceConfigError(f"no RealSense device{wanted}; found: {', '.join(serials)}")

    def _maybe_reset(self, dev: Any) -> None:
        """Hardware-reset a camera that stalled while staying enumerated; SourceError if so."""
        since = time.monotonic() - self._last_reset
        if since < RESET_SETTLE:
            raise SourceError("RealSense is re-enumerating after a hardware reset")
        if not self._needs_reset or since < RESET_INTERVAL:
            return
        self._needs_reset = False
        self._last_reset = time.monotonic()
        log.warning("RealSense %s stalled: sending a hardware reset",
                    device_info(dev).get("serial", "?"))
        try:
            dev.hardware_reset()
        except RuntimeError as exc:
            log.warning("hardware reset failed: %s", one_line(exc))
        raise SourceError("RealSense stalled; hardware reset sent, waiting for it to return")

    def _open_pipeline(self) -> None:
        dev = self._find_device()
        self._maybe_reset(dev)
        self._dev_info = device_info(dev)
        self._apply_sync(dev)
        serial = self._dev_info.get("serial")
        self._fall_back(offered_modes(dev.query_sensors(), bgr8_only=True))
        cfg = rs.config()
        if serial:
            cfg.enable_device(serial)
        cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.bgr8, self.fps)
        cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipe = rs.pipeline()
        if not cfg.can_resolve(rs.pipeline_wrapper(pipe)):
            msg = (f"RealSense {self._dev_info.get('name', '?')} {serial} does not offer "
                   f"color bgr8 + depth z16 at {self.width}x{self.height}@{self.fps}")
            if self._ever_opened:
                raise SourceError(msg)
            raise SourceConfigError(msg)
        self._record_path = None
        if self.record_raw:
            self._record_path = self._next_record_path()
            cfg.enable_record_to_file(self._record_path)
        try:
            profile = start_pipeline(pipe, cfg, "pipeline start")
        except RuntimeError as exc:
            self._needs_reset = True
            raise SourceError(f"cannot start RealSense {serial}: {one_line(exc)}") from None
        except SourceError:
            self._needs_reset = True
            raise
        self._pipe = pipe
        try:
            self.depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
            self._device_clock = True
            self._setup_processing(profile.get_stream(rs.stream.color),
                                   profile.get_stream(rs.stream.depth))
        except RuntimeError as exc:
            self.close()
            raise SourceError(f"RealSense {serial}: {one_line(exc)}") from None
        if not self.imu_wanted:
            return
        if self._record_path:
            # The recording device wraps the camera's sensors: started from it, the motion
            # sensor's samples go into the same file as the video.
            self.motion.start_sensor(profile.get_device().query_sensors())
        else:
            motion_cfg = rs.config()
            if serial:
                motion_cfg.enable_device(serial)
            self.motion.start_pipeline(dev.query_sensors(), motion_cfg, "motion pipeline start")

    def _open_device(self, dev: Any) -> None:
        """The device= path: open the device's sensors and sync them with an rs.syncer."""
        self._dev_info = device_info(dev)
        self._apply_sync(dev)
        sensors = dev.query_sensors()
        self._fall_back(offered_modes(sensors))
        color_p = depth_p = None
        color_s = depth_s = None
        for sensor in sensors:
            for p in sensor.get_stream_profiles():
                if not p.is_video_stream_profile():
                    continue
                v = p.as_video_stream_profile()
                if (v.width(), v.height(), p.fps()) != (self.width, self.height, self.fps):
                    continue
                if p.stream_type() == rs.stream.depth and p.format() == rs.format.z16:
                    depth_p, depth_s = depth_p or p, depth_s or sensor
                elif (p.stream_type() == rs.stream.color and p.format() in TO_BGR
                      and (color_p is None or p.format() == rs.format.bgr8)):
                    color_p, color_s = p, sensor
        if color_p is None or depth_p is None:
            raise SourceConfigError("device offers no color + z16 depth at any one mode")
        self.depth_scale = depth_scale(dev)
        self._device_clock = True
        self._setup_processing(color_p, depth_p)
        self._record_path = None
        try:
            if self.record_raw:
                self._record_path = self._next_record_path()
                self._recorder = rs.recorder(self._record_path, dev)
            self._syncer = rs.syncer(SYNC_QUEUE)
            if color_s == depth_s:
                color_s.open([depth_p, color_p])
                self._sensors = [color_s]
            else:
                depth_s.open(depth_p)
                self._sensors = [depth_s]
                color_s.open(color_p)
                self._sensors.append(color_s)
            for sensor in self._sensors:
                sensor.start(self._syncer)
            if self.imu_wanted:
                self.motion.start_sensor(dev.query_sensors())
        except RuntimeError as exc:
            self.close()
            raise SourceError(f"cannot start the RealSense device: {one_line(exc)}") from None

    def read(self, timeout: float) -> Frame | None:
        """Next aligned frame, None after `timeout` s without one; SourceError when lost."""
        waiter = self._pipe if self._pipe is not None else self._syncer
        if waiter is None:
            raise SourceError("RealSense source is not open")
        try:
            frame = self._wait(waiter, timeout)
        except SourceError:
            self._stalled = True
            raise
        self._stalled = frame is None
        return frame

    def close(self) -> None:
        """Stop streaming; a session that ended stalled gets the camera reset on reopen."""
        if self._stalled and self._pipe is not None:
            self._needs_reset = True
        self.motion.stop()
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            stop_pipeline(pipe, "pipeline stop", "stopping the RealSense pipeline")
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError as exc:
                    log.debug("closing a RealSense sensor: %s", one_line(exc))
        self._sensors = []
        self._syncer = None
        if self._recorder is not None:
            self._recorder.pause()
            self._recorder = None

    def info(self) -> dict[str, Any]:
        """Camera identity, mode, depth scale and intrinsics for /status."""
        info: dict[str, Any] = {"kind": self.kind, "width": self.width, "height": self.height,
                                "fps": self.fps, "serial": self.serial}
        info.update(self._stream_info())
        info.update(self._dev_info)
        if self._record_path:
            info["recording_to"] = self._record_path
        return info
