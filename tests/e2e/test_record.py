"""--record and --snapshot-on-exit on the real server, stopped with SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import require
from tests.helpers import RATE_SHARE, Server, run_cli


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_record_and_snapshot_survive_sigint(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"rec.{ext}"
    snap = tmp_path / "last.jpg"
    srv = Server("--width", "640", "--height", "480", "--fps", "15", "--record", str(out),
                 "--snapshot-on-exit", str(snap))
    try:
        srv.wait_ready()
        time.sleep(0.5)
        mark = srv.mark()
        t0 = time.monotonic()
        time.sleep(3.0)
        rates = srv.rates(mark)  # what capture managed: what the file can be asked to hold
        captured_for = time.monotonic() - t0  # until the stop signal, when capture ends
        assert srv.stop(signal.SIGINT, timeout=10) == 0
        span = time.monotonic() - t0
    finally:
        srv.kill()
    res = subprocess.run(
        [require("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration",
         "-of", "json", str(out)], capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(res.stdout)
    st = info["streams"][0]
    assert st["codec_name"] == "mjpeg" and (st["width"], st["height"]) == (640, 480)
    frames = int(st["nb_read_frames"])
    duration = float(info["format"]["duration"])
    # The file holds the color frames encoded while it recorded (never more than the
    # 15 fps asked for), timed as recorded: it plays at that rate.
    encoded = rates.encoded["color"]
    assert 0 < rates.captured <= 15 * 1.1
    assert frames >= RATE_SHARE * encoded * captured_for, (frames, captured_for, rates)
    # From the start to the stop signal, when capture ends (the exit may come later).
    assert captured_for * 0.8 <= duration <= span + 2.0, (captured_for, duration, span)
    assert frames / duration == pytest.approx(encoded, rel=0.25), (frames, duration, rates)
    img = cv2.imdecode(np.frombuffer(snap.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    assert "recording finalized" in srv.log()


def test_display_without_a_desktop_is_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = run_cli("--display", env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--display" in lines[0]


def test_record_to_a_bad_path_is_one_clear_line() -> None:
    for path in ("/nonexistent/dir/x.mkv", "out.mp4"):
        res = run_cli("--record", path)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
