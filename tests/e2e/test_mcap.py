"""--record-mcap on the real server, read back with the `mcap` reader and its decoders.

Foxglove schemas (protobuf) are decoded by `mcap-protobuf-support`, the ROS 2 profile
(sensor_msgs in CDR) by `mcap-ros2-support`, the decoder ROS 2 tooling in Python uses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from mcap.decoder import DecoderFactory as McapDecoderFactory
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory
from mcap_ros2.decoder import DecoderFactory as Ros2DecoderFactory

from tests.camera.rs_recording import make_recording
from tests.helpers import Server
from tests.robotics.h264 import decode, decodes_alone

LAT, LON = -33.8568, 151.2153
FPS = 15
SCHEMAS = {"/camera/color": "foxglove.CompressedImage", "/camera/depth": "foxglove.RawImage",
           "/camera/calibration": "foxglove.CameraCalibration", "/gps": "foxglove.LocationFix",
           "/tf": "foxglove.FrameTransform"}
ROS2_SCHEMAS = {"/camera/color": "sensor_msgs/msg/CompressedImage",
                "/camera/depth": "sensor_msgs/msg/Image",
                "/camera/calibration": "sensor_msgs/msg/CameraInfo",
                "/gps": "sensor_msgs/msg/NavSatFix", "/tf": "tf2_msgs/msg/TFMessage",
                "/imu": "sensor_msgs/msg/Imu"}
IMU_JSON = ("depthcam.Imu", "json")
"""/imu in the foxglove profile: the synthetic scene's IMU, in the live view's JSON schema."""


class JsonDecoderFactory(McapDecoderFactory):
    """Decodes the JSON-encoded channels (/imu) as the protobuf and CDR ones are decoded."""

    def decoder_for(self, message_encoding: str, schema: object) -> object:
        return json.loads if message_encoding == "json" else None


def stamp_ns(msg: object) -> int:
    """A message's own timestamp: Foxglove's `timestamp` or ROS's `header.stamp`."""
    if hasattr(msg, "header"):
        return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec  # type: ignore[attr-defined]
    return msg.timestamp.seconds * 10**9 + msg.timestamp.nanos  # type: ignore[attr-defined]


def frame_id(msg: object) -> str:
    return msg.header.frame_id if hasattr(msg, "header") else msg.frame_id  # type: ignore[attr-defined]


def read_mcap(path: Path) -> tuple[dict, Counter, dict]:
    """Schema names, message counts and decoded messages per topic; checks log-time order."""
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory(), Ros2DecoderFactory(),
                                                   JsonDecoderFactory()])
        profile = reader.get_header().profile
        summary = reader.get_summary()
        assert summary is not None, "no summary: the file was not finalized"
        schemas = {ch.topic: (summary.schemas[ch.schema_id].name, ch.message_encoding)
                   for ch in summary.channels.values()}
        compressions = {ci.compression for ci in summary.chunk_indexes}
        counts: Counter = Counter()
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        decoded: dict[str, list] = {}
        for _schema, channel, message, msg in reader.iter_decoded_messages(log_time_order=False):
            topic = channel.topic
            assert message.log_time > last.get(topic, 0), f"{topic}: log time went back"
            last[topic] = message.log_time
            first.setdefault(topic, message.log_time)
            counts[topic] += 1
            if topic in ("/camera/color", "/camera/depth"):
                assert abs(stamp_ns(msg) - message.log_time) < 1000, topic
            decoded.setdefault(topic, []).append(msg if topic != "/camera/depth" else
                                                 (msg.width, msg.height, msg.encoding,
                                                  len(msg.data)))
            if topic == "/camera/color":
                decoded[topic][-1] = (msg.format, bytes(msg.data[:2]), frame_id(msg))
        assert summary.statistics.message_count == sum(counts.values())
    seconds = {t: (last[t] - first[t]) / 1e9 for t in last}
    meta = {"schemas": schemas, "compressions": compressions, "seconds": seconds,
            "profile": profile}
    return meta, counts, decoded


