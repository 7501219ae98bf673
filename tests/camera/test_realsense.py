"""RealSense sources tested through librealsense itself: software devices and .db3 playback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from camera.base import SourceConfigError, SourceEnded, SourceError
from camera.realsense import RealSenseSource, nearest_mode
from camera.realsense_device import (
    D455_MODES,
    SYNC_MODES,
    normalize_filters,
    realsense_devices,
    rs,
    validate_mode,
)
from camera.realsense_device import bounded as _bounded
from camera.recording import RecordingSource
from tests.camera.rs_recording import SoftwareCamera, make_recording
from tests.conftest import needs_pyrealsense2

pytestmark = pytest.mark.timeout(60)

WITHOUT_PYREALSENSE2 = ("test_module_imports_without_pyrealsense2",)


@pytest.fixture(autouse=True)
def _pyrealsense2(request: pytest.FixtureRequest) -> None:
    """Every test here drives librealsense but the one about running without it."""
    if request.node.name not in WITHOUT_PYREALSENSE2:
        needs_pyrealsense2()

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2 s, 640x480@30 recording of the known scene, recorded in real time."""
    path = tmp_path_factory.mktemp("rs") / "scene.db3"
    return make_recording(path, 640, 480, 30, frames=60)


def counter(frame) -> int:
    """The frame index the scene drew into the top-left corner of the color image."""
    return int(frame.color[2, 2, 0])


def read_until_end(src: RecordingSource, limit: int = 500) -> list:
    """All frames of a non-looping recording, failing if SourceEnded never comes."""
    frames: list = []
    deadline = time.monotonic() + 10.0
    for _ in range(limit):
        if time.monotonic() > deadline:
            break
        try:
            f = src.read(1.0)
        except SourceEnded:
            return frames
        if f is not None:
            frames.append(f)
    pytest.fail(f"no SourceEnded after {len(frames)} frames")


