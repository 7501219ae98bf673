"""IMU samples: packing, intrinsics, tilt, pairing, and the synthetic scene's sway."""

from __future__ import annotations

import math

import numpy as np
import pytest

from camera.synthetic import ACCEL_HZ, GYRO_HZ, SWAY_DEG, SwayImu
from media.imu import (
    ACCEL,
    GRAVITY,
    GYRO,
    SAMPLE,
    Pairer,
    correct,
    max_samples,
    pack,
    samples,
    tilt_deg,
    unpack,
)


def test_a_batch_survives_packing_exactly() -> None:
    batch = samples([1.5, 1.6], GYRO, np.array([[0.1, 0.2, 0.3], [-1.0, 2.0, -3.0]]))
    data = pack(batch)
    assert len(data) == 2 * SAMPLE.itemsize == 42
    back = unpack(data)
    assert back.tolist() == batch.tolist()
    assert max_samples(8192) == 8192 // 21


def test_intrinsics_scale_and_remove_the_bias() -> None:
    data = [[2.0, 0.0, 0.0, 0.1], [0.0, 2.0, 0.0, 0.2], [0.0, 0.0, 2.0, 0.3]]
    raw = np.array([[1.0, 1.0, 1.0]], np.float32)
    assert correct(raw, data)[0].tolist() == pytest.approx([1.9, 1.8, 1.7], abs=1e-6)
    assert correct(raw, None) is raw


def test_tilt_is_the_angle_from_level() -> None:
    assert tilt_deg((0.0, -GRAVITY, 0.0)) == pytest.approx(0.0)
    assert tilt_deg((GRAVITY, 0.0, 0.0)) == pytest.approx(90.0)
    a = math.radians(10)
    assert tilt_deg((0.0, -GRAVITY * math.cos(a), GRAVITY * math.sin(a))) == pytest.approx(10)
    assert tilt_deg((0.0, 0.0, 0.0)) is None


def test_each_gyro_sample_gets_the_nearest_accel_sample() -> None:
    gyro = samples(np.arange(10) * 0.005, GYRO, np.tile([[0.0, 0.0, 1.0]], (10, 1)))
    accel_t = np.arange(5) * 0.01 + 0.001
    accel = samples(accel_t, ACCEL, np.stack([accel_t, accel_t, accel_t], axis=1))
    both = np.concatenate([gyro, accel])
    pairs = Pairer().feed(both[np.argsort(both["t"], kind="stable")])
    # The last gyro samples wait for a later accel sample or PAIR_WAIT_S of newer data.
    assert [p.t for p in pairs] == pytest.approx(list(np.arange(9) * 0.005))
    for p in pairs:
        nearest = accel_t[np.argmin(np.abs(accel_t - p.t))]
        assert p.accel[0] == pytest.approx(nearest)


def test_the_synthetic_sway_reads_gravity_and_a_gyro_that_integrates_to_its_tilt() -> None:
    imu = SwayImu(1000.0)
    # One full sway, drained in steps shorter than the backlog a late reader may catch up.
    batch = np.concatenate([imu.until(1000.0 + k * 0.25) for k in range(17)])
    gyro, accel = batch[batch["kind"] == GYRO], batch[batch["kind"] == ACCEL]
    assert len(gyro) == 4 * GYRO_HZ + 1 and len(accel) == 4 * ACCEL_HZ + 1
    norms = np.sqrt(accel["x"].astype(float) ** 2 + accel["y"] ** 2 + accel["z"] ** 2)
    assert norms == pytest.approx(GRAVITY, abs=1e-4)
    roll = np.degrees(np.arctan2(-accel["x"].astype(float), -accel["y"].astype(float)))
    assert np.max(np.abs(roll)) == pytest.approx(SWAY_DEG, abs=0.05)
    # The roll rate, integrated, is the roll the accelerometer shows.
    t = gyro["t"] - 1000.0
    integrated = np.degrees(np.concatenate([[0.0], np.cumsum(
        (gyro["z"][1:] + gyro["z"][:-1]) / 2 * np.diff(t))]))
    shown = np.interp(t, accel["t"] - 1000.0, roll)
    assert np.max(np.abs(integrated - shown)) < 0.05
    # Nothing is sent twice: the next call starts after the last sample.
    later = imu.until(1004.1)
    assert later["t"].min() > batch["t"].max()
