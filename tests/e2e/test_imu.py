"""The IMU end to end: /status rates, /imu on Foxglove and in MCAP, the page's tilt."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.typesys import Stores, get_typestore

from camera.synthetic import ACCEL_HZ, GYRO_HZ, SWAY_DEG
from media.imu import GRAVITY
from tests.browser import Browser
from tests.camera.rs_recording import accel_index, accel_value, gyro_value, make_recording
from tests.helpers import Server, free_port, running
from tests.robotics.fox_client import FoxgloveClient

POLLS = 8


def measured_rates(srv: Server) -> dict[str, float]:
    """The median over POLLS of /status's IMU rates (the capture process measures each
    over a second of its own clock), and the nominal rates the source declares."""
    seen: dict[str, list[float]] = {"accel_hz": [], "gyro_hz": []}
    imu = srv.status()["imu"]
    for _ in range(POLLS):
        time.sleep(0.6)
        imu = srv.status()["imu"]
        assert imu is not None, "no IMU in /status"
        for k, values in seen.items():
            values.append(imu[k])
    return {**{k: statistics.median(v) for k, v in seen.items()},
            **{f"nominal_{k}": imu["nominal"][k] for k in seen}}


RECORDING_FRAMES = 120  # 4 s at 30 fps, then the recording loops


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("imu") / "still.db3"
    return make_recording(path, 320, 240, 30, frames=RECORDING_FRAMES, motion=(200, 100))


def sample_rate(times: list[float], index: list[int]) -> float:
    """Samples per second as the samples themselves tell: how far their index advanced
    over the time stamps of the run's longest stretch in which it only grew (a loop of the
    recording, or the index wrapping, starts a new stretch). A sample that real-time
    playback dropped under load costs nothing."""
    stretches, start = [], 0
    for k in range(1, len(index) + 1):
        if k == len(index) or index[k] < index[k - 1] or times[k] < times[k - 1]:
            stretches.append((start, k - 1))
            start = k
    first, last = max(stretches, key=lambda se: times[se[1]] - times[se[0]])
    span = times[last] - times[first]
    assert span > 0.5, (times, index)
    return (index[last] - index[first]) / span


def test_recording_imu_rates_values_and_gravity_on_foxglove(recording: dict) -> None:
    port = free_port()
    with running("--source", recording["path"], "--width", "320", "--height", "240",
                 "--no-align", "--foxglove", f"127.0.0.1:{port}") as srv:
        rates = measured_rates(srv)
        assert rates["nominal_gyro_hz"] == recording["gyro_hz"]
        assert rates["nominal_accel_hz"] == recording["accel_hz"]
        assert rates["gyro_hz"] > 0 and rates["accel_hz"] > 0, rates
        client = FoxgloveClient(port)
        try:
            client.wait_channels(["/imu"])
            client.subscribe(["/imu"])
            msgs = [msg for _, msg in client.collect({"/imu": 400})["/imu"]]
        finally:
            client.close()
    times, gyro_n, accel_n = [], [], []
    for msg in msgs:
        g = msg["gyro"]
        n = int(round(g["x"] / 1e-3))
        assert [g["x"], g["y"], g["z"]] == pytest.approx(gyro_value(n), abs=1e-5)
        a = msg["accel"]
        m = accel_index(a["z"])
        assert [a["x"], a["y"], a["z"]] == pytest.approx(accel_value(m), abs=1e-5)
        assert abs(np.linalg.norm([a["x"], a["y"], a["z"]]) - 9.81) <= 0.05
        assert abs(msg["timestamp"]["sec"] - time.time()) < 30
        times.append(msg["timestamp"]["sec"] + msg["timestamp"]["nsec"] * 1e-9)
        gyro_n.append(n)
        accel_n.append(m)
    # The rates of the samples served: each stream's own index against its time stamps;
    # and every gyro sample is served, not every other one (real-time playback may drop
    # a few under load: librealsense's, not ours, and the synthetic test counts ours).
    assert sample_rate(times, gyro_n) == pytest.approx(recording["gyro_hz"], rel=0.05)
    steps = [b - a for a, b in zip(gyro_n, gyro_n[1:], strict=False) if b > a]
    assert statistics.median(steps) == 1, steps
    assert sample_rate(times, accel_n) == pytest.approx(recording["accel_hz"], rel=0.05)
    # Each gyro sample is paired with the accel sample nearest in time: never more than
    # one accel period apart, unless the samples between never came (real-time playback
    # drops some under load; none of them is paired with anything then). The recording
    # loops: where the window spans its seam, the end of one pass pairs with the start of
    # the next, so times compare modulo its length.
    length, period = RECORDING_FRAMES / 30, 1 / recording["accel_hz"]
    seen = set(accel_n)
    for n, m in zip(gyro_n, accel_n, strict=True):
        apart = n / recording["gyro_hz"] - m / recording["accel_hz"]
        apart = (apart + length / 2) % length - length / 2
        if abs(apart) <= period + 1e-6:
            continue
        step = 1 if apart > 0 else -1
        nearer = [m + step * k for k in range(1, int(abs(apart) / period + 1e-6) + 1)]
        assert not seen & set(nearer), (n, m, sorted(seen & set(nearer)))


@pytest.fixture(scope="module")
def synthetic() -> Iterator[Server]:
    with running("--source", "synthetic", "--width", "640", "--height", "480") as srv:
        yield srv


def test_synthetic_status_shows_the_nominal_rates(synthetic: Server) -> None:
    rates = measured_rates(synthetic)
    assert (rates["nominal_gyro_hz"], rates["nominal_accel_hz"]) == (GYRO_HZ, ACCEL_HZ)
    for k in ("gyro_hz", "accel_hz"):
        assert rates[k] == pytest.approx(rates[f"nominal_{k}"], rel=0.05), rates
    latest = synthetic.status()["imu"]["latest"]
    assert np.linalg.norm(latest["accel"]) == pytest.approx(GRAVITY, abs=0.01)
    assert 0 <= latest["tilt_deg"] <= SWAY_DEG + 0.1


def test_page_shows_the_tilt(synthetic: Server) -> None:
    with Browser() as b:
        b.goto(synthetic.base + "/")
        assert b.wait_for("window.depthcam && window.depthcam.ready")
        imu = b.wait_for("window.depthcam.imu && window.depthcam.imu()")
        assert 0 <= imu["tilt_deg"] <= SWAY_DEG + 0.1
        assert np.linalg.norm(imu["accel"]) == pytest.approx(GRAVITY, abs=0.01)
        assert b.eval("document.getElementById('imu-box').hidden") is False
        shown = float(b.eval("document.getElementById('imu-tilt').textContent"))
        assert 0 <= shown <= SWAY_DEG + 0.1


def test_no_imu_leaves_status_null() -> None:
    with running("--source", "synthetic", "--width", "640", "--height", "480",
                 "--no-imu") as srv:
        assert srv.status()["imu"] is None


def test_mcap_ros2_imu_at_the_gyro_rate_with_accel_paired(tmp_path: Path) -> None:
    out = tmp_path / "imu.mcap"
    with running("--source", "synthetic", "--width", "640", "--height", "480",
                 "--record-mcap", str(out), "--record-mcap-profile", "ros2") as srv:
        deadline = time.monotonic() + 20
        while srv.status()["imu"]["samples"] < 3 * (GYRO_HZ + ACCEL_HZ):
            assert time.monotonic() < deadline, "too few IMU samples"
            time.sleep(0.3)
    store = get_typestore(Stores.ROS2_HUMBLE)
    stamps, accel_roll, gyro_z = [], [], []
    with out.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            msg = store.deserialize_cdr(message.data, schema.name)  # every message
            if channel.topic != "/imu":
                continue
            assert schema.name == "sensor_msgs/msg/Imu"
            assert msg.orientation_covariance[0] == -1
            a = msg.linear_acceleration
            stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            accel_roll.append(np.degrees(np.arctan2(-a.x, -a.y)))
            gyro_z.append(msg.angular_velocity.z)
            assert np.linalg.norm([a.x, a.y, a.z]) == pytest.approx(GRAVITY, abs=1e-3)
    t = np.array(stamps)
    assert len(t) > 2 * GYRO_HZ
    assert np.all(np.diff(t) > 0)
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert rate == pytest.approx(GYRO_HZ, rel=0.05)
    # Paired with the nearest accel sample: at most half an accel period away, so the
    # roll the accel shows is the gyro's roll within what the sway turns in that time.
    roll_rate_max = np.degrees(np.max(np.abs(gyro_z)))
    integrated = np.concatenate([[0.0], np.cumsum(np.degrees(
        (np.array(gyro_z)[1:] + np.array(gyro_z)[:-1]) / 2 * np.diff(t)))])
    drift = np.array(accel_roll) - integrated
    assert np.ptp(drift) <= 2 * roll_rate_max * 0.5 / ACCEL_HZ + 0.01