def check_scene_color(frame, facts: dict) -> None:
    """The quadrant colours arrive in BGR order."""
    h, w = frame.color.shape[:2]
    q = facts["quadrants_bgr"]
    assert tuple(frame.color[h // 4, w // 4]) == q["top_left"]  # red -> (0, 0, 255)
    assert tuple(frame.color[h // 4, 3 * w // 4]) == q["top_right"]
    assert tuple(frame.color[3 * h // 4, w // 4]) == q["bottom_left"]  # blue -> (255, 0, 0)


def check_aligned_depth(frame, facts: dict) -> None:
    """Depth aligned to color: the plane and box land where the extrinsics put them."""
    d, scale = frame.depth, frame.depth_scale
    h, w = d.shape
    # middle of the plane, far from the box, the invalid strip and the image edges
    plane = d[h * 3 // 4 - 5:h * 3 // 4 + 5, w // 2 - 5:w // 2 + 5].astype(float) * scale
    assert np.all(np.abs(plane - facts["plane_m"]) <= 0.01 * facts["plane_m"])
    bx0, by0, bx1, by1 = facts["box_in_color"]
    inner = d[int(by0) + 3:int(by1) - 3, int(bx0) + 3:int(bx1) - 3]
    assert inner.size > 1000
    assert np.all(np.abs(inner * scale - facts["box_m"]) <= 0.01 * facts["box_m"])
    # where the box is in the depth image but not in color: only plane or shadow (0)
    x0, y0 = facts["box"][:2]
    left = d[y0 + 3:by1 - 3, x0 + 2:int(bx0) - 2]
    assert left.size > 0 and not np.any(left == round(facts["box_m"] / scale))
    # no depth pixel maps onto the leftmost columns (everything shifts right)
    assert np.all(d[:, :int(facts["shift_plane_px"]) - 1] == 0)


def check_unaligned_depth(frame, facts: dict) -> None:
    """Raw depth: the box where the depth image has it, the invalid strip zero."""
    x0, y0, x1, y1 = facts["box"]
    box = frame.depth[y0:y1, x0:x1].astype(float) * frame.depth_scale
    assert np.allclose(box, facts["box_m"], rtol=0.01)
    ix0, iy0, ix1, iy1 = facts["invalid"]
    assert np.all(frame.depth[iy0:iy1, ix0:ix1] == 0)


# ---------------------------------------------------------------- configuration


def test_validate_mode_accepts_the_d455_modes() -> None:
    assert len(D455_MODES) == 9
    for w, h, fps in D455_MODES:
        validate_mode(w, h, fps)


def test_validate_mode_rejects_1080p_listing_valid_modes() -> None:
    with pytest.raises(SourceConfigError) as err:
        validate_mode(1920, 1080, 30)
    msg = str(err.value)
    assert "1920x1080" in msg
    for size in ("1280x720", "848x480", "640x480"):
        assert size in msg
    assert "5/15/30" in msg
    with pytest.raises(SourceConfigError):
        validate_mode(640, 480, 60)
    with pytest.raises(SourceConfigError):
        RealSenseSource(1920, 1080, 30)


def test_filters_are_checked_and_ordered() -> None:
    assert normalize_filters(["hole-filling", "temporal", "decimation", "spatial"]) == (
        "decimation", "spatial", "temporal", "hole_filling")
    with pytest.raises(SourceConfigError, match="known: decimation"):
        normalize_filters(["sharpen"])
    with pytest.raises(SourceConfigError):
        RecordingSource("x.db3", filters=("median",))


def test_record_raw_must_be_db3() -> None:
    with pytest.raises(SourceConfigError, match=r"\.db3"):
        RealSenseSource(640, 480, 30, record_raw="out.bag")


# ---------------------------------------------------------------- no camera attached


def test_no_devices_are_listed() -> None:
    assert realsense_devices() == []


def test_unknown_serial_without_devices_is_fatal_and_quick() -> None:
    src = RealSenseSource(640, 480, 30, serial="123456789", device_wait=0.3)
    t0 = time.monotonic()
    with pytest.raises(SourceConfigError, match="no RealSense device found") as err:
        src.open()
    assert time.monotonic() - t0 < 3.0  # never reaches pipeline.start (15 s on no device)
    assert "123456789" in str(err.value)
    src.close()
    src.close()


def test_missing_camera_after_a_session_is_retryable() -> None:
    src = RealSenseSource(640, 480, 30, device_wait=0.0)
    with pytest.raises(SourceConfigError, match="no RealSense device found"):
        src.open()
    src._ever_opened = True  # as after a session that streamed, then lost the camera
    with pytest.raises(SourceError) as err:
        src.open()
    assert not isinstance(err.value, SourceConfigError)


def test_bounded_gives_up_and_cleans_up_late_results() -> None:
    late = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="did not finish"):
        _bounded(lambda: time.sleep(0.5) or "started", 0.1, "slow start",
                 on_late=lambda v: late.set() if v == "started" else None)
    assert time.monotonic() - t0 < 0.4
    assert late.wait(2.0)
    with pytest.raises(RuntimeError, match="boom"):
        _bounded(lambda: (_ for _ in ()).throw(RuntimeError("boom")), 1.0, "failing")
    assert _bounded(lambda: 42, 1.0, "quick") == 42


def test_module_imports_without_pyrealsense2() -> None:
    code = (
        "import sys; sys.modules['pyrealsense2'] = None\n"
        "from camera.base import SourceConfigError\n"
        "import camera.realsense as r\n"
        "import camera.realsense_device as d\n"
        "import camera.recording as rec\n"
        "assert d.realsense_devices() == []\n"
        "for src in (r.RealSenseSource(640, 480, 30), rec.RecordingSource('x.db3')):\n"
        "    try:\n"
        "        src.open()\n"
        "    except SourceConfigError as exc:\n"
        "        assert 'pyrealsense2 is not installed' in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError('open() without pyrealsense2')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------- recordings


def test_recording_plays_known_scene_aligned(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=False)
    src.open()
    try:
        info = src.info()
        assert info["kind"] == "recording"
        assert (info["width"], info["height"], info["fps"]) == (640, 480, 30)
        assert info["depth_scale"] == pytest.approx(0.001, rel=1e-6)
        assert info["color_intrinsics"]["fx"] == pytest.approx(recording["focal"])
        assert info["depth_intrinsics"]["ppx"] == pytest.approx(320.0)
        assert info["device_serial"] == recording["serial"]
        assert info["duration_s"] == pytest.approx(2.0, abs=0.3)
        frame = src.read(2.0)
        assert frame is not None
        assert frame.color.shape == (480, 640, 3) and frame.color.dtype == np.uint8
        assert frame.depth is not None
        assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.uint16
        assert frame.depth_scale == pytest.approx(0.001, rel=1e-6)
        assert abs(frame.timestamp - time.time()) < 5.0
        check_scene_color(frame, recording)
        check_aligned_depth(frame, recording)
    finally:
        src.close()


def test_recording_without_align_keeps_raw_depth(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=False, align=False)
    src.open()
    try:
        frame = src.read(2.0)
        assert frame is not None
        check_unaligned_depth(frame, recording)
        # the shifted box position of the aligned image is plane here
        bx0, by0, bx1, by1 = recording["box_in_color"]
        right = frame.depth[by0 + 3:by1 - 3, recording["box"][2] + 2:int(bx1) - 2]
        assert right.size > 0 and np.all(right == 1500)
    finally:
        src.close()


def test_recording_without_loop_ends_with_source_ended(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=False)
    src.open()
    try:
        frames = read_until_end(src)
        numbers = [counter(f) for f in frames]
        assert len(frames) >= recording["frames"] * 0.9
        assert numbers == sorted(set(numbers))
        assert numbers[-1] == recording["frames"] - 1
        with pytest.raises(SourceEnded):
            src.read(0.5)
        src.close()
        src.open()  # what the capture loop does after SourceEnded: play it again
        again = src.read(2.0)
        assert again is not None and counter(again) < 5
    finally:
        src.close()


def test_recording_loop_keeps_going_past_the_end(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=True, realtime=False)
    src.open()
    try:
        numbers = []
        deadline = time.monotonic() + 10.0
        for _ in range(recording["frames"] * 2 + 20):
            f = src.read(1.0)
            if f is not None:
                numbers.append(counter(f))
            elif time.monotonic() > deadline:
                break
        assert len(numbers) > recording["frames"] * 1.5
        wraps = sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if b < a)
        assert wraps >= 1
    finally:
        src.close()


def test_recording_realtime_is_paced_at_fps(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=True)
    src.open()
    try:
        assert src.read(2.0) is not None
        t0 = time.monotonic()
        got = sum(src.read(1.0) is not None for _ in range(30))
        elapsed = time.monotonic() - t0
        assert got >= 28
        assert 0.7 < elapsed < 2.5  # 30 frames at 30 fps; unpaced playback takes < 0.2 s
    finally:
        src.close()


def test_recording_with_filters_still_decodes_the_plane(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=False,
                          filters=("decimation", "spatial", "temporal", "hole_filling"))
    src.open()
    try:
        frame = src.read(2.0)
        assert frame is not None and frame.depth is not None
        assert frame.depth.shape == (480, 640)
        h, w = frame.depth.shape
        plane = frame.depth[h * 3 // 4, w // 2] * frame.depth_scale
        assert plane == pytest.approx(recording["plane_m"], rel=0.01)
        assert src.info()["filters"] == ["decimation", "spatial", "temporal", "hole_filling"]
    finally:
        src.close()


def test_missing_recording_is_a_config_error(tmp_path: Path) -> None:
    src = RecordingSource(str(tmp_path / "nothing.db3"))
    with pytest.raises(SourceConfigError, match="no such file"):
        src.open()


@pytest.mark.parametrize("name", ["garbage.db3", "garbage.bag", "empty.db3"])
def test_corrupt_recording_is_a_quick_one_line_config_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else os.urandom(64 * 1024))
    src = RecordingSource(str(path))
    t0 = time.monotonic()
    with pytest.raises(SourceConfigError) as err:
        src.open()
    assert time.monotonic() - t0 < 3.0
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    src.close()


# ---------------------------------------------------------------- software device path


def stream_from(cam: SoftwareCamera, src: RealSenseSource, count: int) -> list:
    """Push `count` frames into the software camera, reading one frame after each."""
    frames = []
    for n in range(count):
        cam.push(n)
        f = src.read(0.5)
        if f is not None:
            frames.append(f)
    return frames


def test_software_device_goes_through_the_same_processing() -> None:
    cam = SoftwareCamera(640, 480, 30)
    facts = cam.facts()
    src = RealSenseSource(640, 480, 30, device=cam.device)
    src.open()
    try:
        info = src.info()
        assert info["kind"] == "realsense"
        assert info["serial"] == facts["serial"] and info["name"] == facts["name"]
        assert info["depth_scale"] == pytest.approx(0.001, rel=1e-6)
        frames = stream_from(cam, src, 10)
        assert len(frames) >= 8  # the syncer may not pair the very first frames
        for f in frames:
            assert f.frame_number == counter(f)
            assert abs(f.timestamp - time.time()) < 5.0  # hardware clock -> arrival time
            check_scene_color(f, facts)
            check_aligned_depth(f, facts)
        assert [f.frame_number for f in frames] == sorted({f.frame_number for f in frames})
    finally:
        src.close()
        src.close()


@pytest.mark.parametrize("mode", ["master", "slave", "full-slave", "genlock"])
def test_sync_sets_the_inter_camera_mode_before_streaming(
        mode: str, caplog: pytest.LogCaptureFixture) -> None:
    cam = SoftwareCamera(640, 480, 30)
    cam.depth_sensor.add_option(rs.option.inter_cam_sync_mode, rs.option_range(0, 260, 1, 0),
                                True)
    src = RealSenseSource(640, 480, 30, device=cam.device, sync=mode)
    with caplog.at_level(logging.INFO, logger="camera.realsense"):
        src.open()
    try:
        want = SYNC_MODES[mode]
        assert cam.depth_sensor.get_option(rs.option.inter_cam_sync_mode) == want
        said = [r.getMessage() for r in caplog.records if "sync" in r.getMessage()]
        assert said == [f"RealSense {cam.facts()['serial']}: inter-camera sync {mode} "
                        f"(inter_cam_sync_mode {want})"]
        assert len(stream_from(cam, src, 3)) >= 1  # and it streams
    finally:
        src.close()


def test_sync_on_a_device_without_the_option_is_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    cam = SoftwareCamera(640, 480, 30)
    src = RealSenseSource(640, 480, 30, device=cam.device, sync="slave")
    with caplog.at_level(logging.INFO, logger="camera.realsense"):
        src.open()
    try:
        said = [r.getMessage() for r in caplog.records if "sync" in r.getMessage()]
        assert said == [f"RealSense {cam.facts()['serial']}: has no inter_cam_sync_mode; "
                        "--sync slave ignored"]
    finally:
        src.close()


def test_a_mode_the_device_lacks_falls_back_to_its_nearest(
        caplog: pytest.LogCaptureFixture) -> None:
    cam = SoftwareCamera(640, 480, 30)
    src = RealSenseSource(848, 480, 30, device=cam.device)
    with caplog.at_level(logging.WARNING, logger="camera.realsense"):
        src.open()
    try:
        said = [r.getMessage() for r in caplog.records]
        assert said == [f"RealSense {cam.facts()['serial']} does not offer color + depth at "
                        "848x480@30: using 640x480@30, the nearest mode it has"]
        frames = stream_from(cam, src, 3)
        assert frames and frames[0].color.shape == (480, 640, 3)
        assert src.info()["width"] == 640
    finally:
        src.close()


def test_nearest_mode_prefers_the_pixel_count_then_the_rate() -> None:
    modes = {(1280, 720, 30), (848, 480, 15), (848, 480, 30), (640, 480, 30), (640, 480, 5)}
    assert nearest_mode(modes, (848, 480, 60)) == (848, 480, 30)
    assert nearest_mode(modes - {(848, 480, 30), (848, 480, 15)}, (848, 480, 30)) == (
        640, 480, 30)
    assert nearest_mode({(640, 480, 5), (640, 480, 15)}, (640, 480, 30)) == (640, 480, 15)


def test_software_device_unaligned_and_decimated() -> None:
    cam = SoftwareCamera(640, 480, 30)
    src = RealSenseSource(640, 480, 30, device=cam.device, align=False,
                          filters=("decimation",))
    src.open()
    try:
        frames = stream_from(cam, src, 6)
        assert len(frames) >= 4
        f = frames[-1]
        assert f.depth.shape == (480, 640)  # decimated 320x240, resized to the color size
        x0, y0, x1, y1 = cam.facts()["box"]
        inner = f.depth[y0 + 4:y1 - 4, x0 + 4:x1 - 4]
        assert np.all(inner == 800)
        assert f.depth[400, 100] == 1500
    finally:
        src.close()


def test_software_device_can_reopen() -> None:
    cam = SoftwareCamera(640, 480, 30)
    src = RealSenseSource(640, 480, 30, device=cam.device)
    for _ in range(2):
        src.open()
        try:
            assert len(stream_from(cam, src, 5)) >= 3
        finally:
            src.close()


def test_software_device_record_raw_plays_back(tmp_path: Path) -> None:
    cam = SoftwareCamera(640, 480, 30)
    out = tmp_path / "raw.db3"
    src = RealSenseSource(640, 480, 30, device=cam.device, record_raw=str(out))
    src.open()
    try:
        assert src.info()["recording_to"] == str(out)
        live = stream_from(cam, src, 8)
    finally:
        src.close()
    assert out.is_file() and out.stat().st_size > 0
    play = RecordingSource(str(out), loop=False, realtime=False)
    play.open()
    try:
        frames = read_until_end(play)
    finally:
        play.close()
    assert len(frames) >= len(live) - 1
    check_scene_color(frames[0], cam.facts())
    check_aligned_depth(frames[-1], cam.facts())


def test_software_device_without_color_and_depth_together_is_a_config_error() -> None:
    dev = rs.software_device()  # a depth sensor alone: no mode to fall back to
    sensor = dev.add_sensor("Stereo Module")
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp = 640, 480, 30, 2
    stream.fmt = rs.format.z16
    sensor.add_video_stream(stream)
    src = RealSenseSource(640, 480, 30, device=dev)
    with pytest.raises(SourceConfigError, match="no color \\+ z16 depth"):
        src.open()
    src.close()


def test_recording_hole_filling_fills_the_invalid_strip(recording: dict) -> None:
    src = RecordingSource(recording["path"], loop=False, realtime=False, align=False,
                          filters=("hole_filling",))
    src.open()
    try:
        frame = src.read(2.0)
        assert frame is not None and frame.depth is not None
        ix0, iy0, ix1, iy1 = recording["invalid"]
        strip = frame.depth[iy0 + 5:iy1 - 5, ix0:ix1]
        assert np.all(strip > 0)  # zero without the filter (test_recording_without_align)
    finally:
        src.close()


def test_info_survives_close(recording: dict) -> None:
    src = RecordingSource(recording["path"], realtime=False)
    assert src.info()["kind"] == "recording"  # before open: no stream details yet
    src.open()
    src.close()
    info = src.info()  # the capture loop polls info() at any time
    assert (info["width"], info["height"]) == (640, 480)
    assert info["color_intrinsics"]["ppy"] == pytest.approx(240.0)


def test_record_raw_sessions_get_their_own_files(tmp_path: Path) -> None:
    cam = SoftwareCamera(640, 480, 30)
    out = tmp_path / "raw.db3"
    src = RealSenseSource(640, 480, 30, device=cam.device, record_raw=str(out))
    paths = []
    for _ in range(2):  # a reopen after a loss must not overwrite the first recording
        src.open()
        try:
            paths.append(src.info()["recording_to"])
            assert len(stream_from(cam, src, 3)) >= 1
        finally:
            src.close()
    assert paths == [str(out), str(tmp_path / "raw-2.db3")]
    assert all(Path(p).stat().st_size > 0 for p in paths)
