"""--foxglove on the real server, read by a Foxglove WebSocket protocol client.

One server (a librealsense recording with known depth, a fixed GPS) is shared by the
module; the client offers both subprotocols, subscribes by channel id and decodes the
protobuf messages with the schemas the server advertises.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from websockets.sync.client import connect

from tests.camera.rs_recording import FOCAL, make_recording
from tests.helpers import ROOT, Server, children_of, free_port, run_cli, running
from tests.robotics.fox_client import SUBPROTOCOLS, FoxgloveClient, listener_pid
from tests.robotics.h264 import decode, decodes_alone

LAT, LON = 48.137154, 11.576124
TOPICS = {"/camera/color": "foxglove.CompressedImage", "/camera/depth": "foxglove.RawImage",
          "/camera/calibration": "foxglove.CameraCalibration", "/gps": "foxglove.LocationFix",
          "/tf": "foxglove.FrameTransform", "/camera/h264": "foxglove.CompressedVideo"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("rec") / "scene.db3"
    facts = make_recording(path, 640, 480, 30, frames=45)
    facts["path"] = str(path)
    return facts


@pytest.fixture(scope="module")
def server(recording: dict) -> Iterator[Server]:
    port = free_port()
    with running("--source", recording["path"], "--width", "640", "--height", "480",
                 "--foxglove", f"127.0.0.1:{port}", "--gps", f"fixed:{LAT},{LON}") as srv:
        srv.fox_port = port  # type: ignore[attr-defined]
        yield srv


def client(srv: Server) -> FoxgloveClient:
    c = FoxgloveClient(srv.fox_port)  # type: ignore[attr-defined]
    c.wait_channels(list(TOPICS))
    return c


def encoded_color(srv: Server) -> int:
    return srv.status()["streams"]["color"]["frames_encoded"]


def test_channels_are_advertised_with_foxglove_schemas(server: Server) -> None:
    c = client(server)
    try:
        assert c.ws.subprotocol == "foxglove.sdk.v1"
        assert {t: ch["schemaName"] for t, ch in c.channels.items() if t in TOPICS} == TOPICS
        assert all(c.channels[t]["encoding"] == "protobuf" for t in TOPICS)
        assert float(c.channels["/camera/depth"]["metadata"]["depth_scale"]) == 0.001
    finally:
        c.close()


def test_color_depth_and_calibration_decode_to_the_recording(server: Server,
                                                             recording: dict) -> None:
    c = client(server)
    try:
        c.subscribe(["/camera/color", "/camera/depth", "/camera/calibration", "/tf"])
        got = c.collect({"/camera/color": 3, "/camera/depth": 3, "/camera/calibration": 1,
                         "/tf": 1})
    finally:
        c.close()
    now = time.time()
    for topic, msgs in got.items():
        log_times = [t for t, _ in msgs]
        assert log_times == sorted(log_times), topic
        for log_time, msg in msgs:
            # Timestamps are capture times: the message's and the log time agree.
            stamp = msg.timestamp.seconds + msg.timestamp.nanos / 1e9
            assert abs(stamp - log_time / 1e9) < 1e-6, topic
            assert now - 10 < stamp <= now, topic

    _, color = got["/camera/color"][-1]
    assert color.format == "jpeg"
    img = cv2.imdecode(np.frombuffer(color.data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    # The top-left quadrant of the scene is pure red (BGR 0, 0, 255), as encoded.
    assert np.abs(img[120:200, 100:200].mean(axis=(0, 1)) - (0, 0, 255)).max() < 12

    _, depth = got["/camera/depth"][-1]
    assert (depth.encoding, depth.width, depth.height, depth.step) == ("16UC1", 640, 480, 1280)
    d = np.frombuffer(depth.data, np.uint16).reshape(480, 640)
    patch = d[48:144, 64:160]
    assert np.median(patch[patch > 0]) == recording["plane_m"] * 1000
    assert (d == recording["box_m"] * 1000).sum() > 1000

    _, cal = got["/camera/calibration"][-1]
    assert (cal.width, cal.height, cal.distortion_model) == (640, 480, "plumb_bob")
    assert list(cal.K) == pytest.approx([FOCAL, 0, 320, 0, FOCAL, 240, 0, 0, 1])
    assert list(cal.P)[:3] == pytest.approx([FOCAL, 0, 320])
    assert cal.frame_id == color.frame_id == depth.frame_id == "camera_color_optical_frame"
    # The optical frame (z forward, y down) hangs under camera_link (x forward, z up).
    _, tf = got["/tf"][-1]
    assert (tf.parent_frame_id, tf.child_frame_id) == ("camera_link", cal.frame_id)
    q = tf.rotation
    assert (q.x, q.y, q.z, q.w) == (-0.5, 0.5, -0.5, 0.5)


def test_color_is_encoded_only_while_a_client_subscribes(server: Server) -> None:
    def settled() -> int:
        before = encoded_color(server)
        time.sleep(0.5)
        return encoded_color(server) - before

    def goes_idle(timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if settled() == 0:
                return True
        return False

    assert goes_idle(), "color encoded with nobody watching"
    c = client(server)
    try:
        c.subscribe(["/camera/depth"])
        c.collect({"/camera/depth": 2})
        assert settled() == 0, "a depth subscription made the encoder encode color"
        c.subscribe(["/camera/color"])
        c.collect({"/camera/color": 2})
        assert settled() > 5
        c.unsubscribe(["/camera/color"])
        assert goes_idle(), "color still encoded after the unsubscribe"
    finally:
        c.close()


def h264_frames(srv: Server) -> int:
    return srv.status()["h264"]["frames"]


def h264_goes_idle(srv: Server, timeout: float = 5.0) -> bool:
    """True once the H.264 stage has no consumer and encodes nothing for half a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = h264_frames(srv)
        time.sleep(0.5)
        if h264_frames(srv) == before and srv.status()["h264"]["consumers"] == 0:
            return True
    return False