def record(tmp_path: Path, *extra: str) -> tuple[Server, Path]:
    out = tmp_path / "run.mcap"
    srv = Server("--width", "640", "--height", "480", "--fps", str(FPS), "--record-mcap",
                 str(out), "--gps", f"fixed:{LAT},{LON}", *extra)
    return srv, out


def watch(srv: Server, seconds: float) -> float:
    """Wait `seconds`, sampling the capture rate each second; the mean rate captured.

    On a loaded machine capture itself may fall short of --fps: the recorder is judged
    against what was captured, which is what it can be asked to record.
    """
    rates = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(end - time.monotonic(), 0)))
        rates.append(srv.status()["fps_captured"])
    return sum(rates) / len(rates)


def check_common(path: Path, span: tuple[float, float], compression: str, rate: float,
                 profile: str = "") -> tuple[Counter, dict]:
    """`span`: seconds from ready to the stop signal and to the exit; `rate`: fps captured."""
    meta, counts, decoded = read_mcap(path)
    assert meta["profile"] == profile
    if profile == "ros2":
        assert meta["schemas"] == {t: (s, "cdr") for t, s in ROS2_SCHEMAS.items()}
    else:
        assert meta["schemas"] == {**{t: (s, "protobuf") for t, s in SCHEMAS.items()},
                                   "/imu": IMU_JSON}
    assert meta["compressions"] == {compression}
    # The file covers most of the run, at the source's rate, once a second for the rest.
    seconds = meta["seconds"]["/camera/depth"]
    assert span[0] - 4 <= seconds <= span[1]
    assert rate * seconds * 0.85 <= counts["/camera/depth"] <= FPS * seconds * 1.1 + 2
    assert rate > FPS / 3, f"capture ran at {rate:.1f} fps: the machine is overloaded"
    assert counts["/camera/calibration"] >= seconds - 1
    assert counts["/tf"] == counts["/camera/calibration"]
    assert counts["/gps"] >= seconds - 2
    fix = decoded["/gps"][-1]
    assert (fix.latitude, fix.longitude) == (pytest.approx(LAT), pytest.approx(LON))
    cal = decoded["/camera/calibration"][-1]
    assert (cal.width, cal.height, frame_id(cal)) == (640, 480, "camera_color_optical_frame")
    k = list(cal.k if profile == "ros2" else cal.K)
    assert k[8] == 1 and k[0] > 0 and k[2] == 320 and k[5] == 240
    assert decoded["/camera/depth"][-1] == (640, 480, "16UC1", 640 * 480 * 2)
    assert decoded["/camera/color"][-1] == ("jpeg", b"\xff\xd8", "camera_color_optical_frame")
    return counts, meta["seconds"]


def test_record_mcap_for_5_s_then_sigint(tmp_path: Path) -> None:
    srv, out = record(tmp_path)
    try:
        srv.wait_ready()
        t0 = time.monotonic()
        rate = watch(srv, 5.0)
        signalled = time.monotonic() - t0
        assert srv.stop(signal.SIGINT, timeout=15) == 0
        span = (signalled, time.monotonic() - t0)
    finally:
        srv.kill()
    assert "MCAP finalized" in srv.log()
    counts, seconds = check_common(out, span, "zstd", rate)
    assert rate * seconds["/camera/color"] * 0.85 <= counts["/camera/color"]
    assert counts["/camera/color"] <= FPS * seconds["/camera/color"] * 1.1 + 2


