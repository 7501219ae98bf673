"""Raw-TCP MJPEG ingest end to end: ffmpeg and app_https_client.py push into app_mp.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import require
from tests.helpers import PYTHON, ROOT, MjpegReader, free_port, running


def ffmpeg_pusher(port: int, size: str = "640x480", rate: int = 30, seconds: int = 30
                  ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [require("ffmpeg"), "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
         f"testsrc=size={size}:rate={rate}", "-t", str(seconds), "-q:v", "5", "-f", "mjpeg",
         f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def next_live(r: MjpegReader, within: float) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        headers, _ = r.next_part()
        if headers["x-signal"] == "live":
            return headers
        assert time.monotonic() < deadline, "no live frame in time"


@pytest.fixture
def ingest():  # noqa: ANN201
    port = free_port()
    with running("--source", f"tcp://127.0.0.1:{port}", need_frames=False) as srv:
        deadline = time.monotonic() + 20
        while srv.status()["source"].get("kind") != "tcp":  # the listener is bound
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.1)
        yield srv, port


def test_ffmpeg_push_is_served_at_its_size_and_rate(ingest) -> None:  # noqa: ANN001
    srv, port = ingest
    pusher = ffmpeg_pusher(port)
    try:
        r = MjpegReader(srv.port, "/color")
        next_live(r, 10)
        r.close()
        out = subprocess.run(
            [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-count_frames",
             "-read_intervals", "%+#60", "-show_entries",
             "stream=width,height,nb_read_frames:packet=pts_time", "-of", "json",
             srv.base + "/color"], capture_output=True, text=True, timeout=30, check=True)
        info = json.loads(out.stdout)
        st = info["streams"][0]
        assert (st["width"], st["height"]) == (640, 480)
        assert int(st["nb_read_frames"]) == 60
        status = srv.status()
        assert status["source"]["kind"] == "tcp"
        assert 26 <= status["fps_captured"] <= 34
        assert status["resolution"] == {"width": 640, "height": 480}
        code, headers, body = srv.get("/depth.jpg")
        assert code == 200  # a generated "no depth for this source" picture
    finally:
        stop(pusher)


def test_pusher_gone_no_signal_then_the_next_pusher_resumes(ingest) -> None:  # noqa: ANN001
    srv, port = ingest
    pusher = ffmpeg_pusher(port)
    r = MjpegReader(srv.port, "/color")
    try:
        next_live(r, 10)
        stop(pusher)
        gone = time.monotonic()
        while True:
            headers, _ = r.next_part()
            if headers["x-signal"] == "none":
                break
            assert time.monotonic() - gone < 1.0, "no NO SIGNAL frame within 1 s"
        assert time.monotonic() - gone < 1.0
        pusher = ffmpeg_pusher(port, size="320x240")
        back = time.monotonic()
        next_live(r, 3.0)
        assert time.monotonic() - back < 3.0
    finally:
        r.close()
        stop(pusher)


def test_app_https_client_feeds_the_ingest(ingest, tmp_path) -> None:  # noqa: ANN001
    srv, port = ingest
    log = tmp_path / "push.log"
    with open(log, "wb") as fh:
        client = subprocess.Popen(
            [PYTHON, str(ROOT / "app_https_client.py"), "-v", f"tcp://127.0.0.1:{port}",
             "--stream", "color", "--width", "640", "--height", "480", "--fps", "15",
             "--gps", "none"],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        r = MjpegReader(srv.port, "/color")
        try:
            next_live(r, 15)
            for _ in range(45):  # 3 s: past the rate window that saw NO SIGNAL frames
                headers, body = r.next_part()
                assert headers["x-signal"] == "live"
        finally:
            r.close()
        st = srv.status()
        assert st["resolution"] == {"width": 640, "height": 480}
        assert st["fps_captured"] >= 12
    finally:
        stop(client)
    assert client.returncode == 0, log.read_text()


def test_opencv_source_plays_a_video_file(tmp_path) -> None:  # noqa: ANN001
    clip = tmp_path / "clip.avi"
    subprocess.run([require("ffmpeg"), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=15", "-t", "2", "-c:v", "mjpeg", str(clip)],
                   check=True, timeout=60)
    with running("--source", f"opencv:{clip}") as srv:
        r = MjpegReader(srv.port, "/color")
        try:
            for _ in range(40):  # longer than the clip: it loops
                headers, body = r.next_part()
                assert headers["x-signal"] == "live"
        finally:
            r.close()
        st = srv.status()
        assert st["source"]["kind"] == "opencv"
        assert st["resolution"] == {"width": 320, "height": 240}
        assert 12 <= st["fps_captured"] <= 18