def test_h264_decodes_from_a_keyframe_and_is_encoded_only_for_subscribers(
        server: Server) -> None:
    assert h264_goes_idle(server), "H.264 encoded with nobody subscribed"
    first = client(server)
    second = None
    try:
        first.subscribe(["/camera/h264"])
        got = first.collect({"/camera/h264": 30})["/camera/h264"]
        now = time.time()
        keyframes = server.status()["h264"]["keyframes"]
        # A second client joining makes the stage force a keyframe for it at once.
        second = client(server)
        second.subscribe(["/camera/h264"])
        joined = second.collect({"/camera/h264": 15})["/camera/h264"]
        assert server.status()["h264"]["consumers"] == 2
    finally:
        first.close()
        if second is not None:
            second.close()
    msgs = [msg for _, msg in got]
    assert all(msg.format == "h264" and msg.frame_id == "camera_color_optical_frame"
               for msg in msgs)
    stamps = [msg.timestamp.seconds + msg.timestamp.nanos / 1e9 for msg in msgs]
    # Capture times: the message's and the log time agree, strictly increasing, recent.
    assert all(abs(st - t / 1e9) < 1e-6 for st, (t, _) in zip(stamps, got, strict=True))
    assert stamps == sorted(set(stamps)) and now - 10 < stamps[0] <= stamps[-1] <= now
    assert decodes_alone(bytes(msgs[0].data)), "the first message is not a keyframe"
    frames = decode(b"".join(bytes(msg.data) for msg in msgs))
    assert len(frames) == len(msgs)
    assert all(f.shape == (480, 640, 3) for f in frames)
    # The top-left quadrant of the scene is pure red (BGR 0, 0, 255) in every frame.
    assert np.abs(frames[-1][120:200, 100:200].mean(axis=(0, 1)) - (0, 0, 255)).max() < 16

    starts = [i for i, (_, msg) in enumerate(joined) if decodes_alone(bytes(msg.data))]
    assert starts and starts[0] <= 5, "the second client waited long for a keyframe"
    tail = [bytes(msg.data) for _, msg in joined[starts[0]:]]
    assert len(decode(b"".join(tail))) == len(tail)
    assert server.status()["h264"]["keyframes"] > keyframes
    assert h264_goes_idle(server), "H.264 still encoded after the clients left"