def test_record_mcap_video_h264_decodes_at_the_capture_rate(tmp_path: Path) -> None:
    srv, out = record(tmp_path, "--record-mcap-video", "h264", "--record-mcap-depth", "off")
    try:
        srv.wait_ready()
        rate = watch(srv, 4.0)
        assert srv.stop(signal.SIGINT, timeout=15) == 0
    finally:
        srv.kill()
    assert "MCAP finalized" in srv.log()
    with out.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None
        schemas = {ch.topic: summary.schemas[ch.schema_id].name
                   for ch in summary.channels.values()}
        assert schemas["/camera/h264"] == "foxglove.CompressedVideo"
        video = [(message.log_time, msg) for _, _, message, msg
                 in reader.iter_decoded_messages(topics=["/camera/h264"])]
    assert rate > FPS / 3, f"capture ran at {rate:.1f} fps: the machine is overloaded"
    seconds = (video[-1][0] - video[0][0]) / 1e9
    assert seconds > 2, f"only {seconds:.1f} s of video"
    assert rate * seconds * 0.85 <= len(video) <= FPS * seconds * 1.1 + 2
    assert all(msg.format == "h264" for _, msg in video)
    assert all(stamp_ns(msg) == pytest.approx(t, abs=1000) for t, msg in video)
    assert decodes_alone(bytes(video[0][1].data)), "the recording does not start at a keyframe"
    frames = decode(b"".join(bytes(msg.data) for _, msg in video))
    assert len(frames) == len(video)
    assert frames[0].shape == frames[-1].shape == (480, 640, 3)


def test_ros2_recording_survives_a_killed_encoder_and_sigterm(tmp_path: Path) -> None:
    srv, out = record(tmp_path, "--record-mcap-compression", "lz4",
                      "--record-mcap-profile", "ros2")
    try:
        st = srv.wait_ready()
        t0 = time.monotonic()
        rate = watch(srv, 2.0)
        os.kill(st["pids"]["encoder"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while srv.status()["restarts"]["encoder"] < 1:
            assert time.monotonic() < deadline, "the encoder was not restarted"
            time.sleep(0.2)
        rate = (rate + watch(srv, 2.0)) / 2
        signalled = time.monotonic() - t0
        assert srv.stop(signal.SIGTERM, timeout=15) == 0
        span = (signalled, time.monotonic() - t0)
    finally:
        srv.kill()
    log = srv.log()
    assert "encoder process died" in log and "mcap process died" not in log
    assert "MCAP finalized" in log
    counts, seconds = check_common(out, span, "lz4", rate, "ros2")
    # Depth comes from the raw ring, so the encoder's death does not interrupt it
    # (checked above); color resumes after the restart.
    assert counts["/camera/color"] >= 0.3 * rate * seconds["/camera/depth"]


def test_source_end_flushes_so_a_killed_server_loses_nothing(tmp_path: Path) -> None:
    """At the end of a --no-loop recording every frame so far is on disk in whole chunks."""
    from mcap.stream_reader import StreamReader  # noqa: PLC0415

    rec = tmp_path / "short.db3"
    make_recording(rec, 640, 480, 30, frames=75)
    srv, out = record(tmp_path, "--source", str(rec), "--no-loop")
    try:
        deadline = time.monotonic() + 30
        while "MCAP chunks flushed" not in srv.log():
            assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        srv.kill()  # SIGKILL to the whole group: no finalization at all
    finally:
        srv.kill()
    logged = re.search(r"MCAP chunks flushed \((.*)\)", srv.log())
    assert logged, srv.log()
    counts = {k: int(v) for k, v in (part.split() for part in logged.group(1).split(", "))}
    with out.open("rb") as f:
        found: Counter = Counter()
        topics: dict[int, str] = {}
        try:
            for record_ in StreamReader(f).records:
                if type(record_).__name__ == "Channel":
                    topics[record_.id] = record_.topic  # type: ignore[attr-defined]
                elif type(record_).__name__ == "Message":
                    found[topics[record_.channel_id]] += 1  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the unfinished tail is expected to end badly
            assert "Footer" not in repr(exc)
    assert counts["depth"] > 10, srv.log()
    assert found["/camera/depth"] >= counts["depth"]
    assert found["/camera/color"] >= counts.get("color", 0)
