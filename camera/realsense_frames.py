"""The frame-processing path both RealSense sources share: filters, alignment, conversion.

Optional librealsense post-processing filters on depth, depth aligned to color, color
converted to BGR, depth copied as uint16; also the stream modes and intrinsics that
/status reports. Used by the live camera (camera/realsense.py) and the recordings
(camera/recording.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from camera.base import Frame, FrameSource, SourceConfigError, SourceError
from camera.realsense_device import CLOCK_TOLERANCE, normalize_filters, one_line, rs
from camera.realsense_imu import MotionStreams


def _intrinsics(profile: Any) -> dict[str, Any]:
    """A video stream profile's intrinsics as plain data for /status."""
    i = profile.as_video_stream_profile().get_intrinsics()
    return {"width": i.width, "height": i.height, "fx": i.fx, "fy": i.fy, "ppx": i.ppx,
            "ppy": i.ppy, "model": str(i.model).rsplit(".", 1)[-1],
            "coeffs": [float(c) for c in i.coeffs]}


def _color_converters() -> dict[Any, Callable[[np.ndarray], np.ndarray]]:
    if rs is None:
        return {}
    return {
        rs.format.bgr8: lambda a: a.copy(),
        rs.format.rgb8: lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGR),
        rs.format.bgra8: lambda a: cv2.cvtColor(a, cv2.COLOR_BGRA2BGR),
        rs.format.rgba8: lambda a: cv2.cvtColor(a, cv2.COLOR_RGBA2BGR),
        rs.format.yuyv: lambda a: cv2.cvtColor(a, cv2.COLOR_YUV2BGR_YUYV),
        rs.format.uyvy: lambda a: cv2.cvtColor(a, cv2.COLOR_YUV2BGR_UYVY),
    }


TO_BGR = _color_converters()


class RealSenseBase(FrameSource):
    """Frame processing shared by the live camera, the software-device path and recordings."""

    self_paced = True

    def __init__(self, *, align: bool, filters: Sequence[str], imu: bool = True) -> None:
        self.align = align
        self.imu_wanted = imu
        self.motion = MotionStreams()
        self.filters = normalize_filters(filters)
        self.depth_scale = 0.001
        self.frames_read = 0
        self._blocks: list[Any] = []
        self._aligner: Any = None
        self._color_profile: Any = None
        self._depth_profile: Any = None
        self._device_clock = False
        self._streams: dict[str, Any] = {}

    def _setup_processing(self, color_profile: Any, depth_profile: Any | None) -> None:
        """Fresh filter/align blocks (temporal state does not outlive a session)."""
        fmt = color_profile.format()
        if fmt not in TO_BGR:
            raise SourceConfigError(f"RealSense color format {fmt} is not supported")
        self._color_profile, self._depth_profile = color_profile, depth_profile
        self._blocks = []
        if depth_profile is not None:
            # spatial and temporal work best on disparity: convert around them
            disp = [n for n in self.filters if n in ("spatial", "temporal")]
            for name in self.filters:
                if disp and name == disp[0]:
                    self._blocks.append(rs.disparity_transform(True))
                self._blocks.append(self._make_filter(name))
                if disp and name == disp[-1]:
                    self._blocks.append(rs.disparity_transform(False))
        use_align = self.align and depth_profile is not None
        self._aligner = rs.align(rs.stream.color) if use_align else None
        self._streams = self._describe_streams()

    @staticmethod
    def _make_filter(name: str) -> Any:
        return {
            "decimation": rs.decimation_filter, "threshold": rs.threshold_filter,
            "spatial": rs.spatial_filter, "temporal": rs.temporal_filter,
            "hole_filling": rs.hole_filling_filter,
        }[name]()

    def _timestamp(self, frame: Any) -> float:
        """Seconds since the epoch: the device's own clock when it is host time, else now."""
        now = time.time()
        if not self._device_clock:
            return now
        domain = frame.get_frame_timestamp_domain()
        if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            ts = frame.get_timestamp() / 1000.0
            if abs(ts - now) < CLOCK_TOLERANCE:
                return ts
        return now

    def _process(self, frames: Any) -> Frame | None:
        """Filters, alignment and conversion of one frameset; None if it lacks a stream."""
        for block in self._blocks:
            frames = block.process(frames).as_frameset()
        if self._aligner is not None:
            frames = self._aligner.process(frames)
        color_frame = frames.get_color_frame()
        if not color_frame:
            return None
        depth = None
        if self._depth_profile is not None:
            depth_frame = frames.get_depth_frame()
            if not depth_frame:
                return None
            depth = np.array(np.asanyarray(depth_frame.get_data()), dtype=np.uint16, copy=True)
        color = TO_BGR[color_frame.get_profile().format()](
            np.asanyarray(color_frame.get_data()))
        if depth is not None and depth.shape != color.shape[:2]:
            depth = cv2.resize(depth, (color.shape[1], color.shape[0]),
                               interpolation=cv2.INTER_NEAREST)
        self.frames_read += 1
        return Frame(color=color, depth=depth, timestamp=self._timestamp(color_frame),
                     frame_number=int(color_frame.get_frame_number()),
                     depth_scale=self.depth_scale)

    def _wait(self, waiter: Any, timeout: float) -> Frame | None:
        """Next complete frame from a pipeline or syncer within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return None
            try:
                ok, frames = waiter.try_wait_for_frames(left_ms)
                if not ok:
                    return None
                frame = self._process(frames)
            except RuntimeError as exc:
                raise SourceError(f"RealSense: {one_line(exc)}") from None
            if frame is not None:
                return frame

    def _describe_streams(self) -> dict[str, Any]:
        """Mode and intrinsics of the open streams, kept for info() (cheap, survives close)."""
        info: dict[str, Any] = {}
        cp = self._color_profile.as_video_stream_profile()
        info.update(width=cp.width(), height=cp.height(), fps=cp.fps(),
                    color_format=str(cp.format()).rsplit(".", 1)[-1],
                    color_intrinsics=_intrinsics(cp))
        if self._depth_profile is not None:
            info["depth_intrinsics"] = _intrinsics(self._depth_profile)
            info["depth_aligned_to_color"] = self._aligner is not None
        return info

    def imu_samples(self) -> np.ndarray | None:
        """The motion samples since the last call; None while no motion stream runs."""
        return self.motion.drain() if self.motion.running else None

    def _stream_info(self) -> dict[str, Any]:
        info = {"align": self.align, "filters": list(self.filters),
                "depth_scale": self.depth_scale, **self._streams}
        imu = self.motion.info()
        if imu is not None:
            info["imu"] = imu
        return info
