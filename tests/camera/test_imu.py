"""The RealSense IMU through librealsense itself: software-device recordings with motion
streams, played by RecordingSource, and --record-raw keeping them."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from camera.base import SourceEnded
from camera.realsense import RealSenseSource
from camera.recording import RecordingSource
from media.imu import ACCEL, GRAVITY, GYRO
from tests.camera.rs_recording import (
    SoftwareCamera,
    accel_index,
    accel_value,
    gyro_value,
    make_recording,
)

GYRO_HZ, ACCEL_HZ = 200, 100


@pytest.fixture(scope="module")
def motion_recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("imu") / "still.db3"
    return make_recording(path, 320, 240, 30, frames=60, motion=(GYRO_HZ, ACCEL_HZ))


def drain(src: RecordingSource | RealSenseSource, seconds: float) -> np.ndarray:
    """Read frames for `seconds` (or to a recording's end) and collect the IMU samples
    that came with them."""
    got = []
    end = time.monotonic() + seconds
    ended = False
    while time.monotonic() < end and not ended:
        try:
            src.read(timeout=0.5)
        except SourceEnded:
            ended = True
        batch = src.imu_samples()
        assert batch is not None, "the source lost its IMU"
        got.append(batch)
    return np.concatenate(got)


def test_recording_replays_its_motion_streams_corrected_by_the_intrinsics(
        motion_recording: dict) -> None:
    src = RecordingSource(motion_recording["path"], loop=False, align=False)
    src.open()
    try:
        imu = src.info()["imu"]
        assert (imu["gyro_hz"], imu["accel_hz"]) == (GYRO_HZ, ACCEL_HZ)
        assert imu["intrinsics"] == {"gyro": True, "accel": True}
        batch = drain(src, 1.2)
    finally:
        src.close()
    gyro, accel = batch[batch["kind"] == GYRO], batch[batch["kind"] == ACCEL]
    assert len(gyro) > GYRO_HZ // 2 and len(accel) > ACCEL_HZ // 2
    # gyro x counts up in 1e-3 steps: it names the sample, whose true value is known.
    for s in gyro:
        n = int(round(float(s["x"]) / 1e-3))
        assert [s["x"], s["y"], s["z"]] == pytest.approx(gyro_value(n), abs=1e-5)
    for s in accel:
        m = accel_index(float(s["z"]))
        assert [s["x"], s["y"], s["z"]] == pytest.approx(accel_value(m), abs=1e-5)
    norms = np.sqrt(accel["x"].astype(float) ** 2 + accel["y"] ** 2 + accel["z"] ** 2)
    assert np.all(np.abs(norms - 9.81) <= 0.05), norms
    assert norms == pytest.approx(GRAVITY, abs=1e-3)
    # Stamped in the frames' clock (seconds since the epoch), in order, a gyro period apart.
    assert abs(float(gyro["t"][-1]) - time.time()) < 5.0
    steps = np.diff(gyro["t"])
    assert np.all(steps > 0)
    assert np.median(steps) == pytest.approx(1 / GYRO_HZ, rel=0.01)


def assert_no_imu(src: RecordingSource) -> None:
    src.open()
    try:
        assert "imu" not in src.info()
        assert src.read(timeout=2.0) is not None
        assert src.imu_samples() is None
    finally:
        src.close()


def test_recording_without_motion_streams_has_no_imu(tmp_path: Path) -> None:
    rec = make_recording(tmp_path / "plain.db3", 320, 240, 30, frames=10, realtime=False)
    assert_no_imu(RecordingSource(rec["path"], align=False))


def test_imu_off_reads_no_motion(motion_recording: dict) -> None:
    assert_no_imu(RecordingSource(motion_recording["path"], align=False, imu=False))


def test_record_raw_keeps_the_motion_streams_and_they_replay(tmp_path: Path) -> None:
    cam = SoftwareCamera(640, 480, 30, motion=(GYRO_HZ, ACCEL_HZ))
    out = tmp_path / "raw.db3"
    src = RealSenseSource(640, 480, 30, device=cam.device, record_raw=str(out), align=False)
    src.open()
    try:
        assert src.info()["imu"]["gyro_hz"] == GYRO_HZ
        t0 = time.monotonic()
        frames = 0
        for n in range(30):  # one second of frames, with the IMU between them
            for k in range(n * GYRO_HZ // 30, (n + 1) * GYRO_HZ // 30):
                cam.push_motion("gyro", k)
            for k in range(n * ACCEL_HZ // 30, (n + 1) * ACCEL_HZ // 30):
                cam.push_motion("accel", k)
            cam.push(n)
            frames += src.read(timeout=0.5) is not None
            time.sleep(max(t0 + (n + 1) / 30 - time.monotonic(), 0))
        live = src.imu_samples()
    finally:
        src.close()
    assert frames > 15
    assert live is not None and np.count_nonzero(live["kind"] == GYRO) >= GYRO_HZ // 2
    # The file holds every gyro sample the live source read (rosbag2's own tables)...
    live_gyro = live[live["kind"] == GYRO]
    with contextlib.closing(sqlite3.connect(out)) as db:
        (recorded,) = db.execute(
            "SELECT count(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
            "WHERE t.name LIKE '%/Gyro_0/imu/data'").fetchone()
    assert recorded >= len(live_gyro), (recorded, len(live_gyro))
    # ...and they replay. In real time on a loaded machine librealsense skips motion
    # samples (how many is the machine's load), so what is judged is that they come,
    # each one a sample that was pushed.
    rec = RecordingSource(str(out), loop=False, align=False)
    rec.open()
    try:
        assert rec.info()["imu"]["gyro_hz"] == GYRO_HZ
        batch = drain(rec, 1.0)
    finally:
        rec.close()
    gyro = batch[batch["kind"] == GYRO]
    assert len(gyro) > 0
    pushed = {round(gyro_value(k)[0], 6) for k in range(GYRO_HZ)}
    assert set(np.round(gyro["x"].astype(float), 6)) <= pushed
    for s in gyro:
        n = int(round(float(s["x"]) / 1e-3))
        assert [s["x"], s["y"], s["z"]] == pytest.approx(gyro_value(n), abs=1e-5)
