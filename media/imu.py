"""IMU samples: how a batch is packed for the shared-memory ring, corrected and paired.

A sample is (t, kind, x, y, z): seconds since the epoch (the clock of the frames'
X-Timestamp), ACCEL (m/s^2) or GYRO (rad/s), and the three axes in the camera's own
frame. librealsense reports a D455's motion data in the depth sensor's coordinate system
(x right, y down, z forward, the optical frame), so an accelerometer at rest reads the
reaction to gravity, pointing up: about (0, -9.81, 0) on a level camera.

Samples travel as packed numpy structured arrays (`SAMPLE`, 21 bytes each), a batch per
ring slot; `pack`/`unpack` are the only encoding. `Pairer` turns the two streams into
the (accel, gyro) messages the robotics sinks publish, one per gyro sample, each with
the accel sample nearest to it in time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ACCEL, GYRO = 1, 2
KIND_NAMES = {ACCEL: "accel", GYRO: "gyro"}
GRAVITY = 9.80665  # m/s^2, standard gravity
SAMPLE = np.dtype([("t", "<f8"), ("kind", "u1"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
"""One sample, packed (no padding): 21 bytes."""
PAIR_WAIT_S = 0.1
"""How long a gyro sample waits for an accel sample after it before it is paired with the
nearest one before it (a stream that stopped must not hold the other back)."""


def samples(t: Sequence[float] | np.ndarray, kind: int, xyz: np.ndarray) -> np.ndarray:
    """A batch of samples of one kind: times (n,) and values (n, 3)."""
    out = np.empty(len(t), SAMPLE)
    out["t"], out["kind"] = t, kind
    out["x"], out["y"], out["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    return out


def pack(batch: np.ndarray) -> bytes:
    """The bytes of a batch as it goes into a ring slot."""
    return np.ascontiguousarray(batch, SAMPLE).tobytes()


def unpack(data: bytes | memoryview) -> np.ndarray:
    """A batch back from a ring slot's bytes (a copy, safe to keep)."""
    return np.frombuffer(bytes(data), SAMPLE)


def max_samples(capacity: int) -> int:
    """How many samples fit in a ring slot of `capacity` bytes."""
    return capacity // SAMPLE.itemsize


def correct(xyz: np.ndarray, data: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Apply a motion intrinsic (librealsense's 3x4 `data`: scale and cross-axis matrix,
    then the bias column): M @ v - bias. Without one the values are returned as they are."""
    if data is None:
        return xyz
    m = np.asarray(data, np.float64).reshape(3, 4)
    return (xyz.astype(np.float64) @ m[:, :3].T - m[:, 3]).astype(np.float32)


def tilt_deg(accel: Sequence[float]) -> float | None:
    """Angle between the measured 'up' (the accelerometer's reading at rest) and the
    camera's -y axis, in degrees: 0 for a level camera, whatever way it pans."""
    x, y, z = (float(v) for v in accel)
    norm = math.sqrt(x * x + y * y + z * z)
    if norm < 1e-6:
        return None
    return math.degrees(math.acos(max(-1.0, min(1.0, -y / norm))))


@dataclass(frozen=True)
class Paired:
    """One IMU message: a gyro sample and the accel sample nearest to it in time."""

    t: float
    accel: tuple[float, float, float]
    gyro: tuple[float, float, float]


def _xyz(s: np.void) -> tuple[float, float, float]:
    return (float(s["x"]), float(s["y"]), float(s["z"]))


class Pairer:
    """Pairs each gyro sample with the accel sample nearest in time, at the gyro's rate.

    A gyro sample is held until an accel sample at or after its time has arrived (then the
    nearer of that one and the one before wins) or until it is PAIR_WAIT_S older than the
    newest sample seen; gyro samples before the first accel sample are dropped.
    """

    def __init__(self) -> None:
        self.before: np.void | None = None  # the newest accel sample at or before now
        self.accels: list[np.void] = []
        self.gyros: list[np.void] = []
        self.newest = 0.0

    def feed(self, batch: np.ndarray) -> list[Paired]:
        """Take a batch (any kinds, in time order per kind); the messages now complete."""
        for s in batch:
            (self.gyros if s["kind"] == GYRO else self.accels).append(s)
            self.newest = max(self.newest, float(s["t"]))
        out: list[Paired] = []
        while self.gyros:
            g = self.gyros[0]
            t = float(g["t"])
            while self.accels and float(self.accels[0]["t"]) < t:
                self.before = self.accels.pop(0)
            after = self.accels[0] if self.accels else None
            if after is None and self.newest - t < PAIR_WAIT_S:
                break
            self.gyros.pop(0)
            near = self._nearest(t, after)
            if near is not None:
                out.append(Paired(t, _xyz(near), _xyz(g)))
        return out

    def _nearest(self, t: float, after: np.void | None) -> np.void | None:
        if self.before is None or (after is not None
                                   and float(after["t"]) - t < t - float(self.before["t"])):
            return after
        return self.before


def latest(batches: Iterable[np.ndarray]) -> dict[str, list[float] | float]:
    """The newest accel and gyro values (and time) of some batches: what a readout shows."""
    out: dict[str, list[float] | float] = {}
    for batch in batches:
        for kind, name in KIND_NAMES.items():
            of_kind = batch[batch["kind"] == kind]
            if len(of_kind):
                out[name] = [round(v, 5) for v in _xyz(of_kind[-1])]
                out["t"] = max(float(of_kind[-1]["t"]), float(out.get("t", 0.0)))
    return out
