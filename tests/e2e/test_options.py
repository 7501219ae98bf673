"""Presets, the OpenCV encoder fallback, and a child that cannot start."""

from __future__ import annotations

import json
import logging
import socket
import subprocess

import pytest

from media import jpeg as codec
from tests.conftest import require
from tests.helpers import PYTHON, ROOT, free_port, running


@pytest.mark.parametrize(("w", "h"), [(848, 480), (640, 480)])
def test_d455_presets_stream_at_their_size(w: int, h: int) -> None:
    with running("--width", str(w), "--height", str(h)) as srv:
        out = subprocess.run(
            [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-read_intervals", "%+#3",
             "-show_entries", "stream=width,height", "-of", "json", srv.base + "/depth"],
            capture_output=True, text=True, timeout=30, check=True)
        st = json.loads(out.stdout)["streams"][0]
        assert (st["width"], st["height"]) == (w, h)


def test_forced_opencv_backend_is_reported_and_works() -> None:
    with running("--width", "640", "--height", "480", "--encoder", "opencv") as srv:
        code, headers, body = srv.get("/color.jpg")
        assert code == 200 and body[:2] == b"\xff\xd8"
        assert srv.status()["encoder"]["backend"] == "opencv"


def test_unloadable_libjpeg_turbo_falls_back_with_one_warning(monkeypatch, caplog) -> None:  # noqa: ANN001
    def broken() -> None:
        raise OSError("libturbojpeg.so.0: cannot open shared object file")

    monkeypatch.setattr(codec, "_load_turbojpeg", broken)
    with caplog.at_level(logging.WARNING):
        assert codec.pick_backend("auto") == "opencv"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "falling back to OpenCV" in warnings[0].getMessage()
    with pytest.raises(RuntimeError):
        codec.pick_backend("turbojpeg")


def test_a_child_that_cannot_start_stops_the_run_instead_of_restarting() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        res = subprocess.run(
            [PYTHON, str(ROOT / "app_mp.py"), "--host", "127.0.0.1", "--port",
             str(free_port()), "--source", f"tcp://127.0.0.1:{busy_port}"],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2
    assert "cannot listen on tcp://127.0.0.1" in res.stderr
    assert "restarting" not in res.stderr and "Traceback" not in res.stderr
