"""The capture stamp survives what a frame goes through; geometry agrees with the scene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from media.geometry import camera_model, deproject, scaled_intrinsics, synthetic_intrinsics
from media.stamp import CELL, MODULO, draw_stamp, read_stamp

T = 1_780_000_000.123


def test_stamp_reads_back_after_jpeg_and_h264_like_loss() -> None:
    img = np.full((480, 640, 3), 127, np.uint8)
    draw_stamp(img, T)
    assert read_stamp(img, now=T + 0.5) == pytest.approx(T, abs=0.001)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    assert read_stamp(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), now=T) == pytest.approx(T, abs=0.001)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert read_stamp(gray, now=T) == pytest.approx(T, abs=0.001)


def test_stamp_resolves_the_wrap_and_rejects_what_is_not_a_stamp() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    draw_stamp(img, T)
    # Read a whole wrap period later, the nearest epoch is the right one.
    assert read_stamp(img, now=T + MODULO / 1000) == pytest.approx(T + MODULO / 1000, abs=0.001)
    assert read_stamp(np.zeros((480, 640, 3), np.uint8), now=T) is None
    broken = img.copy()
    y0 = (480 - 2 * CELL) // CELL * CELL
    broken[y0:y0 + CELL, 5 * CELL:6 * CELL] ^= 255  # one data bit flipped: checksum fails
    assert read_stamp(broken, now=T) is None
    small = np.zeros((40, 100, 3), np.uint8)
    draw_stamp(small, T)  # too small to hold a stamp: left alone
    assert not small.any() and read_stamp(small, now=T) is None


def test_synthetic_floor_is_a_plane_in_its_own_intrinsics() -> None:
    src = SyntheticSource(640, 480, 30)
    src.open()
    frame = src.read(1.0)
    model = camera_model(src.info())
    assert model is not None and model["intrinsics"] == synthetic_intrinsics(640, 480)
    intr = model["intrinsics"]
    # Bottom rows, left of every moving object's reach: the floor, 0.5 m below the camera.
    ys, xs = np.mgrid[440:470, 5:40]
    z = frame.depth[ys, xs].astype(float) * model["depth_scale"]
    valid = z > 0
    _, y, _ = deproject(intr, xs[valid], ys[valid], z[valid])
    assert np.median(y) == pytest.approx(0.5, rel=0.03)
    half = scaled_intrinsics(intr, 320, 240)
    assert (half["fx"], half["ppx"], half["ppy"]) == (intr["fx"] / 2, 160, 120)


def test_no_depth_no_model() -> None:
    assert camera_model({"kind": "tcp-ingest", "width": 640, "height": 480}) is None
    aligned = {"depth_scale": 0.001, "width": 640, "height": 480,
               "color_intrinsics": synthetic_intrinsics(1280, 960),
               "depth_intrinsics": synthetic_intrinsics(848, 480),
               "depth_aligned_to_color": True}
    m = camera_model(aligned)
    assert m is not None and m["intrinsics"]["fx"] == synthetic_intrinsics(640, 480)["fx"]
    # Unaligned depth keeps its own intrinsics, scaled to the frame the ring carries.
    m = camera_model({**aligned, "depth_aligned_to_color": False})
    assert m is not None
    assert m["intrinsics"]["fx"] == pytest.approx(424.0 * 640 / 848)
    assert m["intrinsics"]["ppx"] == pytest.approx(320.0)
