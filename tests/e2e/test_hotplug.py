"""Cameras plugged in while the server runs, end to end: `tests/hotplug_server.py` runs
the server of app_mp.py with the list of attached serials read from a file these tests
write; everything else (the spare slots, their children and rings, the routes,
/cameras.json, the grid's new tiles, the Foxglove topics and the MCAP file) is the
product's own. librealsense is asked to open serials no device has, so the new cameras
show NO SIGNAL on their routes, as cameras unplugged do. One server serves the module;
the tests run in order, each plugging a camera more."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.browser import Browser
from tests.helpers import MjpegReader, Server, free_port, running, shm_segments

PLUG_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path, int]]:
    d = tmp_path_factory.mktemp("hotplug")
    devices, mcap, port = d / "devices", d / "run.mcap", free_port()
    with running("--devices-file", str(devices), "--width", "640", "--height", "480",
                 "--foxglove", f"127.0.0.1:{port}", "--record-mcap", str(mcap),
                 script="tests/hotplug_server.py") as srv:
        yield srv, devices, mcap, port


def plug(srv: Server, devices: Path, serials: list[str]) -> list[str]:
    """Write the device list; wait (bounded) until /cameras.json has a camera more."""
    before = len(json.loads(srv.get("/cameras.json")[2]))
    devices.write_text("\n".join(serials) + "\n")
    t0 = time.monotonic()
    while True:
        names = [c["name"] for c in json.loads(srv.get("/cameras.json")[2])]
        if len(names) > before:
            return names
        assert time.monotonic() - t0 < PLUG_WITHIN_S, (names, srv.log()[-3000:])
        time.sleep(0.1)


def test_a_camera_plugged_in_appears_with_its_routes(rig: tuple[Server, Path, Path, int]
                                                     ) -> None:
    srv, devices, _, _ = rig
    code, _, body = srv.get("/cameras.json")
    assert code == 200 and [c["name"] for c in json.loads(body)] == ["synthetic"]
    assert srv.get("/cam/0123456789ab/color.jpg")[0] == 404
    before = srv.status()["pids"]
    assert plug(srv, devices, ["0123456789AB"]) == ["synthetic", "0123456789ab"]
    # Its routes: the NO SIGNAL card of a camera that cannot be opened, at the run's size.
    reader = MjpegReader(srv.port, "/cam/0123456789ab/color")
    try:
        _, jpeg = reader.next_part()
    finally:
        reader.close()
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1).shape == (480, 640, 3)
    st = srv.status()
    assert st["cameras"]["0123456789ab"]["pids"]["capture"] > 0
    assert not st["cameras"]["0123456789ab"]["source_ok"]
    assert st["pids"] == before  # the first camera's children were not touched
    log = srv.log()
    assert "RealSense 0123456789AB plugged in: serving it at /cam/0123456789ab/" in log
    assert log.count("source cannot start") == 1 and "Traceback" not in log


def test_an_open_grid_gets_the_next_camera_s_tile(rig: tuple[Server, Path, Path, int]
                                                  ) -> None:
    srv, devices, _, _ = rig
    with Browser() as b:
        b.goto(srv.base + "/")  # two cameras now: the grid
        b.wait_for("window.depthcam && window.depthcam.tiles"
                   " && window.depthcam.tiles().length === 2", timeout=20)
        plug(srv, devices, ["0123456789AB", "BBB222"])
        tiles = b.wait_for("window.depthcam.tiles().length === 3"
                           " && window.depthcam.tiles()", timeout=PLUG_WITHIN_S + 4)
    assert [t["name"] for t in tiles] == ["synthetic", "0123456789ab", "bbb222"]


def test_cameras_plugged_in_are_published_to_foxglove_and_mcap(
        rig: tuple[Server, Path, Path, int]) -> None:
    """The robotics children take the new cameras on too: their topics are advertised on
    the running Foxglove server, and the MCAP file is finalized at the end."""
    from mcap.reader import make_reader  # noqa: PLC0415

    from tests.robotics.fox_client import FoxgloveClient  # noqa: PLC0415

    srv, _, mcap, port = rig
    deadline = time.monotonic() + 30
    while "Foxglove WebSocket on" not in srv.log():
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.1)
    c = FoxgloveClient(port)
    try:
        c.wait_channels(["/camera/color", "/0123456789ab/color", "/0123456789ab/calibration",
                         "/bbb222/color"], timeout=PLUG_WITHIN_S)
    finally:
        c.close()
    deadline = time.monotonic() + 10
    while srv.log().count("plugged in: publishing it") < 4:  # 2 cameras, 2 children
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.1)
    assert srv.stop() == 0
    assert shm_segments(srv.pid) == []
    with mcap.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    assert "/camera/color" in {ch.topic for ch in summary.channels.values()}
