"""Raw-TCP MJPEG ingest end to end: ffmpeg and app_https_client.py push into app_mp.py."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from camera import capture, tcp_ingest
from tests.conftest import require
from tests.helpers import PYTHON, RATE_SHARE, ROOT, MjpegReader, free_port, running


def ffmpeg_pusher(port: int, size: str = "640x480", rate: int = 30, seconds: int = 30,
                  progress: Path | None = None) -> subprocess.Popen[bytes]:
    """ffmpeg pushing a test pattern in real time; `progress`: where it writes how many
    frames it has sent (its -progress report, every 0.1 s)."""
    report = ["-progress", str(progress), "-stats_period", "0.1"] if progress else []
    return subprocess.Popen(
        [require("ffmpeg"), "-nostdin", "-loglevel", "error", *report, "-re", "-f", "lavfi",
         "-i", f"testsrc=size={size}:rate={rate}", "-t", str(seconds), "-q:v", "5",
         "-f", "mjpeg", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frames_pushed(progress: Path) -> int:
    """Frames ffmpeg reports it has sent so far."""
    counts = re.findall(r"^frame=(\d+)$", progress.read_text(), re.MULTILINE)
    return int(counts[-1]) if counts else 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def next_live_after(r: MjpegReader, within: float) -> float:
    """Seconds until the next live frame (at most `within`)."""
    t0 = time.monotonic()
    next_live(r, within)
    return time.monotonic() - t0


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


def test_ffmpeg_push_is_served_at_its_size_and_rate(ingest, tmp_path) -> None:  # noqa: ANN001
    srv, port = ingest
    progress = tmp_path / "progress"
    pusher = ffmpeg_pusher(port, progress=progress)
    try:
        r = MjpegReader(srv.port, "/color")
        next_live(r, 10)
        r.close()
        time.sleep(0.5)
        mark, pushed0 = srv.mark(), frames_pushed(progress)
        out = subprocess.run(
            [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-count_frames",
             "-read_intervals", "%+#60", "-show_entries",
             "stream=width,height,nb_read_frames:packet=pts_time", "-of", "json",
             srv.base + "/color"], capture_output=True, text=True, timeout=30, check=True)
        info = json.loads(out.stdout)
        st = info["streams"][0]
        assert (st["width"], st["height"]) == (640, 480)
        assert int(st["nb_read_frames"]) == 60
        pushed = frames_pushed(progress) - pushed0
        rates = srv.rates(mark)
        captured = rates.captured * rates.seconds
        status = srv.status()
        assert status["source"]["kind"] == "tcp"
        # The ingest takes the frames at the rate they are pushed (ffmpeg's own count
        # over the same window, which lags its socket by at most its 0.1 s report).
        assert RATE_SHARE * pushed <= captured <= pushed + 0.1 * 30 + 2, (captured, pushed)
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
        first_live = next_live_after(r, 10)
        # NO SIGNAL once the ingest has gone without a pusher for its set time, then within
        # two of the capture's no-signal frame intervals (plus the encode).
        no_signal = tcp_ingest.NO_PUSHER_S + srv.latency_bound(
            intervals=2, fps=1 / capture.NO_SIGNAL_PERIOD)
        stop(pusher)
        gone = time.monotonic()
        while True:
            headers, _ = r.next_part()
            if headers["x-signal"] == "none":
                break
            assert time.monotonic() - gone < no_signal, f"no NO SIGNAL frame in {no_signal} s"
        assert time.monotonic() - gone < no_signal
        # A new pusher is live as fast as the first one was, give or take a process start
        # on this machine (as long as the server's own start took).
        assert srv.ready_s is not None
        back_within = first_live + srv.ready_s
        pusher = ffmpeg_pusher(port, size="320x240")
        back = time.monotonic()
        next_live(r, back_within)
        assert time.monotonic() - back < back_within
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
            stamps = []
            for _ in range(45):  # 3 s: past the rate window that saw NO SIGNAL frames
                headers, body = r.next_part()
                assert headers["x-signal"] == "live"
                stamps.append(float(headers["x-timestamp"]))
        finally:
            r.close()
        st = srv.status()
        assert st["resolution"] == {"width": 640, "height": 480}
        # Taken at the pusher's pace: frames a 1/15 s apart (the median: a loaded machine
        # may hold one up), never faster.
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        assert 1 / 15 * 0.8 <= steps[len(steps) // 2] <= 1 / 15 * 1.25, steps
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
        stamps = []
        try:
            for _ in range(40):  # longer than the clip: it loops
                headers, body = r.next_part()
                assert headers["x-signal"] == "live"
                stamps.append(float(headers["x-timestamp"]))
        finally:
            r.close()
        st = srv.status()
        assert st["source"]["kind"] == "opencv"
        assert st["resolution"] == {"width": 320, "height": 240}
        # Played at the file's 15 fps: frames 1/15 s apart (the median, as above).
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        assert 1 / 15 * 0.8 <= steps[len(steps) // 2] <= 1 / 15 * 1.25, steps
