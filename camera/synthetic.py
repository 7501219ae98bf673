"""A built-in synthetic color + depth scene: the embedded default when no camera is present.

It looks like a depth camera's output: a textured room (floor and back wall in true
perspective for the scene's intrinsics), objects moving at different depths that occlude
each other in both images, stereo "shadows" and speckles of invalid (0) depth, the frame
number and clock drawn in, and the capture time as a machine-readable stamp
(`media.stamp`). Everything static is rendered once; a frame costs two buffer copies and
a few OpenCV draw calls.
"""

from __future__ import annotations

import math
import time
from typing import Any

import cv2
import numpy as np

from camera.base import Frame, FrameSource
from media.geometry import (
    SYNTHETIC_CAMERA_HEIGHT_M,
    SYNTHETIC_WALL_M,
    synthetic_intrinsics,
)
from media.imu import ACCEL, GRAVITY, GYRO, SAMPLE, samples
from media.stamp import draw_stamp

DEPTH_SCALE = 0.001  # millimetres, like the D455
GYRO_HZ, ACCEL_HZ = 200, 100
SWAY_DEG, SWAY_HZ = 3.0, 0.25
"""The scene's camera rolls gently about its optical axis: +-3 degrees, once every 4 s."""
IMU_BACKLOG_S = 1.0  # a capture loop that fell further behind skips the samples in between


class SwayImu:
    """A plausible D455 IMU on a camera swaying about its z (optical) axis.

    Roll angle a(t) = SWAY_DEG sin(2 pi SWAY_HZ t). The accelerometer reads the reaction to
    gravity, 'up' (-y in the camera frame: x right, y down, z forward) seen from the rolled
    camera: (-g sin a, -g cos a, 0); the gyro reads the roll rate (0, 0, a'(t)). Samples
    are laid on exact grids of 1/GYRO_HZ and 1/ACCEL_HZ from the start, in epoch seconds.
    """

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.next = {GYRO: 0, ACCEL: 0}

    @staticmethod
    def angle(t: np.ndarray) -> np.ndarray:
        return np.radians(SWAY_DEG) * np.sin(2 * np.pi * SWAY_HZ * t)

    @staticmethod
    def rate(t: np.ndarray) -> np.ndarray:
        return np.radians(SWAY_DEG) * 2 * np.pi * SWAY_HZ * np.cos(2 * np.pi * SWAY_HZ * t)

    def until(self, now: float) -> np.ndarray:
        """Every sample due up to `now`, time-ordered."""
        out = []
        for kind, hz in ((GYRO, GYRO_HZ), (ACCEL, ACCEL_HZ)):
            last = int((now - self.t0) * hz)
            first = max(self.next[kind], last - int(IMU_BACKLOG_S * hz))
            if last < first:
                continue
            self.next[kind] = last + 1
            t = np.arange(first, last + 1) / hz
            zero = np.zeros_like(t)
            if kind == GYRO:
                xyz = np.stack([zero, zero, self.rate(t)], axis=1)
            else:
                a = self.angle(t)
                xyz = np.stack([-GRAVITY * np.sin(a), -GRAVITY * np.cos(a), zero], axis=1)
            out.append(samples(self.t0 + t, kind, xyz))
        if not out:
            return np.empty(0, SAMPLE)
        batch = np.concatenate(out)
        return batch[np.argsort(batch["t"], kind="stable")]


