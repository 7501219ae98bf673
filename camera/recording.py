"""Intel RealSense recordings: a .bag or .db3 file played through librealsense.

Frames go through the same processing path as the live camera
(camera/realsense_frames.py). Without pyrealsense2 this module still imports and opening
a recording is a configuration error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camera import realsense_device as device
from camera.base import Frame, SourceConfigError, SourceEnded, SourceError
from camera.realsense_frames import RealSenseBase

log = logging.getLogger(__name__)


class RecordingSource(RealSenseBase):
    """Plays a librealsense .bag or .db3 recording through rs.pipeline, looping by default.

    Frame.timestamp is time.time() at arrival (the recorded clock is in the past). With
    loop=False the end of the file raises SourceEnded; the capture loop then reopens it,
    so the recording plays again after a NO SIGNAL pause.
    """

    kind = "recording"

    def __init__(self, path: str, *, loop: bool = True, realtime: bool = True,
                 align: bool = True, filters: Sequence[str] = (), imu: bool = True) -> None:
        super().__init__(align=align, filters=filters, imu=imu)
        self.path = str(path)
        self.loop = loop
        self.realtime = realtime
        self._pipe: Any = None
        self._playback: Any = None
        self._dev_info: dict[str, str] = {}
        self._duration = 0.0

    def open(self) -> None:
        """Open the file; SourceConfigError (one line) when missing or unreadable."""
        device.require_rs()
        self.close()
        p = Path(self.path)
        if not p.is_file():
            raise SourceConfigError(f"recording {self.path}: no such file")
        if p.suffix not in (".bag", ".db3"):
            raise SourceConfigError(f"recording {self.path}: expected a .bag or .db3 file")
        cfg = device.rs.config()
        pipe = device.rs.pipeline()
        try:
            cfg.enable_device_from_file(str(p), repeat_playback=self.loop)
            for kind in (device.rs.stream.accel, device.rs.stream.gyro):
                cfg.disable_stream(kind)  # the motion streams, if any, play on their own
            profile = device.start_pipeline(pipe, cfg, "playback start")
        except RuntimeError as exc:
            raise SourceConfigError(
                f"recording {self.path} cannot be played: {device.one_line(exc)}") from None
        self._pipe = pipe
        try:
            dev = profile.get_device()
            self._playback = dev.as_playback()
            self._playback.set_real_time(self.realtime)
            self._duration = self._playback.get_duration().total_seconds()
            self._dev_info = device.device_info(dev)
            streams = {s.stream_type(): s for s in profile.get_streams()}
            color = streams.get(device.rs.stream.color)
            depth = streams.get(device.rs.stream.depth)
            if color is None:
                raise SourceConfigError(f"recording {self.path} has no color stream")
            if depth is not None:
                self.depth_scale = device.depth_scale(dev)
            self._setup_processing(color, depth)
            if self.imu_wanted:
                self._open_motion(dev)
        except SourceConfigError:
            self.close()
            raise
        except RuntimeError as exc:
            self.close()
            raise SourceConfigError(
                f"recording {self.path} cannot be played: {device.one_line(exc)}") from None
        log.info("playing %s (%.1f s, loop=%s, realtime=%s)", self.path, self._duration,
                 self.loop, self.realtime)

    def _open_motion(self, dev: Any) -> None:
        """Play the recording's motion streams, if it has them, through a pipeline of
        their own (its own playback of the file, looping and paced as the video's)."""
        cfg = device.rs.config()
        cfg.enable_device_from_file(self.path, repeat_playback=self.loop)
        profile = self.motion.start_pipeline(dev.query_sensors(), cfg, "motion playback start")
        if profile is not None:
            profile.get_device().as_playback().set_real_time(self.realtime)

    def _ended(self) -> bool:
        return (not self.loop and self._playback is not None
                and self._playback.current_status() == device.rs.playback_status.stopped)

    def read(self, timeout: float) -> Frame | None:
        """Next frame; SourceEnded once a non-looping recording has delivered its last."""
        if self._pipe is None:
            raise SourceError("recording is not open")
        if self.loop:
            return self._wait(self._pipe, timeout)
        deadline = time.monotonic() + timeout
        while True:  # short waits, so the end is noticed without waiting out `timeout`
            ended = self._ended()
            frame = self._wait(self._pipe, min(0.1, max(deadline - time.monotonic(), 0.0)))
            if frame is not None:
                return frame
            if ended or self._ended():
                raise SourceEnded(f"recording {Path(self.path).name} ended "
                                  f"after {self.frames_read} frames")
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        """Stop playback and release the file. Safe to call twice."""
        pipe, self._pipe, self._playback = self._pipe, None, None
        self.frames_read = 0
        self.motion.stop()
        if pipe is not None:
            device.stop_pipeline(pipe, "playback stop", "stopping playback")

    def info(self) -> dict[str, Any]:
        """Path, mode, depth scale and intrinsics of the recording for /status."""
        info: dict[str, Any] = {"kind": self.kind, "path": self.path, "loop": self.loop,
                                "realtime": self.realtime, "duration_s": self._duration}
        info.update(self._stream_info())
        info.update({f"device_{k}": v for k, v in self._dev_info.items()})
        return info
