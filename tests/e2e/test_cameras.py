"""Several cameras in one server: the synthetic scene ("front") and a librealsense
recording of known depth ("bands"), each under /cam/NAME/, read by ffprobe, OpenCV and
headless Chromium; one camera's capture killed while the other's clients watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.browser import Browser
from tests.conftest import require
from tests.e2e.test_depth import (
    BANDS_MM,
    H,
    W,
    band_depth,
    inside_bands,
    make_band_recording,
)
from tests.e2e.test_streams import ffprobe_stream
from tests.helpers import Server, Watcher, free_port, run_cli, running

TOKEN = "cams-s3cret"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_band_recording(tmp_path_factory)


@pytest.fixture(scope="module")
def server(recording: dict) -> Iterator[Server]:
    # "ghost" names a RealSense that is not attached: it shows NO SIGNAL beside the others.
    with running("--source", "front=synthetic", "--source", recording["path"],
                 "--source", "ghost=realsense:000000000000",
                 "--width", "848", "--height", "480", "--no-align", "--depth-max", "10",
                 "--sync", "front=master", "--token", TOKEN) as srv:
        deadline = time.monotonic() + 30
        while not all(c["frames_captured"] > 0 for c in status(srv)["cameras"].values()):
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        yield srv


def status(srv: Server) -> dict:
    code, _, body = srv.get(f"/status?token={TOKEN}", timeout=3)
    assert code == 200, body
    return json.loads(body)


def test_cameras_json_lists_every_camera_with_its_routes(server: Server, recording: dict
                                                         ) -> None:
    code, _, body = server.get(f"/cameras.json?token={TOKEN}")
    assert code == 200
    cams = json.loads(body)
    # a recording is named by its stem
    assert [c["name"] for c in cams] == ["front", "bands", "ghost"]
    front, bands, _ = cams
    assert (front["source"], front["width"], front["height"]) == ("synthetic", 848, 480)
    assert (bands["source"], bands["width"], bands["height"]) == (recording["path"], W, H)
    for cam in cams:
        base = f"/cam/{cam['name']}/"
        assert cam["routes"]["page"] == base
        for route in ("color", "depth", "combined", "metric", "depth.png", "camera.json",
                      "depth-video"):
            assert cam["routes"][route] == base + route
    assert server.get("/cameras.json")[0] == 401


@pytest.mark.parametrize(("path", "width", "height"), [
    ("/cam/front/color", 848, 480), ("/cam/bands/color", W, H), ("/cam/bands/depth", W, H),
    ("/cam/bands/combined", 2 * W, H), ("/cam/front/metric", 848, 480),
    ("/color", 848, 480),  # the unprefixed routes are the first camera's
])
def test_each_cameras_streams_play_in_ffprobe(server: Server, path: str, width: int,
                                              height: int) -> None:
    st = ffprobe_stream(f"{server.base}{path}?token={TOKEN}", frames=10)
    assert (st["codec_name"], st["width"], st["height"]) == ("mjpeg", width, height)
    assert int(st["nb_read_frames"]) == 10


def test_each_camera_has_its_own_depth_and_snapshots(server: Server) -> None:
    code, _, body = server.get(f"/cam/bands/depth.png?token={TOKEN}")
    assert code == 200
    assert np.array_equal(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED),
                          band_depth())
    code, _, body = server.get(f"/cam/front/depth.png?token={TOKEN}")
    front = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert code == 200 and front.shape == (480, 848)
    code, _, body = server.get(f"/cam/bands/color.jpg?token={TOKEN}")
    assert code == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), 1).shape == (H, W, 3)
    code, _, body = server.get(f"/cam/bands/camera.json?token={TOKEN}")
    assert code == 200 and json.loads(body)["intrinsics"]["width"] == W
    code, _, body = server.get(f"/cam/front/camera.json?token={TOKEN}")
    assert code == 200 and json.loads(body)["intrinsics"]["width"] == 848
    for path in ("/cam/nosuch/color", "/cam/bands/nosuch"):
        assert server.get(f"{path}?token={TOKEN}")[0] == 404
    assert server.get("/cam/bands/depth.png")[0] == 401
    code, headers, _ = server.get(f"/cam/bands?token={TOKEN}")
    assert code == 308 and headers["location"].endswith(f"/cam/bands/?token={TOKEN}")


def test_status_shows_each_camera_and_its_processes(server: Server) -> None:
    st = status(server)
    cams = st["cameras"]
    assert set(cams) == {"front", "bands", "ghost"}  # in order in /cameras.json
    pids = [p for c in cams.values() for p in (c["pids"]["capture"], c["pids"]["encoder"])]
    assert all(pids) and len(set(pids)) == 6
    assert cams["front"]["pids"]["capture"] == st["pids"]["capture"]
    for name in ("front", "bands"):
        assert cams[name]["source_ok"] and cams[name]["fps_captured"] > 0
    assert not cams["ghost"]["source_ok"]
    assert cams["bands"]["resolution"] == {"width": W, "height": H}
    # Every source stamps frames in the host's clock: a frame of one free-running camera
    # is within half a frame interval of the other's nearest (a whole one allows for a
    # late frame), and the first camera is its own reference.
    interval = 1000 / min(cams[n]["fps_captured"] for n in ("front", "bands"))
    sync = st["sync"]
    assert sync["reference"] == "front" and sync["offset_ms"]["front"] == 0
    assert abs(sync["offset_ms"]["bands"]) <= interval, sync
    assert cams["bands"]["offset_ms"] == sync["offset_ms"]["bands"]
    assert sync["offset_ms"]["ghost"] is None  # no frames: no offset, and not in the spread
    assert 0 <= sync["spread_ms"] <= interval, sync
    # --sync on a source without inter-camera sync is one line, and the camera runs.
    said = [line for line in server.log().splitlines() if "--sync" in line]
    assert len(said) == 1 and "ignored for synthetic" in said[0], said


def test_metrics_carry_a_camera_label(server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    code, _, body = server.get(f"/metrics?token={TOKEN}")
    assert code == 200
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    captured = {s.labels["camera"]: s.value for s in fams["camera_frames_captured"].samples
                if s.name == "camera_frames_captured_total"}
    assert set(captured) == {"front", "bands", "ghost"} and captured["bands"] > 0
    viewers = {(s.labels["camera"], s.labels["stream"]) for s in fams["camera_viewers"].samples}
    assert ("bands", "metric") in viewers and ("front", "color") in viewers
    restarts = {(s.labels["camera"], s.labels["process"])
                for s in fams["camera_process_restarts"].samples}
    assert {("bands", "capture"), ("front", "web")} <= restarts


def test_grid_page_shows_a_live_tile_per_camera(server: Server) -> None:
    with Browser() as b:
        b.goto(f"{server.base}/?token={TOKEN}")
        tiles = b.wait_for("window.depthcam && window.depthcam.tiles"
                           " && window.depthcam.tiles().every(t => t.width > 0"
                           " && t.fps !== undefined && t.fps !== null)"
                           " && window.depthcam.tiles()", timeout=30)
        assert [(t["name"], t["width"], t["height"]) for t in tiles] == [
            ("front", 848, 480), ("bands", W, H), ("ghost", 848, 480)]
        assert [t["href"] for t in tiles] == [f"cam/{n}/?token={TOKEN}"
                                              for n in ("front", "bands", "ghost")]
        assert [t["source_ok"] for t in tiles] == [True, True, False]


def test_a_cameras_own_page_measures_its_own_depth(server: Server) -> None:
    with Browser() as b:
        b.goto(f"{server.base}/cam/bands/?token={TOKEN}")
        b.wait_for("window.depthcam && window.depthcam.depthReady"
                   " && window.depthcam.depthAt(20, 20) !== null", timeout=30)
        assert "bands" in b.eval("document.querySelector('h1').textContent")
        pts = inside_bands(100)
        got = b.eval(f"{pts.tolist()}.map(([x, y]) => window.depthcam.depthAt(x, y))")
        truth = np.array([band_depth()[y, x] / 1000.0 for x, y in pts])
        ok = np.array([g is not None and abs(g - t) <= 0.01 * t
                       for g, t in zip(got, truth, strict=True)])
        assert ok.mean() >= 0.95, list(zip(got, truth, strict=True))
        assert min(BANDS_MM) / 1000 <= min(g for g in got if g) <= max(BANDS_MM) / 1000


def test_killing_one_cameras_capture_spares_the_other(server: Server) -> None:
    """SIGKILL the recording's capture child: the synthetic camera's clients see no gap
    longer than the worst they saw before (or half a second), and the killed camera's
    clients get pictures again within the time a child takes to come back."""
    front = Watcher(server.port, f"/cam/front/color?token={TOKEN}")
    bands = Watcher(server.port, f"/cam/bands/color?token={TOKEN}")
    front.start()
    bands.start()
    try:
        deadline = time.monotonic() + 20
        while len(front.parts) < 60 or len(bands.parts) < 30:
            assert time.monotonic() < deadline, (len(front.parts), len(bands.parts))
            time.sleep(0.1)
        before = np.diff([a for a, _ in front.parts]).max()
        victim = status(server)["cameras"]["bands"]["pids"]["capture"]
        t_kill = time.time()
        os.kill(victim, signal.SIGKILL)
        back_within = server.restart_deadline()
        deadline = time.monotonic() + back_within + 5
        while bands.resumed_after(t_kill) is None:
            assert time.monotonic() < deadline, f"bands never resumed\n{server.log()[-3000:]}"
            time.sleep(0.1)
        resumed = bands.resumed_after(t_kill)
        time.sleep(1.0)
        assert front.error is None and bands.error is None, (front.error, bands.error)
        arrivals = [a for a, _ in front.parts if a >= t_kill - 0.5]
        during = np.diff(arrivals).max()
        assert during <= max(0.5, 2 * before), (during, before)
        assert resumed is not None and resumed <= back_within, (resumed, back_within)
        cams = status(server)["cameras"]
        assert cams["bands"]["restarts"]["capture"] == 1
        assert cams["front"]["restarts"]["capture"] == 0
        assert cams["bands"]["pids"]["capture"] not in (0, victim)
    finally:
        front.close()
        bands.close()


def test_record_and_snapshot_take_a_camera_prefix(recording: dict, tmp_path: Path) -> None:
    """--record bands:PATH records the recording's colour as it is; --snapshot-on-exit
    front:PATH keeps the synthetic camera's last frame; each from its own camera."""
    mkv, jpg = tmp_path / "bands.mkv", tmp_path / "front.jpg"
    with running("--source", "front=synthetic", "--source", recording["path"],
                 "--width", "320", "--height", "240", "--record", f"bands:{mkv}",
                 "--snapshot-on-exit", f"front:{jpg}") as srv:
        deadline = time.monotonic() + 30
        while not (mkv.exists() and mkv.stat().st_size > 50_000):
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        assert srv.stop() == 0, srv.log()
    out = subprocess.run(
        [require("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
         str(mkv)], capture_output=True, text=True, timeout=60, check=True)
    st = json.loads(out.stdout)["streams"][0]
    assert (st["codec_name"], st["width"], st["height"]) == ("mjpeg", W, H)
    assert int(st["nb_read_frames"]) >= 10
    shot = cv2.imread(str(jpg))
    assert shot is not None and shot.shape == (240, 320, 3)
    assert "recording color to" in srv.log() and "tap[bands]" in srv.log()


def test_foxglove_and_mcap_carry_every_camera_under_its_own_topics(
        recording: dict, tmp_path: Path) -> None:
    """One Foxglove server and one MCAP file for both cameras: /front/... and /bands/...,
    each camera's frames in its own frame_id, one /tf with a transform per camera."""
    from mcap.reader import make_reader  # noqa: PLC0415
    from mcap_protobuf.decoder import DecoderFactory  # noqa: PLC0415

    from tests.e2e.test_mcap import JsonDecoderFactory  # noqa: PLC0415
    from tests.robotics.fox_client import FoxgloveClient  # noqa: PLC0415
    from tests.robotics.h264 import decode  # noqa: PLC0415

    port, path = free_port(), tmp_path / "rig.mcap"
    topics = [f"/{c}/{t}" for c in ("front", "bands") for t in ("color", "depth",
                                                                "calibration")]
    with running("--source", "front=synthetic", "--source", recording["path"],
                 "--width", "640", "--height", "480", "--no-align",
                 "--foxglove", f"127.0.0.1:{port}", "--record-mcap", str(path),
                 "--record-mcap-video", "h264") as srv:
        deadline = time.monotonic() + 30  # the web answers first; the WebSocket follows
        while "Foxglove WebSocket on" not in srv.log():
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        c = FoxgloveClient(port)
        try:
            c.wait_channels([*topics, "/tf"])
            c.wait_channels(["/front/h264", "/bands/h264"])
            c.subscribe(["/bands/depth", "/front/color", "/bands/calibration", "/tf",
                         "/bands/h264"])
            got = c.collect({"/bands/depth": 2, "/front/color": 2, "/bands/calibration": 1,
                             "/tf": 2, "/bands/h264": 10})
        finally:
            c.close()
        _, depth = got["/bands/depth"][-1]
        assert depth.frame_id == "bands_color_optical_frame"
        assert np.array_equal(np.frombuffer(depth.data, np.uint16).reshape(H, W), band_depth())
        _, color = got["/front/color"][-1]
        assert color.frame_id == "front_color_optical_frame"
        assert cv2.imdecode(np.frombuffer(color.data, np.uint8), 1).shape == (480, 640, 3)
        assert got["/bands/calibration"][-1][1].frame_id == "bands_color_optical_frame"
        # Each camera has its own H.264 stage: the recording's, decoded at its size.
        units = [msg for _, msg in got["/bands/h264"]]
        assert {u.frame_id for u in units} == {"bands_color_optical_frame"}
        pictures = decode(b"".join(u.data for u in units))
        assert pictures and pictures[-1].shape == (H, W, 3)
        deadline = time.monotonic() + 10
        while len({m.parent_frame_id for _, m in got["/tf"]}) < 2:
            assert time.monotonic() < deadline, got["/tf"]
            c = FoxgloveClient(port)
            try:
                c.wait_channels(["/tf"])
                c.subscribe(["/tf"])
                got["/tf"] += c.collect({"/tf": 2})["/tf"]
            finally:
                c.close()
        assert {(m.parent_frame_id, m.child_frame_id) for _, m in got["/tf"]} == {
            ("front_link", "front_color_optical_frame"),
            ("bands_link", "bands_color_optical_frame")}
        start = {n: c["frames_captured"] for n, c in srv.status()["cameras"].items()}
        deadline = time.monotonic() + 30
        while any(c["frames_captured"] < start[n] + 30
                  for n, c in srv.status()["cameras"].items()):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.2)
        assert srv.stop() == 0, srv.log()
    counts: dict[str, int] = {}
    frames: dict[str, set[str]] = {}
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory(), JsonDecoderFactory()])
        for _s, channel, _m, msg in reader.iter_decoded_messages(log_time_order=False):
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            fid = msg.get("frame_id") if isinstance(msg, dict) else (
                getattr(msg, "frame_id", None) or getattr(msg, "child_frame_id", ""))
            frames.setdefault(channel.topic, set()).add(fid)
    for topic in topics:
        assert counts.get(topic, 0) >= 1, (topic, counts)
    assert counts["/front/color"] >= 10 and counts["/bands/depth"] >= 10, counts
    assert counts.get("/front/h264", 0) >= 10 and counts.get("/bands/h264", 0) >= 10, counts
    assert frames["/front/depth"] == {"front_color_optical_frame"}
    assert frames["/tf"] == {"front_color_optical_frame", "bands_color_optical_frame"}
    assert counts.get("/front/imu", 0) > 0 and frames["/front/imu"] == {
        "front_color_optical_frame"}
    assert "/camera/color" not in counts and "/imu" not in counts


