"""Builds RealSense test material at test time: a software D455 and .db3 recordings of it.

The scene has known geometry so tests can check decoding and alignment: a plane at
PLANE_MM, a box at BOX_MM, a strip of invalid (0) depth, a color image with one pure
colour per quadrant and a frame counter, and depth-to-color extrinsics of `baseline`
metres along x (same intrinsics on both streams), so a depth pixel at Z metres lands
fx * baseline / Z pixels to the right in color.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import needs_pyrealsense2

try:  # importable without it: the test that needs it fails (x86_64) or skips (elsewhere)
    import pyrealsense2 as rs
except ImportError:
    rs = None

PLANE_MM = 1500
BOX_MM = 800
DEPTH_UNITS = 0.001
FOCAL = 600.0
COUNTER = 16  # the top-left COUNTER x COUNTER pixels hold the frame number % 256
GRAVITY = 9.80665
MOTION_SCALE = 2.0
MOTION_BIAS = (0.1, 0.2, 0.3)
"""The motion intrinsics of the software IMU: every axis reads MOTION_SCALE times the
true value plus MOTION_BIAS, so only a reader that applies them gets the true values."""


def gyro_value(n: int) -> tuple[float, float, float]:
    """The true gyro sample n (rad/s): x counts up in steps of 1e-3, y and z constant."""
    return ((n % 1000) * 1e-3, 0.5, -0.25)


ACCEL_STEP = 1e-4
"""accel z counts up in these steps: it names the sample (at most 0.1 m/s^2, so the
norm stays gravity's within 0.001)."""


def accel_value(n: int) -> tuple[float, float, float]:
    """The true accel sample n (m/s^2): a still, level camera (x right, y down, z forward)
    reads the reaction to gravity, up: (0, -g, 0); z counts up in ACCEL_STEP to name it."""
    return (0.0, -GRAVITY, (n % 1000) * ACCEL_STEP)


def accel_index(z: float) -> int:
    """Which accel sample (mod 1000) a z reading names."""
    return int(round(z / ACCEL_STEP))


def _motion_intrinsics() -> Any:
    i = rs.motion_device_intrinsic()
    i.data = [[MOTION_SCALE if c == r else 0.0 for c in range(3)] + [MOTION_BIAS[r]]
              for r in range(3)]
    i.noise_variances = [1e-4] * 3
    i.bias_variances = [1e-5] * 3
    return i

# The quadrant colours as stored (rgb8) and as a BGR consumer must see them.
QUADRANTS_RGB = {"top_left": (255, 0, 0), "top_right": (0, 255, 0),
                 "bottom_left": (0, 0, 255), "bottom_right": (200, 200, 200)}
QUADRANTS_BGR = {k: (b, g, r) for k, (r, g, b) in QUADRANTS_RGB.items()}


def scene_regions(width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    """Regions (x0, y0, x1, y1) of the default depth scene, in depth pixels."""
    return {
        "box": (width * 5 // 16, height * 5 // 12, width * 15 // 32, height * 7 // 12),
        "invalid": (width * 15 // 16, 0, width, height),
    }


def scene_depth(width: int, height: int) -> np.ndarray:
    """The default depth image: plane, box and a strip of invalid pixels (z16, mm)."""
    depth = np.full((height, width), PLANE_MM, np.uint16)
    regions = scene_regions(width, height)
    x0, y0, x1, y1 = regions["box"]
    depth[y0:y1, x0:x1] = BOX_MM
    x0, y0, x1, y1 = regions["invalid"]
    depth[y0:y1, x0:x1] = 0
    return depth


def scene_color(width: int, height: int, n: int) -> np.ndarray:
    """The rgb8 color image of frame n: four quadrant colours and the frame counter."""
    img = np.empty((height, width, 3), np.uint8)
    hh, hw = height // 2, width // 2
    img[:hh, :hw] = QUADRANTS_RGB["top_left"]
    img[:hh, hw:] = QUADRANTS_RGB["top_right"]
    img[hh:, :hw] = QUADRANTS_RGB["bottom_left"]
    img[hh:, hw:] = QUADRANTS_RGB["bottom_right"]
    img[:COUNTER, :COUNTER] = n % 256
    return img


def _intrinsics(width: int, height: int) -> Any:
    i = rs.intrinsics()
    i.width, i.height = width, height
    i.fx = i.fy = FOCAL
    i.ppx, i.ppy = width / 2.0, height / 2.0
    i.model = rs.distortion.brown_conrady
    i.coeffs = [0.0] * 5
    return i


class SoftwareCamera:
    """An rs.software_device shaped like a D455: a z16 depth sensor and an rgb8 color sensor."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, *,
                 baseline: float = 0.05,
                 depth_fn: Callable[[int], np.ndarray] | None = None,
                 serial: str = "000000000042", name: str = "Software D455",
                 motion: tuple[int, int] | None = None) -> None:
        """`motion`: (gyro_hz, accel_hz) of a motion sensor, None for a camera without IMU."""
        needs_pyrealsense2()
        self.width, self.height, self.fps, self.baseline = width, height, fps, baseline
        static = scene_depth(width, height)
        self.depth_fn = depth_fn or (lambda n: static)
        self.serial, self.name = serial, name
        dev = rs.software_device()
        dev.register_info(rs.camera_info.name, name)
        dev.register_info(rs.camera_info.serial_number, serial)
        self.depth_sensor = dev.add_sensor("Stereo Module")
        self.color_sensor = dev.add_sensor("RGB Camera")
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS)
        self.depth_profile = self.depth_sensor.add_video_stream(
            self._stream(rs.stream.depth, rs.format.z16, 2, uid=0))
        self.color_profile = self.color_sensor.add_video_stream(
            self._stream(rs.stream.color, rs.format.rgb8, 3, uid=1))
        extr = rs.extrinsics()
        extr.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extr.translation = [baseline, 0.0, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, extr)
        self.motion = motion
        self.motion_sensor = None
        self.motion_profiles: dict[str, Any] = {}
        if motion is not None:
            self.motion_sensor = dev.add_sensor("Motion Module")
            for uid, (kind, hz) in enumerate(((rs.stream.gyro, motion[0]),
                                              (rs.stream.accel, motion[1])), start=2):
                s = rs.motion_stream()
                s.type, s.index, s.uid, s.fps, s.fmt = kind, 0, uid, hz, rs.format.motion_xyz32f
                s.intrinsics = _motion_intrinsics()
                self.motion_profiles[str(kind).rsplit(".", 1)[-1]] = \
                    self.motion_sensor.add_motion_stream(s)
        dev.create_matcher(rs.matchers.default)
        self.device = dev

    def _stream(self, kind: Any, fmt: Any, bpp: int, uid: int) -> Any:
        s = rs.video_stream()
        s.type, s.index, s.uid = kind, 0, uid
        s.width, s.height, s.fps, s.bpp, s.fmt = self.width, self.height, self.fps, bpp, fmt
        s.intrinsics = _intrinsics(self.width, self.height)
        return s

    def push(self, n: int) -> None:
        """Publish frame n on both sensors, timestamped n / fps seconds (hardware clock)."""
        pairs = ((self.depth_sensor, self.depth_profile, self.depth_fn(n), 2),
                 (self.color_sensor, self.color_profile,
                  scene_color(self.width, self.height, n), 3))
        for sensor, profile, pixels, bpp in pairs:
            f = rs.software_video_frame()
            f.pixels = np.ascontiguousarray(pixels)
            f.bpp = bpp
            f.stride = self.width * bpp
            f.timestamp = n * 1000.0 / self.fps
            f.domain = rs.timestamp_domain.hardware_clock
            f.frame_number = n
            f.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(f)

    def push_motion(self, kind: str, n: int) -> None:
        """Publish motion sample n of "gyro" or "accel" as the device reads it (scaled and
        biased by its intrinsics), timestamped n / rate seconds (hardware clock)."""
        assert self.motion is not None and self.motion_sensor is not None
        hz = self.motion[0] if kind == "gyro" else self.motion[1]
        true = gyro_value(n) if kind == "gyro" else accel_value(n)
        raw = [(t + b) / MOTION_SCALE for t, b in zip(true, MOTION_BIAS, strict=True)]
        v = rs.vector()
        v.x, v.y, v.z = raw
        f = rs.software_motion_frame()
        f.data = v
        f.timestamp = n * 1000.0 / hz
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = n
        f.profile = self.motion_profiles[kind].as_motion_stream_profile()
        self.motion_sensor.on_motion_frame(f)

    def facts(self) -> dict[str, Any]:
        """What a correct reader must find in this camera's output."""
        regions = scene_regions(self.width, self.height)
        shift_plane = FOCAL * self.baseline / (PLANE_MM * DEPTH_UNITS)
        shift_box = FOCAL * self.baseline / (BOX_MM * DEPTH_UNITS)
        x0, y0, x1, y1 = regions["box"]
        return {
            "width": self.width, "height": self.height, "fps": self.fps,
            "serial": self.serial, "name": self.name,
            "depth_units": DEPTH_UNITS, "plane_m": PLANE_MM * DEPTH_UNITS,
            "box_m": BOX_MM * DEPTH_UNITS, "box": regions["box"],
            "invalid": regions["invalid"], "focal": FOCAL, "baseline": self.baseline,
            "shift_plane_px": shift_plane, "shift_box_px": shift_box,
            "box_in_color": (x0 + shift_box, y0, x1 + shift_box, y1),
            "quadrants_bgr": QUADRANTS_BGR, "counter_px": COUNTER,
            "gyro_hz": self.motion[0] if self.motion else None,
            "accel_hz": self.motion[1] if self.motion else None,
        }


def make_recording(path: str | Path, width: int = 640, height: int = 480, fps: int = 30,
                   frames: int = 60, *, depth_fn: Callable[[int], np.ndarray] | None = None,
                   baseline: float = 0.05, realtime: bool = True,
                   motion: tuple[int, int] | None = None) -> dict[str, Any]:
    """Record `frames` frames of the software camera to a .db3 with rs.recorder (and with
    `motion` = (gyro_hz, accel_hz), its IMU's samples over the same time).

    The recorder stamps messages with the wall clock, so realtime=True pushes one frame
    every 1/fps s (the file then plays at the right speed); realtime=False pushes as fast
    as possible, for recordings that are only played with set_real_time(False).
    """
    needs_pyrealsense2()
    cam = SoftwareCamera(width, height, fps, baseline=baseline, depth_fn=depth_fn,
                         motion=motion)
    recorder = rs.recorder(str(path), cam.device)
    sensors: list[tuple[Any, Any]] = [(cam.depth_sensor, cam.depth_profile),
                                      (cam.color_sensor, cam.color_profile)]
    if cam.motion_sensor is not None:
        sensors.append((cam.motion_sensor, list(cam.motion_profiles.values())))
    for sensor, profile in sensors:
        sensor.open(profile)
        sensor.start(lambda _f: None)
    rates = {"frame": fps}
    if motion is not None:
        rates.update(gyro=motion[0], accel=motion[1])
    sent = dict.fromkeys(rates, 0)
    t0 = time.monotonic()
    while sent["frame"] < frames:
        # Every stream's next sample in time order, each at n / rate after the start.
        kind = min(sent, key=lambda k: sent[k] / rates[k])
        if realtime:
            delay = t0 + sent[kind] / rates[kind] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if kind == "frame":
            cam.push(sent[kind])
        else:
            cam.push_motion(kind, sent[kind])
        sent[kind] += 1
    recorder.pause()
    del recorder
    for sensor, _profile in sensors:
        sensor.stop()
        sensor.close()
    facts = cam.facts()
    facts.update(path=str(path), frames=frames,
                 motion_samples={k: v for k, v in sent.items() if k != "frame"})
    return facts