class SyntheticSource(FrameSource):
    """Moving objects in a textured room, paced by the capture loop."""

    kind = "synthetic"
    self_paced = False

    def __init__(self, width: int, height: int, fps: float, *, imu: bool = True) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.imu = imu
        self._sway: SwayImu | None = None
        self._n = 0
        self._t0 = 0.0
        self._bg_color: np.ndarray | None = None
        self._bg_depth: np.ndarray | None = None
        self._speckle: np.ndarray | None = None

    def open(self) -> None:
        """Render the static background once: a floor plane and a back wall, in perspective.

        Depth follows the scene's own intrinsics (`media.geometry`), so the point cloud a
        client rebuilds from it is a real floor meeting a real wall.
        """
        w, h = self.width, self.height
        intr = synthetic_intrinsics(w, h)
        fy, ppx, ppy = intr["fy"], intr["ppx"], intr["ppy"]
        rng = np.random.default_rng(7)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # Floor pixels lie below the row where the floor plane reaches the wall.
        horizon = min(int(np.ceil(ppy + fy * SYNTHETIC_CAMERA_HEIGHT_M / SYNTHETIC_WALL_M)), h)
        floor_z = fy * SYNTHETIC_CAMERA_HEIGHT_M / np.maximum(yy[horizon:] - ppy, 1e-3)
        floor_x = (xx[horizon:] - ppx) / intr["fx"] * floor_z
        color = np.empty((h, w, 3), np.uint8)
        wall = 150 + 40 * np.sin(xx[:horizon] / 23.0) * np.cos(yy[:horizon] / 31.0)
        color[:horizon, :, 0] = np.clip(wall + 30, 0, 255)
        color[:horizon, :, 1] = np.clip(wall, 0, 255)
        color[:horizon, :, 2] = np.clip(wall - 40, 0, 255)
        tiles = ((np.floor(floor_x / 0.5) + np.floor(floor_z / 0.5)) % 2) * 60 + 70
        color[horizon:, :, 0] = tiles
        color[horizon:, :, 1] = tiles + 20
        color[horizon:, :, 2] = tiles + 40
        noise = rng.integers(-12, 12, size=(h, w, 1), dtype=np.int16)
        self._bg_color = np.clip(color.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        depth = np.full((h, w), SYNTHETIC_WALL_M * 1000, np.float32)
        depth[horizon:, :] = np.minimum(floor_z * 1000, SYNTHETIC_WALL_M * 1000)
        depth += rng.normal(0, 4, size=(h, w)).astype(np.float32)
        self._bg_depth = depth.astype(np.uint16)
        self._speckle = rng.choice(h * w, size=(h * w) // 200, replace=False)
        self._t0 = time.time()
        self._sway = SwayImu(self._t0) if self.imu else None

    def _objects(self, t: float) -> list[tuple[str, int, int, int, int, tuple[int, int, int]]]:
        """(shape, cx, cy, size, depth_mm, bgr) for each object, farthest first."""
        w, h = self.width, self.height
        s = min(w, h)
        specs = [
            ("rect", 0.21, 0.9, 0.33, 3500, (60, 180, 60)),
            ("circle", 0.37, 1.3, 0.11, 2400, (40, 120, 230)),
            ("circle", 0.53, 0.7, 0.14, 1500, (220, 120, 40)),
            ("rect", 0.71, 1.7, 0.07, 800, (40, 40, 220)),
        ]
        out = []
        for i, (shape, phase, speed, size, depth_mm, bgr) in enumerate(specs):
            cx = int(w * (0.5 + 0.38 * math.sin(t * speed * 0.6 + phase * 6.28)))
            cy = int(h * (0.5 + 0.25 * math.cos(t * speed * 0.45 + i)))
            out.append((shape, cx, cy, int(s * size), depth_mm, bgr))
        return out

    def read(self, timeout: float) -> Frame | None:
        """Render the next frame (never blocks; the capture loop paces it)."""
        assert self._bg_color is not None and self._bg_depth is not None
        now = time.time()
        t = now - self._t0
        color = self._bg_color.copy()
        depth = self._bg_depth.copy()
        shadow = max(4, self.width // 80)
        for shape, cx, cy, size, depth_mm, bgr in self._objects(t):
            if shape == "circle":
                cv2.circle(depth, (cx - shadow, cy), size, 0, -1)
                cv2.circle(depth, (cx, cy), size, depth_mm, -1)
                cv2.circle(color, (cx, cy), size, bgr, -1, cv2.LINE_AA)
                cv2.circle(color, (cx - size // 3, cy - size // 3), max(size // 4, 1),
                           (255, 255, 255), -1, cv2.LINE_AA)
            else:
                p1, p2 = (cx - size, cy - size), (cx + size, cy + size)
                cv2.rectangle(depth, (p1[0] - shadow, p1[1]), (p2[0] - shadow, p2[1]), 0, -1)
                cv2.rectangle(depth, p1, p2, depth_mm, -1)
                cv2.rectangle(color, p1, p2, bgr, -1)
                cv2.rectangle(color, p1, p2, (20, 20, 20), 3)
        depth.reshape(-1)[self._speckle] = 0
        self._n += 1
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        scale = max(self.height / 720, 0.4)
        text = f"SYNTHETIC  #{self._n}  {stamp}"
        org = (int(16 * scale), int(40 * scale))
        cv2.putText(color, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(color, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2,
                    cv2.LINE_AA)
        draw_stamp(color, now)
        return Frame(color, depth, now, self._n, DEPTH_SCALE)

    def imu_samples(self) -> np.ndarray | None:
        """The sway's samples due since the last call (None with the IMU off)."""
        return self._sway.until(time.time()) if self._sway is not None else None

    def close(self) -> None:
        """Nothing to release."""

    def info(self) -> dict[str, Any]:
        info = {
            "kind": self.kind, "width": self.width, "height": self.height, "fps": self.fps,
            "depth_scale": DEPTH_SCALE,
            "intrinsics": synthetic_intrinsics(self.width, self.height),
        }
        if self.imu:
            info["imu"] = {"accel_hz": ACCEL_HZ, "gyro_hz": GYRO_HZ,
                           "intrinsics": {"accel": False, "gyro": False}}
        return info