def test_each_camera_plays_over_webrtc_on_its_own_mountpoint(recording: dict) -> None:
    """--webrtc with two cameras: one Janus, a mountpoint and an H.264 stage per camera;
    each camera's page plays its own camera."""
    require("janus")
    with running("--source", "front=synthetic", "--source", recording["path"],
                 "--width", "848", "--height", "480", "--webrtc") as srv, Browser() as b:
        for name, width in (("bands", W), ("front", 848)):
            b.goto(f"{srv.base}/cam/{name}/?player=webrtc")
            b.wait_for("window.depthcam && window.depthcam.webrtcState"
                       " && window.depthcam.webrtcState().status === 'playing'", timeout=40)
            st = b.wait_for("window.depthcam.webrtcStats().then(s => s && s.framesDecoded > 5"
                            " && s)", timeout=30)
            assert (st["frameWidth"], st["frameHeight"]) == (width, H), (name, st)
        cams = srv.status()["cameras"]
        assert cams["bands"]["pids"]["capture"] != cams["front"]["pids"]["capture"]
        code, _, body = srv.get("/cam/bands/webrtc/config")
        assert code == 200 and json.loads(body)["mountpoint"] == 2
        code, _, body = srv.get("/webrtc/config")
        assert code == 200 and json.loads(body)["mountpoint"] == 1
        assert srv.log().count("janus") >= 1 and "Traceback" not in srv.log()


