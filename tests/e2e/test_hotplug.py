"""A camera plugged in while the server runs, end to end: `tests/hotplug_server.py` runs
the server of app_mp.py with the list of attached serials read from a file this test
writes; everything else (the spare slot, its children and rings, the routes, /cameras.json
and the grid's new tile) is the product's own. librealsense is asked to open a serial
that no device has, so the new camera shows NO SIGNAL on its routes, as one unplugged."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from tests.browser import Browser
from tests.helpers import MjpegReader, running, shm_segments

PLUG_WITHIN_S = 5.0


def test_a_camera_plugged_in_appears_with_its_routes_and_tile(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    with running("--devices-file", str(devices), "--width", "640", "--height", "480",
                 script="tests/hotplug_server.py") as srv, Browser() as b:
        code, _, body = srv.get("/cameras.json")
        assert code == 200 and [c["name"] for c in json.loads(body)] == ["synthetic"]
        assert srv.get("/cam/0123456789ab/color.jpg")[0] == 404
        before = srv.status()["pids"]
        devices.write_text("0123456789AB\n")
        t0 = time.monotonic()
        while True:
            code, _, body = srv.get("/cameras.json")
            names = [c["name"] for c in json.loads(body)]
            if names == ["synthetic", "0123456789ab"]:
                break
            assert time.monotonic() - t0 < PLUG_WITHIN_S, (names, srv.log()[-3000:])
            time.sleep(0.1)
        # Its routes: the NO SIGNAL card a camera that cannot be opened shows.
        reader = MjpegReader(srv.port, "/cam/0123456789ab/color")
        try:
            _, jpeg = reader.next_part()
        finally:
            reader.close()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1).shape == (480, 640, 3)
        st = srv.status()
        assert st["cameras"]["0123456789ab"]["pids"]["capture"] > 0
        assert st["pids"] == before  # the first camera's children were not touched
        # The page at / is now the grid, with a tile for each.
        b.goto(srv.base + "/")
        tiles = b.wait_for("window.depthcam && window.depthcam.tiles"
                           " && window.depthcam.tiles().length === 2"
                           " && window.depthcam.tiles()", timeout=20)
        assert [t["name"] for t in tiles] == ["synthetic", "0123456789ab"]
        log = srv.log()
        assert "RealSense 0123456789AB plugged in: serving it at /cam/0123456789ab/" in log
        assert "Traceback" not in log
        assert srv.stop() == 0
    assert shm_segments(srv.pid) == []


def test_an_open_grid_gets_the_new_tile(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    devices.write_text("AAA111\n")
    with running("--devices-file", str(devices), "--width", "640", "--height", "480",
                 script="tests/hotplug_server.py") as srv, Browser() as b:
        deadline = time.monotonic() + PLUG_WITHIN_S
        while len(json.loads(srv.get("/cameras.json")[2])) < 2:
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        b.goto(srv.base + "/")
        b.wait_for("window.depthcam && window.depthcam.tiles"
                   " && window.depthcam.tiles().length === 2", timeout=20)
        devices.write_text("AAA111\nBBB222\n")
        tiles = b.wait_for("window.depthcam.tiles().length === 3"
                           " && window.depthcam.tiles()", timeout=PLUG_WITHIN_S + 4)
        assert [t["name"] for t in tiles] == ["synthetic", "aaa111", "bbb222"]


def test_a_camera_plugged_in_is_published_to_foxglove_and_mcap(tmp_path: Path) -> None:
    """The robotics children take the new camera on too: its topics are advertised on the
    running Foxglove server and the MCAP file goes on (finalized, readable)."""
    from mcap.reader import make_reader  # noqa: PLC0415

    from tests.helpers import free_port  # noqa: PLC0415
    from tests.robotics.fox_client import FoxgloveClient  # noqa: PLC0415

    devices, mcap, port = tmp_path / "devices", tmp_path / "run.mcap", free_port()
    with running("--devices-file", str(devices), "--width", "640", "--height", "480",
                 "--foxglove", f"127.0.0.1:{port}", "--record-mcap", str(mcap),
                 script="tests/hotplug_server.py") as srv:
        deadline = time.monotonic() + 30
        while "Foxglove WebSocket on" not in srv.log():
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        c = FoxgloveClient(port)
        try:
            c.wait_channels(["/camera/color"])
            devices.write_text("0123456789AB\n")
            c.wait_channels(["/0123456789ab/color", "/0123456789ab/calibration"],
                            timeout=PLUG_WITHIN_S)
        finally:
            c.close()
        deadline = time.monotonic() + 10
        while srv.log().count("camera 0123456789ab plugged in: publishing it") < 2:
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        assert srv.stop() == 0
    with mcap.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    assert "/camera/color" in {ch.topic for ch in summary.channels.values()}