def test_gps_fixed_source_is_published_as_location_fix(server: Server) -> None:
    c = client(server)
    try:
        c.subscribe(["/gps"])
        got = c.collect({"/gps": 1}, timeout=5)
    finally:
        c.close()
    _, fix = got["/gps"][0]
    assert (fix.latitude, fix.longitude) == (pytest.approx(LAT), pytest.approx(LON))
    assert fix.frame_id == "gps"


def test_garbage_and_unknown_operations_do_not_kill_the_child(server: Server) -> None:
    kids = set(children_of(server.pid))
    junk: list[str | bytes] = [
        "not json", "{", json.dumps({"op": "frobnicate"}), json.dumps([1, 2, 3]),
        json.dumps({"op": "subscribe", "subscriptions": [{"id": "x", "channelId": None}]}),
        json.dumps({"op": "subscribe", "subscriptions": [{"id": 7, "channelId": 99999}]}),
        json.dumps({"op": "unsubscribe", "subscriptionIds": [123456]}),
        b"", b"\x07garbage", b"\x01" + bytes(3), bytes(range(256)) * 64,
    ]
    with connect(f"ws://127.0.0.1:{server.fox_port}", subprotocols=SUBPROTOCOLS,  # type: ignore[attr-defined]
                 open_timeout=10) as ws:
        for item in junk:
            try:
                ws.send(item)
            except OSError:
                break
    # A raw TCP client that is not speaking WebSocket at all.
    with socket.create_connection(("127.0.0.1", server.fox_port), timeout=5) as s:  # type: ignore[attr-defined]
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
    c = client(server)
    try:
        c.subscribe(["/camera/color"])
        c.collect({"/camera/color": 2})
    finally:
        c.close()
    assert set(children_of(server.pid)) == kids
    assert "foxglove process died" not in server.log()


def test_a_stalled_client_gets_fewer_frames_and_memory_stays_bounded(server: Server) -> None:
    """A client that never reads holds at most the server's short per-client backlog."""
    stalled = client(server)
    fox = listener_pid(server.pid, server.fox_port)  # type: ignore[attr-defined]
    try:
        rss0 = _rss_mb(fox)
        stalled.subscribe(["/camera/depth", "/camera/color"])
        # 640x480 depth is ~18 MB/s if queued: keep reading a second client meanwhile.
        other = client(server)
        try:
            other.subscribe(["/camera/color"])
            got = other.collect({"/camera/color": 120}, timeout=30)
        finally:
            other.close()
        assert len(got["/camera/color"]) >= 120
        grown = _rss_mb(fox) - rss0
        assert grown < 25, f"the Foxglove child grew by {grown:.0f} MB for a stalled client"
    finally:
        stalled.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("args", [
    ("--foxglove", "127.0.0.1:99999"), ("--foxglove", "bad host!:8765"),
    ("--foxglove", "127.0.0.1:5000", "--port", "5000"),
    ("--record-mcap", "/nonexistent/dir/x.mcap"), ("--gps", "fixed:91,0"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-video", "h264",
     "--record-mcap-profile", "ros2"), ("--foxglove-video", "vp9"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-keep", "3"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-split-size", "1G", "--record-mcap-keep", "0"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-split-size", "100k"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-split-size", "lots"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-split-duration", "0.5s"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-split-duration", "10 minutes"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-flush", "0"),
    ("--record-mcap", "/tmp/x.mcap", "--record-mcap-depth", "jpeg"),
])
def test_bad_robotics_options_are_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    res = run_cli(*args)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr


def test_foxglove_port_taken_is_one_line_and_exit_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        res = run_cli("--host", "127.0.0.1", "--port", str(free_port()),
                      "--foxglove", f"127.0.0.1:{port}")
    assert res.returncode == 3, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "ERROR" in ln or "error" in ln]
    assert len(lines) == 1 and "--foxglove" in lines[0] and "in use" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert time.monotonic() - t0 < 15


def test_a_serial_gps_with_two_readers_is_refused_in_the_push_too() -> None:
    # The push's GPS child and the Foxglove child would both open the port.
    res = subprocess.run(
        [sys.executable, str(ROOT / "app_https_client.py"), "-v", "http://127.0.0.1:9",
         "-g", "http://127.0.0.1:9/gps", "--gps=nmea:/dev/ttyUSB0", "--foxglove",
         f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "one reader" in lines[0], res.stderr