def test_a_camera_that_cannot_start_shows_no_signal_and_spares_the_others(
        server: Server) -> None:
    """The ghost camera (a serial not attached): the server runs, its routes show NO
    SIGNAL, and it said why once, however often it has tried again since the start."""
    code, _, body = server.get(f"/cam/ghost/color.jpg?token={TOKEN}")
    shot = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and shot is not None and shot.shape == (480, 848, 3)
    # Up for two of capture's longest retry intervals (BACKOFF_MAX): the module's other
    # tests usually took longer already.
    time.sleep(max(0.0, 2 * 5.0 - (time.monotonic() - server.started)))
    log = server.log()
    assert log.count("source cannot start") == 1, log[-3000:]
    assert "no device with that serial number" in log and "Traceback" not in log
    assert server.proc.poll() is None


@pytest.mark.parametrize(("args", "says"), [
    (("--source", "a=synthetic", "--record", "b:x.mkv"), "no camera named 'b'"),
    (("--source", "a=synthetic", "--sync", "b=slave"), "no camera named 'b'"),
    (("--sync", "sideways"), "MODE must be one of"),
    (("--source", "a=synthetic", "--source", "b=synthetic", "--record", "a:x.mkv",
      "--record", "b:x.mkv"), "named twice"),
    (("--source", "Front=synthetic"), "NAME 'Front'"),
    (("--source", "a=synthetic", "--source", "a=synthetic"), "NAME 'a' is given twice"),
    (("--source", "realsense:123", "--source", "x=realsense:123"), "name the RealSense 123"),
    (("--source", "a=", "--source", "b=synthetic"), "no source after the NAME"),
    (("--source", "a=synthetic", "--source", "b=synthetic", "--serial", "1"), "--serial"),
])
def test_bad_source_lists_are_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    r = run_cli(*args)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr
