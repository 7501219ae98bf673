"""app_mp.py playing a librealsense recording built at test time (no camera, no mocks)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.camera.rs_recording import make_recording
from tests.conftest import require
from tests.helpers import MjpegReader, run_cli, running


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("rec") / "scene.db3"
    facts = make_recording(path, 640, 480, 30, frames=45)
    facts["path"] = str(path)
    return facts


def test_recording_serves_color_and_depth_with_its_resolution_and_scale(recording) -> None:  # noqa: ANN001
    with running("--source", recording["path"], "--width", "640", "--height", "480") as srv:
        for path in ("/color", "/depth"):
            out = subprocess.run(
                [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-count_frames",
                 "-read_intervals", "%+#20", "-show_entries",
                 "stream=width,height,nb_read_frames", "-of", "json", srv.base + path],
                capture_output=True, text=True, timeout=30, check=True)
            st = json.loads(out.stdout)["streams"][0]
            assert (st["width"], st["height"], int(st["nb_read_frames"])) == (640, 480, 20)
        status = srv.status()
        assert status["source"]["kind"] == "recording"
        assert status["resolution"] == {"width": 640, "height": 480}
        assert status["source"]["depth_scale"] == pytest.approx(0.001)
        assert status["depth"]["scale"] == pytest.approx(0.001)


def test_known_depth_decodes_to_metres_on_the_aligned_hue_stream(recording) -> None:  # noqa: ANN001
    """The plane at a known distance reads back in metres from the depth stream's JPEG."""
    from media.hue import decode_hue_depth  # noqa: PLC0415

    with running("--source", recording["path"], "--width", "640", "--height", "480",
                 "--depth-mode", "hue", "--depth-min", "0.3", "--depth-max", "3") as srv:
        r = MjpegReader(srv.port, "/depth")
        try:
            headers, jpeg = r.next_part()
            headers, jpeg = r.next_part()
        finally:
            r.close()
        assert headers["x-depth-mode"] == "hue"
        depth_mm = decode_hue_depth(jpeg, float(headers["x-depth-min"]),
                                    float(headers["x-depth-max"]))
        # A patch of the plane well away from the box and the invalid strip.
        h, w = depth_mm.shape
        patch = depth_mm[h // 10: h * 3 // 10, w // 10: w // 4].astype(float)
        valid = patch[patch > 0]
        assert valid.size > 0.9 * patch.size
        assert np.median(valid) / 1000 == pytest.approx(recording["plane_m"], rel=0.01)


def test_recording_end_shows_no_signal_then_resumes_on_the_same_connection(recording) -> None:  # noqa: ANN001
    with running("--source", recording["path"], "--no-loop", "--width", "640",
                 "--height", "480") as srv:
        r = MjpegReader(srv.port, "/depth", timeout=10)
        try:
            last_live = None
            deadline = time.monotonic() + 20
            while True:
                headers, _ = r.next_part()
                now = time.monotonic()
                assert now < deadline, "the recording never ended"
                if headers["x-signal"] == "live":
                    last_live = now
                elif last_live is not None:
                    assert now - last_live < 1.0, "NO SIGNAL came later than 1 s"
                    break
            gone = time.monotonic()
            while True:
                headers, _ = r.next_part()
                if headers["x-signal"] == "live":
                    break
                assert time.monotonic() - gone < 5, "the recording did not resume"
        finally:
            r.close()
        assert "source lost" in srv.log()


def test_bad_recordings_and_modes_are_one_line_exit_2(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db3"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    cases = [
        ("--source", str(tmp_path / "missing.db3")),
        ("--source", str(corrupt)),
        ("--source", "realsense", "--width", "1920", "--height", "1080"),
        ("--serial", "123456789"),
        ("--rs-filters", "sharpen"),
    ]
    for args in cases:
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, (args, res.stderr)
        assert "Traceback" not in res.stderr
    res = run_cli("--source", "realsense", "--width", "1920", "--height", "1080")
    assert "1280x720" in res.stderr and "640x480" in res.stderr
